-- Who gets an organization's email digest, how often, and when.
--
-- A digest is due at `hour` o'clock in `time_zone` (an IANA name) every day, or every
-- week on `weekday` (ISO: 1 is Monday) for weekly ones. last_period is the local date
-- of the last period whose digest was deferred: the scheduler moves it forward in the
-- same transaction that defers the digest, and only if it is older, so each period is
-- deferred exactly once however many workers run the scheduler, and a repeated or
-- skipped wall-clock hour (a daylight-saving change) cannot make a second one.
CREATE TABLE digest_subscriptions (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    organization_id bigint NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    recipients text[] NOT NULL CHECK (cardinality(recipients) BETWEEN 1 AND 100),
    frequency text NOT NULL CHECK (frequency IN ('daily', 'weekly')),
    weekday smallint NOT NULL DEFAULT 1 CHECK (weekday BETWEEN 1 AND 7),
    hour smallint NOT NULL CHECK (hour BETWEEN 0 AND 23),
    time_zone text NOT NULL CHECK (length(time_zone) BETWEEN 1 AND 64),
    last_period date,
    last_job_id bigint,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX digest_subscriptions_organization_id_idx
    ON digest_subscriptions (organization_id, id);
