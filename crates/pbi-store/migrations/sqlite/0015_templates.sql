-- Seed 001's templates, one row per visual kind: the templates workspace, the kind's template push dataset and
-- the template dashboard pbi-bridge made, and (once an administrator pinned the kind's visual in Power BI and the
-- check found it) the report and the tile that a pin clones.
CREATE TABLE templates (
    kind TEXT PRIMARY KEY,
    workspace_id TEXT NOT NULL,
    dataset_id TEXT NOT NULL,
    dashboard_id TEXT NOT NULL,
    report_id TEXT,
    tile_id TEXT,
    checked_at BIGINT,
    updated_at BIGINT NOT NULL
);
