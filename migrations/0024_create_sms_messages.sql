-- One row per SMS a job sends, from the moment it is about to go to the provider until
-- the provider's last delivery receipt.
--
-- job_id is unique: a retried job finds its own row here, and once the provider has
-- accepted the message (provider_message_id is set) it never sends it again. Jobs are
-- purged long before their messages' records, so job_id has no foreign key.
-- status: pending (recorded, not accepted yet); queued, sending, sent, delivered,
-- delivery_failed, sending_failed, delivery_unconfirmed (the provider's word, from its
-- answer and its receipts); failed (refused by the provider at once, with error_code
-- and error_message); unknown (a request left but no answer came back: the provider
-- may have sent it, so it is never sent again); logged (the console provider, which
-- sends nothing).
-- send_started_at: set just before a request leaves for the provider, and cleared when
-- the provider answers with a refusal; a run that finds it set with no provider message
-- id (its worker was killed mid-request, or the answer never came) does not send again.
-- status_at: when the latest status happened, by the provider's clock; a receipt older
-- than it, or the same one replayed, changes nothing.
-- The body is not kept: the job's arguments hold it until the job is purged.
CREATE TABLE sms_messages (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    organization_id bigint NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    job_id bigint NOT NULL UNIQUE,
    provider text NOT NULL,
    to_number text NOT NULL,
    segments integer NOT NULL CHECK (segments >= 1),
    provider_message_id text UNIQUE,
    status text NOT NULL DEFAULT 'pending' CHECK (
        status IN (
            'pending', 'queued', 'sending', 'sent', 'delivered', 'delivery_failed',
            'sending_failed', 'delivery_unconfirmed', 'failed', 'unknown', 'logged'
        )
    ),
    error_code text,
    error_message text,
    created_at timestamptz NOT NULL DEFAULT now(),
    send_started_at timestamptz,
    accepted_at timestamptz,
    status_at timestamptz,
    updated_at timestamptz NOT NULL DEFAULT now()
);
-- The digests and the admin pages count an organization's messages over a period.
CREATE INDEX sms_messages_organization_id_created_at_idx
    ON sms_messages (organization_id, created_at);
