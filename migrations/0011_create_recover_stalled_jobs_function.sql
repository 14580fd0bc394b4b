-- Stalled-job recovery: jobs left 'doing' by a worker whose heartbeat went silent.
--
-- A worker is silent when its last heartbeat, or the server's own start if that is
-- later, is older than p_stalled_seconds: after a PostgreSQL restart every live worker
-- gets that long to beat again before any of its jobs counts as stalled. A job whose
-- worker row is gone (pruned) counts once it started that long ago: a live worker that
-- finds its row gone registers again and re-claims its jobs within a heartbeat.
--
-- If the run's outcome is on record in job_attempts (its worker wrote it, then could not
-- write the status), that outcome is applied: the job is not run again. Otherwise the
-- run is recorded as lost, naming its worker as it was named, and the job is aborted if
-- an abort was requested, failed once it has lost p_max_lost runs, and retried otherwise.
-- Rows another transaction holds are skipped, so overlapping runs never collide.
CREATE FUNCTION howdah_recover_stalled_jobs(p_stalled_seconds double precision, p_max_lost integer)
    RETURNS TABLE (job_id bigint, worker_name text, action text)
    LANGUAGE plpgsql
AS $$
DECLARE
    v_cutoff timestamptz := now() - make_interval(secs => p_stalled_seconds);
    v_outcome job_attempts%ROWTYPE;
    v_lost integer;
    r record;
BEGIN
    IF pg_postmaster_start_time() > v_cutoff THEN
        RETURN;
    END IF;
    FOR r IN
        SELECT j.id, j.attempts, j.abort_requested, j.worker_id
          FROM procrastinate_jobs j
          LEFT JOIN procrastinate_workers w ON w.id = j.worker_id
         WHERE j.status = 'doing'
           AND CASE WHEN j.worker_id IS NULL
                    THEN coalesce((SELECT max(e.at) FROM procrastinate_events e
                                    WHERE e.job_id = j.id AND e.type = 'started'),
                                  '-infinity') < v_cutoff
                    ELSE w.last_heartbeat < v_cutoff
               END
         ORDER BY j.id
           FOR UPDATE OF j SKIP LOCKED
    LOOP
        job_id := r.id;
        SELECT * INTO v_outcome FROM job_attempts a
         WHERE a.job_id = r.id AND a.attempt = r.attempts + 1 AND a.outcome <> 'lost';
        IF FOUND THEN
            worker_name := v_outcome.worker_name;
            IF v_outcome.retry_at IS NOT NULL THEN
                PERFORM procrastinate_retry_job_v2(r.id, v_outcome.retry_at, NULL, NULL, NULL);
                action := 'applied recorded retry';
            ELSE
                PERFORM procrastinate_finish_job_v1(
                    r.id, v_outcome.outcome::procrastinate_job_status, false
                );
                action := 'applied recorded ' || v_outcome.outcome;
            END IF;
            RETURN NEXT;
            CONTINUE;
        END IF;

        worker_name := coalesce(
            (SELECT g.name FROM worker_registry g WHERE g.worker_id = r.worker_id),
            'worker #' || r.worker_id,
            'an unknown worker'
        );
        INSERT INTO job_attempts (job_id, attempt, worker_name, outcome, started_at,
                                  finished_at, error_class, error_message)
        SELECT r.id, r.attempts + 1, worker_name, 'lost', coalesce(max(e.at), now()), now(),
               'WorkerLost', 'the worker stopped sending heartbeats while running this job'
          FROM procrastinate_events e
         WHERE e.job_id = r.id AND e.type = 'started'
        ON CONFLICT ON CONSTRAINT job_attempts_pkey DO NOTHING;
        SELECT count(*) INTO v_lost FROM job_attempts a
         WHERE a.job_id = r.id AND a.outcome = 'lost';

        IF r.abort_requested THEN
            PERFORM procrastinate_finish_job_v1(r.id, 'aborted', false);
            action := 'aborted';
        ELSIF v_lost >= p_max_lost THEN
            PERFORM procrastinate_finish_job_v1(r.id, 'failed', false);
            action := 'failed';
        ELSE
            PERFORM procrastinate_retry_job_v2(r.id, now(), NULL, NULL, NULL);
            action := 'retried';
        END IF;
        RETURN NEXT;
    END LOOP;
END;
$$;
