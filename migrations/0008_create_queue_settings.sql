-- Per-queue caps on running jobs, counted across every worker when jobs are fetched:
-- max_running for the whole queue, organization_max_running for each organization in
-- it (overriding nothing: the worker-wide ORG_MAX_RUNNING applies as well). NULL: no cap.
CREATE TABLE queue_settings (
    queue_name varchar(128) PRIMARY KEY,
    max_running integer CHECK (max_running > 0),
    organization_max_running integer CHECK (organization_max_running > 0),
    updated_at timestamptz NOT NULL DEFAULT now()
);
