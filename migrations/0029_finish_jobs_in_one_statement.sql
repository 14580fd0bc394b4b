-- howdah_finish_jobs (migrations 0010 and 0021) ended a batch one job at a time: a
-- SELECT ... FOR UPDATE, then procrastinate_finish_job_v1, which updates the row again.
-- Under load that loop was a third of PostgreSQL's time per job. Now the batch's jobs
-- still on their run are locked in one statement, in id order as before, and every run
-- that ends for good is written by one UPDATE that sets what procrastinate_finish_job_v1
-- sets (status, abort_requested, attempts + 1), so Procrastinate's triggers write the
-- same events. Retries still go one by one through howdah_retry_job. Same signature,
-- same result: one row per input, in input order, saying whether it was applied.

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
    v_status text;
    v_taken integer[];          -- input positions of the runs still on their job
    v_ids bigint[];
    v_statuses text[];
    v_retry boolean[];
    v_queues character varying[];
    v_orgs text[];
    i integer;
BEGIN
    -- The check procrastinate_finish_job_v1 makes, for the whole batch at once.
    SELECT b.status INTO v_status
      FROM unnest(p_statuses, p_retry_at) AS b (status, retry_at)
     WHERE b.retry_at IS NULL
       AND b.status IS DISTINCT FROM 'succeeded'
       AND b.status IS DISTINCT FROM 'failed'
       AND b.status IS DISTINCT FROM 'aborted'
     LIMIT 1;
    IF FOUND THEN
        RAISE 'End status should be either "succeeded", "failed" or "aborted" (status: %)',
            v_status;
    END IF;

    -- The runs still on their job, their rows locked in id order (as every batch writer
    -- locks, so two never wait for each other).
    SELECT array_agg(b.n ORDER BY b.id), array_agg(b.id ORDER BY b.id),
           array_agg(b.status ORDER BY b.id), array_agg(b.retry_at IS NOT NULL ORDER BY b.id),
           array_agg(l.queue_name ORDER BY b.id), array_agg(l.org ORDER BY b.id)
      INTO v_taken, v_ids, v_statuses, v_retry, v_queues, v_orgs
      FROM unnest(p_ids, p_attempts, p_statuses, p_retry_at)
               WITH ORDINALITY AS b (id, attempts, status, retry_at, n)
      JOIN (SELECT j.id, j.attempts, j.queue_name,
                   coalesce(j.args ->> 'organization_id', '') AS org
              FROM procrastinate_jobs j
             WHERE j.id = ANY (p_ids) AND j.status = 'doing'
             ORDER BY j.id
               FOR UPDATE) AS l
        ON l.id = b.id AND l.attempts = b.attempts;

    UPDATE procrastinate_jobs AS j
       SET status = f.status::procrastinate_job_status,
           abort_requested = false,
           attempts = j.attempts + 1
      FROM unnest(v_ids, v_statuses, v_retry) AS f (id, status, retry)
     WHERE j.id = f.id AND NOT f.retry;

    FOR i IN 1 .. coalesce(array_length(v_taken, 1), 0) LOOP
        IF v_retry[i] THEN
            PERFORM howdah_retry_job(
                v_ids[i], p_retry_at[v_taken[i]], p_retry_priority[v_taken[i]],
                p_retry_queue[v_taken[i]], p_retry_lock[v_taken[i]]
            );
        END IF;
    END LOOP;

    INSERT INTO job_minutes AS m (minute, queue_name, organization, finished, failed)
    SELECT date_trunc('minute', now()), r.queue, r.org,
           count(*), count(*) FILTER (WHERE r.status <> 'succeeded')
      FROM unnest(v_queues, v_orgs, v_statuses) AS r (queue, org, status)
     GROUP BY 1, 2, 3
     ORDER BY 1, 2, 3
    ON CONFLICT (minute, queue_name, organization) DO UPDATE SET
        finished = m.finished + excluded.finished, failed = m.failed + excluded.failed;

    RETURN QUERY
    SELECT b.id, coalesce(b.n = ANY (v_taken), false)
      FROM unnest(p_ids) WITH ORDINALITY AS b (id, n)
     ORDER BY b.n;
END;
$$;
