-- A running task reports how far it has come (a fraction and a short message), for the
-- job's page and the API. One row per job, overwritten by each report and kept after the
-- job ends, so a finished job still shows its last progress. The row goes with its job
-- (ON DELETE CASCADE), so retention's deletes need not know about it. Referencing the
-- job takes only a key-share lock on it, which never blocks the worker's status updates.
CREATE TABLE job_progress (
    job_id bigint PRIMARY KEY REFERENCES procrastinate_jobs (id) ON DELETE CASCADE,
    fraction real NOT NULL CHECK (fraction BETWEEN 0 AND 1),
    message text NOT NULL DEFAULT '' CHECK (length(message) <= 200),
    updated_at timestamptz NOT NULL DEFAULT now()
);
