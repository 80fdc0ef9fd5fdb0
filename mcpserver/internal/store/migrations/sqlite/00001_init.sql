-- +goose Up
-- The schema of the MCP server. The Postgres twin in ../postgres has the
-- same tables, columns and indexes; only the types differ:
--   * ids are canonical lower-case UUID text, which sorts like Postgres uuid;
--   * times are INTEGER microseconds since the Unix epoch (UTC), so integer
--     order is time order and no precision is lost;
--   * metadata is JSON text; embeddings are float32 little-endian BLOBs.
CREATE TABLE users (
    id            TEXT PRIMARY KEY,
    email         TEXT NOT NULL,
    -- Lower-cased by the application, so uniqueness is case-insensitive
    -- with exactly Go's idea of lower case.
    email_lower   TEXT NOT NULL UNIQUE,
    name          TEXT NOT NULL DEFAULT '',
    password_hash TEXT NOT NULL DEFAULT '',
    admin         INTEGER NOT NULL DEFAULT 0,
    disabled      INTEGER NOT NULL DEFAULT 0,
    created_at    INTEGER NOT NULL,
    last_seen_at  INTEGER
) STRICT;

-- Memory text is never stored: ciphertext is a Fernet token and key_id
-- names the key that sealed it, so rotation can find rows sealed by an old
-- key.
CREATE TABLE memories (
    id         TEXT PRIMARY KEY,
    owner_id   TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    ciphertext TEXT NOT NULL,
    key_id     TEXT NOT NULL,
    permission TEXT NOT NULL,
    metadata   TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(metadata)),
    expires_at INTEGER,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    version    INTEGER NOT NULL DEFAULT 1
) STRICT;
-- Keyset pagination of a user's memories by either sort.
CREATE INDEX memories_owner_created ON memories (owner_id, created_at, id);
CREATE INDEX memories_owner_updated ON memories (owner_id, updated_at, id);
-- Listings across owners (public memories, personas).
CREATE INDEX memories_permission ON memories (permission, created_at, id);
CREATE INDEX memories_key_id ON memories (key_id);
-- Covers what exact vector search reads of each candidate, so the scan
-- never touches the table pages that hold the (large) ciphertext.
CREATE INDEX memories_search ON memories (id, owner_id, permission, expires_at, version);

CREATE TABLE memory_tags (
    memory_id TEXT NOT NULL REFERENCES memories(id) ON DELETE CASCADE,
    position  INTEGER NOT NULL,
    tag       TEXT NOT NULL,
    PRIMARY KEY (memory_id, tag)
) STRICT, WITHOUT ROWID;
CREATE INDEX memory_tags_tag ON memory_tags (tag, memory_id);

CREATE TABLE memory_shares (
    memory_id TEXT NOT NULL REFERENCES memories(id) ON DELETE CASCADE,
    user_id   TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    PRIMARY KEY (memory_id, user_id)
) STRICT, WITHOUT ROWID;
CREATE INDEX memory_shares_user ON memory_shares (user_id);

CREATE TABLE memory_embeddings (
    memory_id TEXT PRIMARY KEY REFERENCES memories(id) ON DELETE CASCADE,
    embedder  TEXT NOT NULL,
    dim       INTEGER NOT NULL CHECK (dim > 0),
    embedding BLOB NOT NULL,
    CHECK (length(embedding) = 4 * dim)
) STRICT;
-- Covers the candidate query of vector search (embedder, dim → memory).
CREATE INDEX memory_embeddings_embedder ON memory_embeddings (embedder, dim, memory_id);

-- user_id is NULL for events without an account (a failed login for an
-- unknown email).
CREATE TABLE activity (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id     TEXT REFERENCES users(id) ON DELETE CASCADE,
    client_id   TEXT NOT NULL DEFAULT '',
    action      TEXT NOT NULL,
    outcome     TEXT NOT NULL,
    duration_ms INTEGER NOT NULL DEFAULT 0,
    at          INTEGER NOT NULL
) STRICT;
CREATE INDEX activity_user_at ON activity (user_id, at);
CREATE INDEX activity_at ON activity (at);

-- +goose Down
DROP TABLE activity;
DROP TABLE memory_embeddings;
DROP TABLE memory_shares;
DROP TABLE memory_tags;
DROP TABLE memories;
DROP TABLE users;
