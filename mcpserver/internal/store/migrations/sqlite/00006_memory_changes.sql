-- +goose Up
-- A log of the memories whose search metadata (owner, permission, expiry,
-- version, shares, vector) changed, appended by triggers so that every
-- writer — this process, an admin command in another one, a cascade —
-- is seen. Exact vector search keeps that metadata in memory and replays
-- the log past its cursor before each query (search_index.go), which
-- prunes the log's old rows. SQLite only: Postgres searches with HNSW.
CREATE TABLE memory_changes (
    seq       INTEGER PRIMARY KEY AUTOINCREMENT,
    memory_id TEXT NOT NULL
) STRICT;

-- +goose StatementBegin
CREATE TRIGGER memories_changed_insert AFTER INSERT ON memories BEGIN
    INSERT INTO memory_changes (memory_id) VALUES (NEW.id);
END;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE TRIGGER memories_changed_update AFTER UPDATE OF id, owner_id, permission, expires_at, version ON memories BEGIN
    INSERT INTO memory_changes (memory_id) VALUES (OLD.id);
    INSERT INTO memory_changes (memory_id) SELECT NEW.id WHERE NEW.id <> OLD.id;
END;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE TRIGGER memories_changed_delete AFTER DELETE ON memories BEGIN
    INSERT INTO memory_changes (memory_id) VALUES (OLD.id);
END;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE TRIGGER memory_shares_changed_insert AFTER INSERT ON memory_shares BEGIN
    INSERT INTO memory_changes (memory_id) VALUES (NEW.memory_id);
END;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE TRIGGER memory_shares_changed_update AFTER UPDATE ON memory_shares BEGIN
    INSERT INTO memory_changes (memory_id) VALUES (OLD.memory_id);
    INSERT INTO memory_changes (memory_id) VALUES (NEW.memory_id);
END;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE TRIGGER memory_shares_changed_delete AFTER DELETE ON memory_shares BEGIN
    INSERT INTO memory_changes (memory_id) VALUES (OLD.memory_id);
END;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE TRIGGER memory_embeddings_changed_insert AFTER INSERT ON memory_embeddings BEGIN
    INSERT INTO memory_changes (memory_id) VALUES (NEW.memory_id);
END;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE TRIGGER memory_embeddings_changed_update AFTER UPDATE ON memory_embeddings BEGIN
    INSERT INTO memory_changes (memory_id) VALUES (OLD.memory_id);
    INSERT INTO memory_changes (memory_id) SELECT NEW.memory_id WHERE NEW.memory_id <> OLD.memory_id;
END;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE TRIGGER memory_embeddings_changed_delete AFTER DELETE ON memory_embeddings BEGIN
    INSERT INTO memory_changes (memory_id) VALUES (OLD.memory_id);
END;
-- +goose StatementEnd

-- +goose Down
DROP TRIGGER memory_embeddings_changed_delete;
DROP TRIGGER memory_embeddings_changed_update;
DROP TRIGGER memory_embeddings_changed_insert;
DROP TRIGGER memory_shares_changed_delete;
DROP TRIGGER memory_shares_changed_update;
DROP TRIGGER memory_shares_changed_insert;
DROP TRIGGER memories_changed_delete;
DROP TRIGGER memories_changed_update;
DROP TRIGGER memories_changed_insert;
DROP TABLE memory_changes;
