-- One row per run of a job, written by the worker's middleware: who ran it,
-- how it ended, and for a failure the error and traceback. Procrastinate's
-- tables keep no error text, result or worker name, so they live here.
CREATE TABLE job_attempts (
    job_id bigint NOT NULL,
    attempt integer NOT NULL CHECK (attempt > 0),
    worker_name text NOT NULL,
    outcome text NOT NULL CHECK (outcome IN ('succeeded', 'failed', 'aborted', 'lost')),
    started_at timestamptz NOT NULL,
    finished_at timestamptz NOT NULL,
    error_class text,
    error_message text,
    traceback text,
    result_summary text,
    PRIMARY KEY (job_id, attempt)
);
