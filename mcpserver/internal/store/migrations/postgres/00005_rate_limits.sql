-- +goose Up
-- Request rates per access token, shared by every instance that serves from
-- this database, so a token's limit holds however requests are balanced.
-- One row per bucket (an access token's id) with the GCRA "theoretical
-- arrival time" in microseconds since the Unix epoch; a row whose tat has
-- passed means the same as no row and is pruned. UNLOGGED: the state is
-- worth nothing after a crash, and skipping the WAL keeps the write on
-- every request cheap.
CREATE UNLOGGED TABLE rate_limits (
    bucket text PRIMARY KEY,
    tat bigint NOT NULL
);
CREATE INDEX rate_limits_tat ON rate_limits (tat);

-- +goose Down
DROP TABLE rate_limits;
