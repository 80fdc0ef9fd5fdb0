-- +goose Up
-- Request rates per access token (see the Postgres twin): one row per
-- bucket (an access token's id) with the GCRA "theoretical arrival time" in
-- microseconds since the Unix epoch; a row whose tat has passed means the
-- same as no row and is pruned.
CREATE TABLE rate_limits (
    bucket TEXT PRIMARY KEY,
    tat INTEGER NOT NULL
) STRICT, WITHOUT ROWID;
CREATE INDEX rate_limits_tat ON rate_limits (tat);

-- +goose Down
DROP TABLE rate_limits;
