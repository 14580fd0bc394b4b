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
-- Rows another transaction holds are skipped, so overlapping runs never collide, and a
-- job that cannot be recovered (a value out of range, say) is reported and passed over
-- instead of stopping the recovery of the others.
CREATE FUNCTION howdah_recover_stalled_job(
    p_id bigint, p_attempts integer, p_abort_requested boolean, p_worker_id bigint,
    p_max_lost integer, OUT worker_name text, OUT action text
)
    LANGUAGE plpgsql
AS $$
DECLARE
    v_outcome job_attempts%ROWTYPE;
    v_lost integer;
BEGIN
    SELECT * INTO v_outcome FROM job_attempts a
     WHERE a.job_id = p_id AND a.attempt = p_attempts + 1 AND a.outcome <> 'lost';
    IF FOUND THEN
        worker_name := v_outcome.worker_name;
        IF v_outcome.retry_at IS NOT NULL THEN
            PERFORM howdah_retry_job(p_id, v_outcome.retry_at, NULL, NULL, NULL);
            action := 'applied recorded retry';
        ELSE
            PERFORM procrastinate_finish_job_v1(
                p_id, v_outcome.outcome::procrastinate_job_status, false
            );
            action := 'applied recorded ' || v_outcome.outcome;
        END IF;
        RETURN;
    END IF;

    worker_name := coalesce(
        (SELECT g.name FROM worker_registry g WHERE g.worker_id = p_worker_id),
        'worker #' || p_worker_id,
        'an unknown worker'
    );
    INSERT INTO job_attempts (job_id, attempt, worker_name, outcome, started_at,
                              finished_at, error_class, error_message)
    SELECT p_id, p_attempts + 1, worker_name, 'lost', coalesce(max(e.at), now()), now(),
           'WorkerLost', 'the worker stopped sending heartbeats while running this job'
      FROM procrastinate_events e
     WHERE e.job_id = p_id AND e.type = 'started'
    ON CONFLICT ON CONSTRAINT job_attempts_pkey DO NOTHING;
    SELECT count(*) INTO v_lost FROM job_attempts a WHERE a.job_id = p_id AND a.outcome = 'lost';

    IF p_abort_requested THEN
        PERFORM procrastinate_finish_job_v1(p_id, 'aborted', false);
        action := 'aborted';
    ELSIF v_lost >= p_max_lost THEN
        PERFORM procrastinate_finish_job_v1(p_id, 'failed', false);
        action := 'failed';
    ELSE
        PERFORM howdah_retry_job(p_id, now(), NULL, NULL, NULL);
        action := 'retried';
    END IF;
END;
$$;

CREATE FUNCTION howdah_recover_stalled_jobs(p_stalled_seconds double precision, p_max_lost integer)
    RETURNS TABLE (job_id bigint, worker_name text, action text)
    LANGUAGE plpgsql
AS $$
DECLARE
    v_cutoff timestamptz := now() - make_interval(secs => p_stalled_seconds);
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
        BEGIN
            SELECT o.worker_name, o.action INTO worker_name, action
              FROM howdah_recover_stalled_job(
                  r.id, r.attempts, r.abort_requested, r.worker_id, p_max_lost
              ) o;
        EXCEPTION WHEN OTHERS THEN
            worker_name := coalesce('worker #' || r.worker_id, 'an unknown worker');
            action := 'not recovered: ' || SQLERRM;
        END;
        RETURN NEXT;
    END LOOP;
END;
$$;
