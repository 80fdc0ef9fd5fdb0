-- +goose Up
-- The email addresses a user shared memories with, and the user ids the MCP
-- server resolved them to: the server's API answers with ids only, and
-- people recognise each other by email.
CREATE TABLE share_contacts (
    user_id    TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    contact_id TEXT NOT NULL,
    email      TEXT NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (user_id, contact_id)
);

-- +goose Down
DROP TABLE share_contacts;
