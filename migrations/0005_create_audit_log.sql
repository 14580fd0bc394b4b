-- Who did what to which target, when and from where: job cancels and retries,
-- token changes, logins that succeeded or failed. Failed logins also drive the
-- login throttle, hence the partial index.
CREATE TABLE audit_log (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at timestamptz NOT NULL DEFAULT now(),
    actor_type text NOT NULL CHECK (actor_type IN ('user', 'token', 'cli', 'anonymous')),
    actor_id bigint,
    actor_label text NOT NULL DEFAULT '',
    organization_id bigint,
    action text NOT NULL,
    target_type text NOT NULL DEFAULT '',
    target_id text NOT NULL DEFAULT '',
    ip text,
    details jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_log_organization_id_idx ON audit_log (organization_id, id);
CREATE INDEX audit_log_login_failures_idx ON audit_log (at) WHERE action = 'login.failed';
