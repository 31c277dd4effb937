-- Seed 001's subscriptions: one per pin, a user's (owner) through one of their Power BI connections, of an
-- item with the parameters the pin fixed, to a dashboard, with what the pin made in Power BI (the push dataset,
-- the cloned report, the tile), how often (pbi-subscriptions' frequency, JSON) in which time zone, and its state:
-- active, paused (with the reason: sign in again, integration gone) or disabled (with the reason).
CREATE TABLE subscriptions (
    id TEXT PRIMARY KEY,
    owner TEXT NOT NULL REFERENCES users (id),
    connection_id TEXT NOT NULL,
    item_id TEXT NOT NULL REFERENCES items (id),
    parameters TEXT NOT NULL,
    workspace_id TEXT,
    workspace_name TEXT NOT NULL,
    dashboard_id TEXT NOT NULL,
    dashboard_name TEXT NOT NULL,
    dataset_id TEXT,
    report_id TEXT,
    tile_id TEXT,
    frequency TEXT NOT NULL,
    time_zone TEXT NOT NULL,
    state TEXT NOT NULL,
    state_reason TEXT,
    missing_runs BIGINT NOT NULL DEFAULT 0,
    last_error TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX subscriptions_owner ON subscriptions (owner, created_at);
-- Each delivery of a subscription: when, how long, how many rows in how many POSTs, Power BI's request ids,
-- the outcome and error, and its progress (JSON) so that a delivery spread over snoozes goes on where it was.
CREATE TABLE deliveries (
    id TEXT PRIMARY KEY,
    subscription_id TEXT NOT NULL REFERENCES subscriptions (id) ON DELETE CASCADE,
    started_at BIGINT NOT NULL,
    ended_at BIGINT,
    row_count BIGINT,
    post_count BIGINT NOT NULL DEFAULT 0,
    request_ids TEXT NOT NULL,
    outcome TEXT NOT NULL,
    error TEXT,
    progress TEXT
);
CREATE INDEX deliveries_subscription ON deliveries (subscription_id, started_at);
