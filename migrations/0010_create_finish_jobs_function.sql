-- Ending a worker's runs, or handing its jobs back, without breaking Procrastinate's rules.
--
-- howdah_retry_job puts a running job back to wait (procrastinate_retry_job_v2). A
-- queueing lock (an idempotency key) allows one waiting job per value, and while the job
-- ran, a client may have deferred another job with the same key; the retry would then
-- violate that unique index. The job keeps running its course, so it waits again
-- without the key: the key still holds the other job's place, as it would have had the
-- job retried a moment earlier.
CREATE FUNCTION howdah_retry_job(
    p_id bigint,
    p_retry_at timestamptz,
    p_priority integer,
    p_queue character varying,
    p_lock text
)
    RETURNS void
    LANGUAGE plpgsql
AS $$
BEGIN
    PERFORM procrastinate_retry_job_v2(p_id, p_retry_at, p_priority, p_queue, p_lock);
EXCEPTION WHEN unique_violation THEN
    UPDATE procrastinate_jobs SET queueing_lock = NULL WHERE id = p_id;
    PERFORM procrastinate_retry_job_v2(p_id, p_retry_at, p_priority, p_queue, p_lock);
END;
$$;

-- Jobs a worker took but never started (a fetch whose reply was lost) go back to wait,
-- attempts unchanged; one whose abort was requested meanwhile ends aborted. Only jobs
-- still 'doing' on that worker are touched; the ids handed back are returned.
CREATE FUNCTION howdah_release_jobs(p_worker_id bigint, p_ids bigint[])
    RETURNS SETOF bigint
    LANGUAGE plpgsql
AS $$
DECLARE
    r record;
BEGIN
    FOR r IN
        SELECT j.id, j.abort_requested FROM procrastinate_jobs j
         WHERE j.id = ANY (p_ids) AND j.status = 'doing' AND j.worker_id = p_worker_id
         ORDER BY j.id
           FOR UPDATE
    LOOP
        IF r.abort_requested THEN
            PERFORM procrastinate_finish_job_v1(r.id, 'aborted', false);
        ELSE
            BEGIN
                UPDATE procrastinate_jobs SET status = 'todo', worker_id = NULL WHERE id = r.id;
            EXCEPTION WHEN unique_violation THEN  -- its key is taken: see howdah_retry_job
                UPDATE procrastinate_jobs
                   SET status = 'todo', worker_id = NULL, queueing_lock = NULL
                 WHERE id = r.id;
            END;
        END IF;
        RETURN NEXT r.id;
    END LOOP;
END;
$$;

-- A worker's finished runs, applied in one statement: each job gets its end status
-- (procrastinate_finish_job_v1) or goes back to wait for its retry (howdah_retry_job),
-- so Procrastinate's semantics and events stay as they are.
--
-- A change applies only while the job is still 'doing' on the same attempt as the run
-- that ended. A job that someone else moved on meanwhile (stalled-job recovery after a
-- long outage, say) is left alone and reported as not applied, never failed on.
CREATE FUNCTION howdah_finish_jobs(
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
BEGIN
    FOR i IN 1 .. coalesce(array_length(p_ids, 1), 0) LOOP
        job_id := p_ids[i];
        PERFORM 1 FROM procrastinate_jobs j
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
        RETURN NEXT;
    END LOOP;
END;
$$;
