-- Seed 001's report items: what the application lets its users pin (its definition: a visual kind, typed
-- columns and their roles, as pbi-subscriptions checked it), where its rows come from (a query on a data
-- source, an HTTP endpoint, or rows the application pushes), and who may pin it (everyone, or item_pinners).
CREATE TABLE items (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    name_folded TEXT NOT NULL UNIQUE,
    definition TEXT NOT NULL,
    source TEXT NOT NULL,
    data_source_id TEXT REFERENCES data_sources (id),
    query TEXT,
    parameters TEXT NOT NULL,
    everyone BIGINT NOT NULL,
    pushed_rows TEXT,
    pushed_at BIGINT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE TABLE item_pinners (
    item_id TEXT NOT NULL REFERENCES items (id) ON DELETE CASCADE,
    user_id TEXT NOT NULL REFERENCES users (id),
    PRIMARY KEY (item_id, user_id)
);
CREATE INDEX item_pinners_user ON item_pinners (user_id);
