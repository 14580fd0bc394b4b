-- A cancelled or aborted job is run again as a new job, and only once: this table
-- holds which job each retry copies. A second retry of the same job finds its row
-- (the primary key also settles two retries at the same moment), so retrying makes
-- at most one copy of a job, and at most one job of a chain of copies waits or runs.
-- Rows go with either job when retention deletes it.
CREATE TABLE job_retries (
    job_id bigint PRIMARY KEY REFERENCES procrastinate_jobs (id) ON DELETE CASCADE,
    retry_job_id bigint NOT NULL UNIQUE REFERENCES procrastinate_jobs (id) ON DELETE CASCADE,
    retried_at timestamptz NOT NULL DEFAULT now()
);
