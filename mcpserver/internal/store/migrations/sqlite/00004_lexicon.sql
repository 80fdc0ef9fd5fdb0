-- +goose Up
-- The lexical blind index (see store/lexical.go); the Postgres twin in
-- ../postgres explains it. Memory text is encrypted, so the index holds no
-- words: each term is stored as the first 8 bytes of
-- HMAC-SHA256(MCP_INDEX_KEY, term), read as a signed 64-bit integer.
CREATE TABLE memory_lexicon (
    memory_id TEXT PRIMARY KEY REFERENCES memories(id) ON DELETE CASCADE,
    indexer   TEXT NOT NULL,
    doc_len   INTEGER NOT NULL CHECK (doc_len >= 0)
) STRICT, WITHOUT ROWID;
CREATE INDEX memory_lexicon_indexer ON memory_lexicon (indexer);

-- WITHOUT ROWID: the table is its primary key's b-tree, so a lookup by
-- term reads tf without a second access.
CREATE TABLE memory_terms (
    term_hash INTEGER NOT NULL,
    memory_id TEXT NOT NULL REFERENCES memories(id) ON DELETE CASCADE,
    tf        INTEGER NOT NULL CHECK (tf > 0),
    PRIMARY KEY (term_hash, memory_id)
) STRICT, WITHOUT ROWID;
CREATE INDEX memory_terms_memory ON memory_terms (memory_id);

-- +goose Down
DROP TABLE memory_terms;
DROP TABLE memory_lexicon;
