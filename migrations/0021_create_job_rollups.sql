-- What the overview reads instead of counting the job tables on each view.
--
-- job_minutes: runs ended per minute, queue and organization, for the last-hour figures
-- and the sparklines. The worker adds to it where it writes the runs' ends
-- (howdah_finish_jobs, below), one upsert per (minute, queue, organization) of a batch,
-- so the last hour is a short range of this primary key whatever the size of the job
-- tables. Housekeeping deletes minutes older than a week.
CREATE TABLE job_minutes (
    minute timestamptz NOT NULL,
    queue_name character varying(128) NOT NULL,
    organization text NOT NULL,  -- args ->> 'organization_id'; '' for none
    finished integer NOT NULL DEFAULT 0,  -- runs that ended, whatever their outcome
    failed integer NOT NULL DEFAULT 0,    -- runs that ended in an error
    PRIMARY KEY (minute, queue_name, organization)
);

-- job_state_counts: finished jobs by queue, organization and state, counted by
-- housekeeping every minute. Counting a million rows takes a quarter of a second, too
-- long for each view of a page that refreshes every few seconds; waiting, scheduled
-- and running jobs are few and counted live, from their partial indexes.
CREATE TABLE job_state_counts (
    queue_name character varying(128) NOT NULL,
    organization text NOT NULL,
    status text NOT NULL,
    jobs bigint NOT NULL,
    counted_at timestamptz NOT NULL,
    PRIMARY KEY (queue_name, organization, status)
);

-- howdah_finish_jobs as in 0010, counting the runs it ends in job_minutes. It reads each
-- job's queue and organization from the row it locks anyway, and adds them up once per
-- call, in key order, so that two workers adding to the same minute lock its rows in
-- the same order.
CREATE OR REPLACE FUNCTION howdah_finish_jobs(
    p_ids bigint[],
    p_attempts integer[],       -- the job's attempts when it was fetched
    p_statuses text[],          -- succeeded, failed or aborted
    p_retry_at timestamptz[],   -- not NULL: retry at this time instead
    p_retry_priority integer[],
    p_retry_queue character varying[],
    p_retry_lock text[]
)
    RETURNS TABLE (job_id bigint, applied boolean)
    LANGUAGE plpgsql
AS $$
DECLARE
    i integer;
    v_queue character varying;
    v_org text;
    v_queues character varying[] := '{}';
    v_orgs text[] := '{}';
    v_failed boolean[] := '{}';
BEGIN
    FOR i IN 1 .. coalesce(array_length(p_ids, 1), 0) LOOP
        job_id := p_ids[i];
        SELECT j.queue_name, coalesce(j.args ->> 'organization_id', '') INTO v_queue, v_org
          FROM procrastinate_jobs j
         WHERE j.id = p_ids[i] AND j.status = 'doing' AND j.attempts = p_attempts[i]
           FOR UPDATE;
        applied := FOUND;
        IF applied AND p_retry_at[i] IS NOT NULL THEN
            PERFORM howdah_retry_job(
                p_ids[i], p_retry_at[i], p_retry_priority[i], p_retry_queue[i], p_retry_lock[i]
            );
        ELSIF applied THEN
            PERFORM procrastinate_finish_job_v1(
                p_ids[i], p_statuses[i]::procrastinate_job_status, false
            );
        END IF;
        IF applied THEN
            v_queues := v_queues || v_queue;
            v_orgs := v_orgs || v_org;
            v_failed := v_failed || (p_statuses[i] <> 'succeeded');
        END IF;
        RETURN NEXT;
    END LOOP;

    INSERT INTO job_minutes AS m (minute, queue_name, organization, finished, failed)
    SELECT date_trunc('minute', now()), r.queue, r.org, count(*), count(*) FILTER (WHERE r.failed)
      FROM unnest(v_queues, v_orgs, v_failed) AS r (queue, org, failed)
     GROUP BY 1, 2, 3
     ORDER BY 1, 2, 3
    ON CONFLICT (minute, queue_name, organization) DO UPDATE SET
        finished = m.finished + excluded.finished, failed = m.failed + excluded.failed;
END;
$$;
