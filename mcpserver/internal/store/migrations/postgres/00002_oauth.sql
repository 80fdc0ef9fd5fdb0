-- +goose Up
-- The OAuth 2.1 authorization server (package oauth). The SQLite twin in
-- ../sqlite has the same tables, columns and indexes. Secrets, codes,
-- refresh tokens and session ids are stored only as hex SHA-256 hashes of
-- 256-bit random values. client_id columns are text without a foreign key:
-- a client may be a Client ID Metadata Document URL, which is not stored.
CREATE TABLE oauth_clients (
    id                         text PRIMARY KEY,
    secret_hash                text NOT NULL DEFAULT '',
    name                       text NOT NULL DEFAULT '',
    redirect_uris              jsonb NOT NULL,
    grant_types                text NOT NULL,
    token_endpoint_auth_method text NOT NULL,
    scope                      text NOT NULL DEFAULT '',
    client_uri                 text NOT NULL DEFAULT '',
    application_type           text NOT NULL DEFAULT 'web',
    created_at                 timestamptz NOT NULL
);

-- A grant is one authorization: first an authorization code (code_*),
-- then the family of every token issued from it. revoked_at revokes the
-- family, including tokens inserted after it by a racing request.
CREATE TABLE oauth_grants (
    id              uuid PRIMARY KEY,
    code_hash       text NOT NULL UNIQUE,
    user_id         uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    client_id       text NOT NULL,
    redirect_uri    text NOT NULL DEFAULT '',
    scope           text NOT NULL,
    resource        text NOT NULL DEFAULT '',
    code_challenge  text NOT NULL,
    code_expires_at timestamptz NOT NULL,
    code_used_at    timestamptz,
    revoked_at      timestamptz,
    created_at      timestamptz NOT NULL
);
CREATE INDEX oauth_grants_user_client ON oauth_grants (user_id, client_id);
CREATE INDEX oauth_grants_code_expires ON oauth_grants (code_expires_at);

-- Every JWT access token and personal access token, by jti: the
-- revocation list, and the list of personal tokens on /account.
CREATE TABLE oauth_access_tokens (
    jti        text PRIMARY KEY,
    grant_id   uuid REFERENCES oauth_grants(id) ON DELETE CASCADE,
    user_id    uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    client_id  text NOT NULL,
    kind       text NOT NULL CHECK (kind IN ('oauth', 'pat')),
    name       text NOT NULL DEFAULT '',
    scope      text NOT NULL,
    expires_at timestamptz NOT NULL,
    created_at timestamptz NOT NULL,
    revoked_at timestamptz
);
CREATE INDEX oauth_access_tokens_user ON oauth_access_tokens (user_id, kind, created_at);
CREATE INDEX oauth_access_tokens_grant ON oauth_access_tokens (grant_id);
CREATE INDEX oauth_access_tokens_expires ON oauth_access_tokens (expires_at);

CREATE TABLE oauth_refresh_tokens (
    token_hash text PRIMARY KEY,
    grant_id   uuid NOT NULL REFERENCES oauth_grants(id) ON DELETE CASCADE,
    user_id    uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    client_id  text NOT NULL,
    scope      text NOT NULL,
    expires_at timestamptz NOT NULL,
    created_at timestamptz NOT NULL,
    used_at    timestamptz
);
CREATE INDEX oauth_refresh_tokens_grant ON oauth_refresh_tokens (grant_id);
CREATE INDEX oauth_refresh_tokens_expires ON oauth_refresh_tokens (expires_at);

CREATE TABLE oauth_consents (
    user_id    uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    client_id  text NOT NULL,
    scope      text NOT NULL,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    PRIMARY KEY (user_id, client_id)
);

CREATE TABLE oauth_sessions (
    id_hash    text PRIMARY KEY,
    user_id    uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    csrf_token text NOT NULL,
    created_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL
);
CREATE INDEX oauth_sessions_user ON oauth_sessions (user_id);
CREATE INDEX oauth_sessions_expires ON oauth_sessions (expires_at);

-- +goose Down
DROP TABLE oauth_sessions;
DROP TABLE oauth_consents;
DROP TABLE oauth_refresh_tokens;
DROP TABLE oauth_access_tokens;
DROP TABLE oauth_grants;
DROP TABLE oauth_clients;
