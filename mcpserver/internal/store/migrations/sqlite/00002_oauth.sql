-- +goose Up
-- The OAuth 2.1 authorization server (package oauth). The Postgres twin in
-- ../postgres has the same tables, columns and indexes. Secrets, codes,
-- refresh tokens and session ids are stored only as hex SHA-256 hashes of
-- 256-bit random values. client_id columns are text without a foreign key:
-- a client may be a Client ID Metadata Document URL, which is not stored.
CREATE TABLE oauth_clients (
    id                         TEXT PRIMARY KEY,
    secret_hash                TEXT NOT NULL DEFAULT '',
    name                       TEXT NOT NULL DEFAULT '',
    redirect_uris              TEXT NOT NULL CHECK (json_valid(redirect_uris)),
    grant_types                TEXT NOT NULL,
    token_endpoint_auth_method TEXT NOT NULL,
    scope                      TEXT NOT NULL DEFAULT '',
    client_uri                 TEXT NOT NULL DEFAULT '',
    application_type           TEXT NOT NULL DEFAULT 'web',
    created_at                 INTEGER NOT NULL
) STRICT;

-- A grant is one authorization: first an authorization code (code_*),
-- then the family of every token issued from it. revoked_at revokes the
-- family, including tokens inserted after it by a racing request.
CREATE TABLE oauth_grants (
    id              TEXT PRIMARY KEY,
    code_hash       TEXT NOT NULL UNIQUE,
    user_id         TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    client_id       TEXT NOT NULL,
    redirect_uri    TEXT NOT NULL DEFAULT '',
    scope           TEXT NOT NULL,
    resource        TEXT NOT NULL DEFAULT '',
    code_challenge  TEXT NOT NULL,
    code_expires_at INTEGER NOT NULL,
    code_used_at    INTEGER,
    revoked_at      INTEGER,
    created_at      INTEGER NOT NULL
) STRICT;
CREATE INDEX oauth_grants_user_client ON oauth_grants (user_id, client_id);
CREATE INDEX oauth_grants_code_expires ON oauth_grants (code_expires_at);

-- Every JWT access token and personal access token, by jti: the
-- revocation list, and the list of personal tokens on /account.
CREATE TABLE oauth_access_tokens (
    jti        TEXT PRIMARY KEY,
    grant_id   TEXT REFERENCES oauth_grants(id) ON DELETE CASCADE,
    user_id    TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    client_id  TEXT NOT NULL,
    kind       TEXT NOT NULL CHECK (kind IN ('oauth', 'pat')),
    name       TEXT NOT NULL DEFAULT '',
    scope      TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    revoked_at INTEGER
) STRICT;
CREATE INDEX oauth_access_tokens_user ON oauth_access_tokens (user_id, kind, created_at);
CREATE INDEX oauth_access_tokens_grant ON oauth_access_tokens (grant_id);
CREATE INDEX oauth_access_tokens_expires ON oauth_access_tokens (expires_at);

CREATE TABLE oauth_refresh_tokens (
    token_hash TEXT PRIMARY KEY,
    grant_id   TEXT NOT NULL REFERENCES oauth_grants(id) ON DELETE CASCADE,
    user_id    TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    client_id  TEXT NOT NULL,
    scope      TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    used_at    INTEGER
) STRICT;
CREATE INDEX oauth_refresh_tokens_grant ON oauth_refresh_tokens (grant_id);
CREATE INDEX oauth_refresh_tokens_expires ON oauth_refresh_tokens (expires_at);

CREATE TABLE oauth_consents (
    user_id    TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    client_id  TEXT NOT NULL,
    scope      TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (user_id, client_id)
) STRICT, WITHOUT ROWID;

CREATE TABLE oauth_sessions (
    id_hash    TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    csrf_token TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
) STRICT;
CREATE INDEX oauth_sessions_user ON oauth_sessions (user_id);
CREATE INDEX oauth_sessions_expires ON oauth_sessions (expires_at);

-- +goose Down
DROP TABLE oauth_sessions;
DROP TABLE oauth_consents;
DROP TABLE oauth_refresh_tokens;
DROP TABLE oauth_access_tokens;
DROP TABLE oauth_grants;
DROP TABLE oauth_clients;
