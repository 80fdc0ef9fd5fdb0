-- +goose Up
-- The lexical blind index (see store/lexical.go). Memory text is encrypted,
-- so the index holds no words: each term of a memory (normalised and
-- stemmed by internal/terms) is stored as the first 8 bytes of
-- HMAC-SHA256(MCP_INDEX_KEY, term), a key separate from the encryption keys.
-- Without the index key the hashes cannot be linked to words.

-- One row per indexed memory: its length in terms (BM25 normalises term
-- frequency by it) and the indexer that made its rows, the terms version
-- and a fingerprint of the index key, so `mcpserver reindex` finds the
-- memories indexed by another version or key.
CREATE TABLE memory_lexicon (
    memory_id uuid PRIMARY KEY REFERENCES memories(id) ON DELETE CASCADE,
    indexer   text NOT NULL,
    doc_len   integer NOT NULL CHECK (doc_len >= 0)
);
CREATE INDEX memory_lexicon_indexer ON memory_lexicon (indexer);

-- The postings: term hash → memory with the term's frequency in it. The
-- primary key serves lexical search (and document frequencies) by term;
-- INCLUDE (tf) lets that be an index-only scan. The second index serves
-- replacing or deleting a memory's terms.
CREATE TABLE memory_terms (
    term_hash bigint NOT NULL,
    memory_id uuid NOT NULL REFERENCES memories(id) ON DELETE CASCADE,
    tf        integer NOT NULL CHECK (tf > 0),
    PRIMARY KEY (term_hash, memory_id) INCLUDE (tf)
);
CREATE INDEX memory_terms_memory ON memory_terms (memory_id);

-- +goose Down
DROP TABLE memory_terms;
DROP TABLE memory_lexicon;
