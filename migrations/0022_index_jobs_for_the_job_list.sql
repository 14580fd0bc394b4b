-- What the admin job list (/admin/queues/jobs) needs to stay fast at a million jobs.
--
-- Every index on procrastinate_jobs costs the worker: a job's status changes twice or
-- more, and since status appears in index predicates no such update is HOT, so each
-- row version enters every index whose predicate it meets. Hence partial indexes that
-- only the rarer rows enter, and one full index where nothing cheaper serves.
--
-- Already there: the primary key (no filter, a queue, succeeded: walked newest first,
-- most rows match), (organization, id) from 0003 (a tenant's list), the todo/doing
-- partial index (id, lock) of Procrastinate (waiting, scheduled), the doing index of
-- 0009 (running: few rows, whatever the table holds).

-- Failed, cancelled and aborted jobs newest first: a small share of the table, which a
-- walk of the primary key would pass over by the thousand. Jobs that succeed never
-- enter it, so the worker's usual path pays nothing.
CREATE INDEX howdah_jobs_unsuccessful_idx
    ON procrastinate_jobs (status, id)
    WHERE status IN ('failed', 'cancelled', 'aborted');

-- Jobs of one task newest first. Twenty tasks or so share the table unevenly, and a
-- rare task (or one with no job at all) would make the primary-key walk read the whole
-- table. No partial form serves every task; this one is the cost the list pays, one
-- more index entry per row version.
CREATE INDEX howdah_jobs_task_idx ON procrastinate_jobs (task_name, id);

-- Jobs by idempotency key, whatever their state ("jump to" on the list): Procrastinate
-- indexes the key of waiting jobs only. Only jobs deferred with a key enter it.
CREATE INDEX howdah_jobs_queueing_lock_idx
    ON procrastinate_jobs (queueing_lock)
    WHERE queueing_lock IS NOT NULL;

-- procrastinate_jobs has no creation time: it is the 'deferred' event's. The list's
-- time range becomes a range of ids instead, as ids grow with time (a sequence, taken
-- when the job is inserted, which is when it is deferred): this function finds the
-- first job deferred at or after p_at by a binary search over the primary key, reading
-- the deferred event of about 2 x log2(ids) jobs, a millisecond or two at any size.
-- An index of our own on procrastinate_events (at) would cost the worker on every
-- event, three or more per job, to serve a filter people rarely use. Two transactions
-- that commit out of order put a job a few milliseconds on the wrong side of a bound;
-- a job without a deferred event (written around Procrastinate) counts as older.
-- Returns one past the newest id when no job was deferred since p_at (1 on no job).
CREATE FUNCTION howdah_job_id_deferred_from(p_at timestamptz)
    RETURNS bigint
    LANGUAGE plpgsql
    STABLE
AS $$
DECLARE
    v_lo bigint;
    v_hi bigint;
    v_mid bigint;
    v_id bigint;
BEGIN
    SELECT min(id), max(id) INTO v_lo, v_hi FROM procrastinate_jobs;
    IF v_hi IS NULL THEN
        RETURN 1;
    END IF;
    IF coalesce((SELECT min(e.at) FROM procrastinate_events e
                  WHERE e.job_id = v_hi AND e.type = 'deferred'), '-infinity') < p_at THEN
        RETURN v_hi + 1;
    END IF;
    -- The first job with an id >= x was deferred at or after p_at: true from some x on.
    WHILE v_lo < v_hi LOOP
        v_mid := v_lo + (v_hi - v_lo) / 2;
        SELECT j.id INTO v_id FROM procrastinate_jobs j WHERE j.id >= v_mid ORDER BY j.id LIMIT 1;
        IF coalesce((SELECT min(e.at) FROM procrastinate_events e
                      WHERE e.job_id = v_id AND e.type = 'deferred'), '-infinity') >= p_at THEN
            v_hi := v_mid;
        ELSE
            v_lo := v_id + 1;  -- every id up to this job's is older
        END IF;
    END LOOP;
    RETURN (SELECT j.id FROM procrastinate_jobs j WHERE j.id >= v_lo ORDER BY j.id LIMIT 1);
END;
$$;
