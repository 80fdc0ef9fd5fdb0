-- +goose Up
-- A log of the memories whose lexically indexed data (owner, permission,
-- expiry, version, shares, lexicon row) changed, appended by triggers so
-- that every writer — this process, another replica, an admin command, a
-- cascade — is seen. The lexical index is kept in memory by each process
-- (store/lexical_memory.go), which before each query re-reads the memories
-- logged since it last looked, and prunes the log's old rows.
--
-- Unlike SQLite's (sqlite/00006 and 00007), this log cannot be read past a
-- cursor: seq is assigned when a row is inserted, but transactions commit
-- in any order, so a reader can see seq 10 while seq 9 is uncommitted. tx
-- is the writing transaction's id instead, and a reader asks for the rows
-- of the transactions its last snapshot did not see (store/changes.go).
-- memory_embeddings is not logged: Postgres keeps no vectors in memory.
CREATE TABLE memory_changes (
    seq       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    memory_id uuid NOT NULL,
    tx        xid8 NOT NULL DEFAULT pg_current_xact_id()
);
CREATE INDEX memory_changes_tx ON memory_changes (tx);

-- One row: the rows of the transactions below horizon may have been
-- pruned, so a reader whose last snapshot's xmin is below it loads in full.
CREATE TABLE memory_changes_pruned (
    one     boolean PRIMARY KEY DEFAULT true CHECK (one),
    horizon xid8 NOT NULL
);
INSERT INTO memory_changes_pruned (horizon) VALUES ('0');

-- Statement-level triggers with transition tables: bulk writes insert
-- 1,000 rows per statement, which then log in one INSERT rather than a
-- trigger call per row. Postgres allows transition tables only on
-- triggers of one event and without a column list, hence one trigger per
-- event, and for memories an UPDATE trigger that logs only the rows whose
-- indexed columns changed (re-sealing by `mcpserver keys rotate` does not).
-- +goose StatementBegin
CREATE FUNCTION memory_changes_log_inserted_memories() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO memory_changes (memory_id) SELECT id FROM new_rows;
    RETURN NULL;
END
$$;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE FUNCTION memory_changes_log_deleted_memories() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO memory_changes (memory_id) SELECT id FROM old_rows;
    RETURN NULL;
END
$$;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE FUNCTION memory_changes_log_updated_memories() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- A changed id leaves an old row without a new one and a new row
    -- without an old one: both are logged.
    INSERT INTO memory_changes (memory_id)
    SELECT coalesce(o.id, n.id) FROM old_rows o FULL JOIN new_rows n ON n.id = o.id
    WHERE o.id IS NULL OR n.id IS NULL
       OR (o.owner_id, o.permission, o.expires_at, o.version) IS DISTINCT FROM (n.owner_id, n.permission, n.expires_at, n.version);
    RETURN NULL;
END
$$;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE FUNCTION memory_changes_log_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO memory_changes (memory_id) SELECT memory_id FROM new_rows;
    RETURN NULL;
END
$$;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE FUNCTION memory_changes_log_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO memory_changes (memory_id) SELECT memory_id FROM old_rows;
    RETURN NULL;
END
$$;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE FUNCTION memory_changes_log_updated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO memory_changes (memory_id)
    SELECT memory_id FROM old_rows UNION SELECT memory_id FROM new_rows;
    RETURN NULL;
END
$$;
-- +goose StatementEnd

CREATE TRIGGER memories_changed_insert AFTER INSERT ON memories
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION memory_changes_log_inserted_memories();
CREATE TRIGGER memories_changed_update AFTER UPDATE ON memories
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION memory_changes_log_updated_memories();
CREATE TRIGGER memories_changed_delete AFTER DELETE ON memories
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION memory_changes_log_deleted_memories();

-- memory_shares and memory_lexicon: memory_terms is only ever written
-- together with memory_lexicon (insert, replaceIndex, cascades), so it
-- needs no trigger of its own (which would log a row per term).
CREATE TRIGGER memory_shares_changed_insert AFTER INSERT ON memory_shares
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION memory_changes_log_inserted();
CREATE TRIGGER memory_shares_changed_update AFTER UPDATE ON memory_shares
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION memory_changes_log_updated();
CREATE TRIGGER memory_shares_changed_delete AFTER DELETE ON memory_shares
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION memory_changes_log_deleted();
CREATE TRIGGER memory_lexicon_changed_insert AFTER INSERT ON memory_lexicon
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION memory_changes_log_inserted();
CREATE TRIGGER memory_lexicon_changed_update AFTER UPDATE ON memory_lexicon
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION memory_changes_log_updated();
CREATE TRIGGER memory_lexicon_changed_delete AFTER DELETE ON memory_lexicon
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION memory_changes_log_deleted();

-- +goose Down
DROP TRIGGER memory_lexicon_changed_delete ON memory_lexicon;
DROP TRIGGER memory_lexicon_changed_update ON memory_lexicon;
DROP TRIGGER memory_lexicon_changed_insert ON memory_lexicon;
DROP TRIGGER memory_shares_changed_delete ON memory_shares;
DROP TRIGGER memory_shares_changed_update ON memory_shares;
DROP TRIGGER memory_shares_changed_insert ON memory_shares;
DROP TRIGGER memories_changed_delete ON memories;
DROP TRIGGER memories_changed_update ON memories;
DROP TRIGGER memories_changed_insert ON memories;
DROP FUNCTION memory_changes_log_updated();
DROP FUNCTION memory_changes_log_deleted();
DROP FUNCTION memory_changes_log_inserted();
DROP FUNCTION memory_changes_log_updated_memories();
DROP FUNCTION memory_changes_log_deleted_memories();
DROP FUNCTION memory_changes_log_inserted_memories();
DROP TABLE memory_changes_pruned;
DROP TABLE memory_changes;
