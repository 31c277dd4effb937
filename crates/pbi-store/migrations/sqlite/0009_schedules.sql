-- Schedules: background work that recurs (pbi-jobs computes the times; River runs each occurrence as a job).
CREATE TABLE schedules (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    owner TEXT NOT NULL,
    args TEXT NOT NULL,
    recurrence TEXT NOT NULL,
    time_zone TEXT NOT NULL,
    next_run_at BIGINT NOT NULL,
    paused BIGINT NOT NULL DEFAULT 0,
    pending_job_id BIGINT,
    last_run_at BIGINT,
    last_outcome TEXT,
    last_error TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX schedules_kind_owner ON schedules (kind, owner);
CREATE INDEX schedules_due ON schedules (paused, next_run_at);
