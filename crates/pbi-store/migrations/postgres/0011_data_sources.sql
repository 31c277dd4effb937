-- Seed 001's data sources: where an item's query runs (a PostgreSQL or SQLite database) or what it calls (an
-- HTTP endpoint), with the credential sealed like every secret (bound to its row; NULL: none stored).
CREATE TABLE data_sources (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    name_folded TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    location TEXT NOT NULL,
    username TEXT,
    credential_header TEXT,
    credential BYTEA,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
