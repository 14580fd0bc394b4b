-- A bulk action on more than 1,000 jobs (cancel, retry or delete) runs as a background
-- job in batches; this row is what its page shows and what the batches advance. Each
-- batch commits with its progress (done, skipped, cursor), so a worker that dies loses
-- at most the batch under way, which the next run does again: every batch re-checks
-- its rule in its WHERE, so a job is never acted on twice.
--
-- organization_id: the only organization whose jobs it touches (NULL: every one, for a
-- platform admin). The selection is either job_ids (the rows ticked) or filter (the
-- list's filters, with the time range already mapped to id bounds), and never reaches
-- past max_id, the newest job when it was started. cursor: batches walk down by id and
-- the next one takes ids below it. platform: started by a platform admin (who may
-- retry platform-only tasks). counted: false while total is only a lower bound (the
-- preview counts at most 10,000 jobs, to stay fast on any table); the first batch then
-- counts the selection exactly, once, in the background.
CREATE TABLE bulk_actions (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    organization_id bigint,
    requested_by_id bigint,
    requested_by_label text NOT NULL DEFAULT '',
    platform boolean NOT NULL DEFAULT false,
    action text NOT NULL CHECK (action IN ('cancel', 'retry', 'delete')),
    filter jsonb,
    job_ids bigint[],
    max_id bigint NOT NULL,
    cursor bigint NOT NULL,
    total integer NOT NULL CHECK (total >= 0),
    counted boolean NOT NULL DEFAULT true,
    done integer NOT NULL DEFAULT 0,
    skipped integer NOT NULL DEFAULT 0,
    status text NOT NULL DEFAULT 'running'
        CHECK (status IN ('running', 'succeeded', 'cancelled', 'failed')),
    cancel_requested boolean NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz,
    error text,
    CHECK ((filter IS NULL) <> (job_ids IS NULL))
);
CREATE INDEX bulk_actions_organization_id_idx ON bulk_actions (organization_id, id);
