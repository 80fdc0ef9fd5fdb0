-- +goose Up
CREATE TABLE users (
    id            TEXT PRIMARY KEY,
    email         TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL,
    updated_at    TIMESTAMPTZ NOT NULL
);

-- Sessions are stored by the SHA-256 of their cookie value, so a database
-- leak does not hand out live sessions.
CREATE TABLE sessions (
    id_hash    TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX sessions_user_id ON sessions(user_id);
CREATE INDEX sessions_expires_at ON sessions(expires_at);

-- The web client's own registration with an authorization server; keyed by
-- issuer and redirect URI so a configuration change registers anew.
CREATE TABLE oauth_clients (
    issuer            TEXT NOT NULL,
    redirect_uri      TEXT NOT NULL,
    client_id         TEXT NOT NULL,
    client_secret_enc TEXT NOT NULL,
    created_at        TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (issuer, redirect_uri)
);

-- One token pair per user, encrypted; status 'reconnect' marks a pair the
-- authorization server no longer honours.
CREATE TABLE oauth_tokens (
    user_id           TEXT PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
    client_id         TEXT NOT NULL,
    access_token_enc  TEXT NOT NULL,
    refresh_token_enc TEXT NOT NULL,
    token_type        TEXT NOT NULL,
    scope             TEXT NOT NULL,
    subject           TEXT NOT NULL DEFAULT '',
    expiry            TIMESTAMPTZ,
    status            TEXT NOT NULL,
    updated_at        TIMESTAMPTZ NOT NULL
);

-- Pending authorization requests: state → PKCE verifier, bound to the
-- session that started them.
CREATE TABLE oauth_flows (
    state_hash   TEXT PRIMARY KEY,
    user_id      TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    session_hash TEXT NOT NULL,
    verifier_enc TEXT NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL
);
CREATE INDEX oauth_flows_created_at ON oauth_flows(created_at);

-- +goose Down
DROP TABLE oauth_flows;
DROP TABLE oauth_tokens;
DROP TABLE oauth_clients;
DROP TABLE sessions;
DROP TABLE users;
