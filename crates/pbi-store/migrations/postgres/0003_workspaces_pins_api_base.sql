-- Workspaces with pinned Power BI tiles, and a registration's API base.
ALTER TABLE registrations ADD COLUMN api_base TEXT;
CREATE TABLE workspaces (
    id TEXT PRIMARY KEY,
    owner TEXT NOT NULL REFERENCES users (id),
    name TEXT NOT NULL,
    company_filter TEXT,
    created_at BIGINT NOT NULL
);
CREATE INDEX workspaces_owner ON workspaces (owner);
CREATE TABLE pins (
    id TEXT PRIMARY KEY,
    workspace_id TEXT NOT NULL REFERENCES workspaces (id),
    connection_id TEXT NOT NULL REFERENCES connections (id),
    group_id TEXT,
    dashboard_id TEXT NOT NULL,
    tile_id TEXT NOT NULL,
    title TEXT NOT NULL,
    row_span BIGINT NOT NULL,
    col_span BIGINT NOT NULL,
    embed_url TEXT NOT NULL,
    position BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX pins_workspace ON pins (workspace_id);
