-- Stalled-job recovery: jobs left 'doing' by a worker that stopped beating.
--
-- Silence proves death only while the database was there to hear a heartbeat. After an
-- outage, a restart, a freeze or a network cut, every worker looks silent by the clock,
-- and recovering its jobs would run them twice. So silence is counted in housekeeping
-- ticks, not seconds: each recovery run (every 10 s, and only while the database
-- answers) notes for every worker whether its heartbeat moved since the last tick, and
-- a worker is dead once it missed p_missed_ticks ticks in a row. A live worker beats
-- every 10 s and within seconds of the database coming back, so it never misses two.
-- Runs closer together than most of a tick (runs that queued up behind a busy
-- housekeeping slot) do not count as ticks. A job whose worker row is gone (pruned)
-- counts as stalled once it started p_stalled_seconds ago.
--
-- If the run's outcome is on record in job_attempts (its worker wrote it, then could not
-- write the status), that outcome is applied: the job is not run again. Otherwise the
-- run is recorded as lost, naming its worker as it was named, and the job is aborted if
-- an abort was requested, failed once it has lost p_max_lost runs, and retried otherwise.
-- Rows another transaction holds are skipped, so overlapping runs never collide, and a
-- job that cannot be recovered as usual (a value out of range, say) is failed plainly,
-- or reported, without holding up the others.

CREATE TABLE worker_watch (
    worker_id bigint PRIMARY KEY,
    seen_heartbeat timestamptz NOT NULL,
    missed_ticks integer NOT NULL DEFAULT 0
);

CREATE TABLE recovery_ticks (
    id boolean PRIMARY KEY DEFAULT true CHECK (id),
    last_tick_at timestamptz NOT NULL
);

-- Count one tick of the watch, unless the last one was less than 80 % of a tick ago.
CREATE FUNCTION howdah_watch_workers(p_tick_seconds double precision)
    RETURNS void
    LANGUAGE plpgsql
AS $$
DECLARE
    v_last timestamptz;
BEGIN
    SELECT t.last_tick_at INTO v_last FROM recovery_ticks t FOR UPDATE;
    IF v_last > now() - make_interval(secs => p_tick_seconds * 0.8) THEN
        RETURN;
    END IF;
    INSERT INTO recovery_ticks (id, last_tick_at) VALUES (true, now())
        ON CONFLICT (id) DO UPDATE SET last_tick_at = excluded.last_tick_at;
    INSERT INTO worker_watch (worker_id, seen_heartbeat)
    SELECT w.id, w.last_heartbeat FROM procrastinate_workers w
        ON CONFLICT (worker_id) DO UPDATE SET
            missed_ticks = CASE WHEN excluded.seen_heartbeat > worker_watch.seen_heartbeat
                                THEN 0 ELSE worker_watch.missed_ticks + 1 END,
            seen_heartbeat = greatest(excluded.seen_heartbeat, worker_watch.seen_heartbeat);
    DELETE FROM worker_watch ww
     WHERE NOT EXISTS (SELECT 1 FROM procrastinate_workers w WHERE w.id = ww.worker_id);
END;
$$;

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

CREATE FUNCTION howdah_recover_stalled_jobs(
    p_missed_ticks integer,
    p_stalled_seconds double precision,
    p_max_lost integer,
    p_tick_seconds double precision
)
    RETURNS TABLE (job_id bigint, worker_name text, action text)
    LANGUAGE plpgsql
AS $$
DECLARE
    v_cutoff timestamptz := now() - make_interval(secs => p_stalled_seconds);
    r record;
BEGIN
    PERFORM howdah_watch_workers(p_tick_seconds);
    FOR r IN
        SELECT j.id, j.attempts, j.abort_requested, j.worker_id
          FROM procrastinate_jobs j
          LEFT JOIN worker_watch ww ON ww.worker_id = j.worker_id
         WHERE j.status = 'doing'
           AND CASE WHEN j.worker_id IS NULL
                    THEN coalesce((SELECT max(e.at) FROM procrastinate_events e
                                    WHERE e.job_id = j.id AND e.type = 'started'),
                                  '-infinity') < v_cutoff
                    ELSE ww.missed_ticks >= p_missed_ticks
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
            action := 'failed: ' || SQLERRM;
            BEGIN  -- the usual way broke on this row: end the run plainly
                UPDATE procrastinate_jobs SET status = 'failed', abort_requested = false
                 WHERE id = r.id AND status = 'doing';
            EXCEPTION WHEN OTHERS THEN
                action := 'not recovered: ' || SQLERRM;
            END;
        END;
        RETURN NEXT;
    END LOOP;
END;
$$;
