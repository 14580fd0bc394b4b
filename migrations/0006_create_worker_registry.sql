-- Procrastinate's worker rows hold only an id and a heartbeat, and vanish when a worker
-- is pruned. This keeps what each worker was called, where it ran and what it serves,
-- so that a lost attempt names its worker as it was named. There is no foreign key on
-- purpose: a row here outlives Procrastinate's, and housekeeping deletes it later.
CREATE TABLE worker_registry (
    worker_id bigint PRIMARY KEY,
    name text NOT NULL,
    host text NOT NULL DEFAULT '',
    pid integer,
    queues text[],  -- NULL: every queue
    concurrency integer NOT NULL CHECK (concurrency > 0),
    started_at timestamptz NOT NULL DEFAULT now(),
    stopped_at timestamptz
);
