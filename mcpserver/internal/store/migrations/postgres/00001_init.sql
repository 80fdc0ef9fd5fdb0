-- +goose Up
-- The schema of the MCP server. The SQLite twin in ../sqlite has the same
-- tables, columns and indexes; only the types differ.
CREATE EXTENSION IF NOT EXISTS vector;

CREATE TABLE users (
    id            uuid PRIMARY KEY,
    email         text NOT NULL,
    -- Lower-cased by the application, so uniqueness is case-insensitive
    -- with exactly Go's idea of lower case.
    email_lower   text NOT NULL UNIQUE,
    name          text NOT NULL DEFAULT '',
    password_hash text NOT NULL DEFAULT '',
    admin         boolean NOT NULL DEFAULT false,
    disabled      boolean NOT NULL DEFAULT false,
    created_at    timestamptz NOT NULL,
    last_seen_at  timestamptz
);

-- Memory text is never stored: ciphertext is a Fernet token and key_id
-- names the key that sealed it, so rotation can find rows sealed by an old
-- key.
CREATE TABLE memories (
    id         uuid PRIMARY KEY,
    owner_id   uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    ciphertext text NOT NULL,
    key_id     text NOT NULL,
    permission text NOT NULL,
    metadata   jsonb NOT NULL DEFAULT '{}',
    expires_at timestamptz,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    version    bigint NOT NULL DEFAULT 1
);
-- Keyset pagination of a user's memories by either sort.
CREATE INDEX memories_owner_created ON memories (owner_id, created_at, id);
CREATE INDEX memories_owner_updated ON memories (owner_id, updated_at, id);
-- Listings across owners (public memories, personas).
CREATE INDEX memories_permission ON memories (permission, created_at, id);
CREATE INDEX memories_key_id ON memories (key_id);

CREATE TABLE memory_tags (
    memory_id uuid NOT NULL REFERENCES memories(id) ON DELETE CASCADE,
    position  integer NOT NULL,
    tag       text NOT NULL,
    PRIMARY KEY (memory_id, tag)
);
CREATE INDEX memory_tags_tag ON memory_tags (tag, memory_id);

CREATE TABLE memory_shares (
    memory_id uuid NOT NULL REFERENCES memories(id) ON DELETE CASCADE,
    user_id   uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    PRIMARY KEY (memory_id, user_id)
);
CREATE INDEX memory_shares_user ON memory_shares (user_id);

-- The embedding column has no fixed dimension so that embedders of any
-- size can coexist; HNSW indexes are per dimension, partial and on the
-- expression embedding::vector(dim) (see DB.EnsureVectorIndex).
CREATE TABLE memory_embeddings (
    memory_id uuid PRIMARY KEY REFERENCES memories(id) ON DELETE CASCADE,
    embedder  text NOT NULL,
    dim       integer NOT NULL CHECK (dim > 0),
    embedding vector NOT NULL,
    CHECK (vector_dims(embedding) = dim)
);
-- Covers the candidate query of vector search (embedder, dim → memory).
CREATE INDEX memory_embeddings_embedder ON memory_embeddings (embedder, dim, memory_id);

-- user_id is NULL for events without an account (a failed login for an
-- unknown email).
CREATE TABLE activity (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id     uuid REFERENCES users(id) ON DELETE CASCADE,
    client_id   text NOT NULL DEFAULT '',
    action      text NOT NULL,
    outcome     text NOT NULL,
    duration_ms bigint NOT NULL DEFAULT 0,
    at          timestamptz NOT NULL
);
CREATE INDEX activity_user_at ON activity (user_id, at);
CREATE INDEX activity_at ON activity (at);

-- +goose Down
DROP TABLE activity;
DROP TABLE memory_embeddings;
DROP TABLE memory_shares;
DROP TABLE memory_tags;
DROP TABLE memories;
DROP TABLE users;
