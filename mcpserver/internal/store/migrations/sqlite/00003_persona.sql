-- +goose Up
-- How each user's persona answers query_user. A user without a row has the
-- defaults: no self-description, answers others, the operator's model
-- parameters. NULL model parameters mean "the operator's default"; the
-- application clamps stored values to the operator's limits when it reads
-- them, so lowering a limit takes effect without rewriting rows.
CREATE TABLE persona_settings (
    user_id        TEXT PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
    description    TEXT NOT NULL DEFAULT '',
    answers_others INTEGER NOT NULL DEFAULT 1,
    temperature    REAL,
    max_tokens     INTEGER,
    updated_at     INTEGER NOT NULL
) STRICT;

-- +goose Down
DROP TABLE persona_settings;
