-- The job that carries a delivery (its attempts, snoozes and retries all go on the same delivery), and at most
-- one delivery under way per subscription: a run asked for while another is under way finds it (and leaves it
-- to its job, or takes it over when that job has ended) instead of interleaving its rows with it.
ALTER TABLE deliveries ADD COLUMN job_id BIGINT;
CREATE UNIQUE INDEX deliveries_one_open ON deliveries (subscription_id) WHERE ended_at IS NULL;
