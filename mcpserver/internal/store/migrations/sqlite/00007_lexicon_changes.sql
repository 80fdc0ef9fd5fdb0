-- +goose Up
-- SQLite also keeps the lexical index in memory (store/lexical_memory.go),
-- coherent through memory_changes as the search index is: these triggers log
-- the writes to memory_lexicon that touch no other logged table, such as
-- `mcpserver reindex`, which rewrites only a memory's index rows.
-- memory_terms is only ever written together with memory_lexicon, so it
-- needs no trigger of its own (which would log a row per term).
-- +goose StatementBegin
CREATE TRIGGER memory_lexicon_changed_insert AFTER INSERT ON memory_lexicon BEGIN
    INSERT INTO memory_changes (memory_id) VALUES (NEW.memory_id);
END;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE TRIGGER memory_lexicon_changed_update AFTER UPDATE ON memory_lexicon BEGIN
    INSERT INTO memory_changes (memory_id) VALUES (OLD.memory_id);
    INSERT INTO memory_changes (memory_id) SELECT NEW.memory_id WHERE NEW.memory_id <> OLD.memory_id;
END;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE TRIGGER memory_lexicon_changed_delete AFTER DELETE ON memory_lexicon BEGIN
    INSERT INTO memory_changes (memory_id) VALUES (OLD.memory_id);
END;
-- +goose StatementEnd

-- +goose Down
DROP TRIGGER memory_lexicon_changed_delete;
DROP TRIGGER memory_lexicon_changed_update;
DROP TRIGGER memory_lexicon_changed_insert;
