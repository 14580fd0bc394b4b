-- A worker's finished runs, applied in one statement: each job gets its end status
-- (procrastinate_finish_job_v1) or goes back to wait for its retry
-- (procrastinate_retry_job_v2), so Procrastinate's semantics and events stay as they are.
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
            PERFORM procrastinate_retry_job_v2(
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
