-- Each organization sends at most sms_per_second messages a second, across every worker.
-- A send takes the next free slot of its organization from sms_send_slots (one row per
-- organization, updated in one statement, so concurrent workers queue on the row lock
-- and each gets its own slot) and waits for it: the limit delays messages, it never
-- drops them.
ALTER TABLE organizations
    ADD COLUMN sms_per_second integer NOT NULL DEFAULT 10
        CHECK (sms_per_second BETWEEN 1 AND 1000);

CREATE TABLE sms_send_slots (
    organization_id bigint PRIMARY KEY REFERENCES organizations (id) ON DELETE CASCADE,
    next_at timestamptz NOT NULL
);
