-- Runs once, when the db-mcp volume is first initialised: pgvector is
-- enabled by the superuser so the migrations of mcpserver do not need that
-- privilege (they also run CREATE EXTENSION IF NOT EXISTS, a no-op then).
CREATE EXTENSION IF NOT EXISTS vector;
