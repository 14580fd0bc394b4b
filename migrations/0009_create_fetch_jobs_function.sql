-- Which waiting jobs a worker may take now, decided in one place.
--
-- It keeps the rules of procrastinate_fetch_job_v2: the lock rule (howdah_waits_for_lock);
-- the queue filter; scheduled_at <= now(); priority first, then id; SKIP LOCKED. On top of them it applies Howdah's caps on running jobs
-- (per organization, per queue, per organization in a queue) and takes up to p_limit
-- jobs per call. The chosen rows become 'doing' for p_worker_id, so Procrastinate's
-- triggers write their 'started' events as usual.
--
-- Caps count 'doing' rows across all workers. While any cap applies, fetches take one
-- transaction-level advisory lock, so two workers never both take a cap's last slot.
--
-- No tenant's backlog may make fetching slower for the others, so no fetch walks past
-- jobs it cannot take:
-- - jobs scheduled for later sit in an index by their time, and only the due ones are
--   read; jobs without a time sit in an index by priority;
-- - while nothing is at its cap and the worker serves every queue, the best due jobs
--   come from those two indexes merged in priority order;
-- - once a queue or an organization is at its cap, or when the worker serves some queues
--   only, the fetch walks the (queue, organization) groups that have jobs which may run
--   now instead (howdah_waiting_groups), passes over the groups at a cap, and merges the
--   best few due jobs of each other group: the cost follows the number of groups, not
--   backlogs, and groups whose jobs all wait for later are not visited.
--
-- Arguments come back as text: the worker parses each row on its own, so a row it
-- cannot load fails alone instead of failing the whole fetch after it committed.

CREATE INDEX howdah_jobs_running_idx
    ON procrastinate_jobs (queue_name, (args ->> 'organization_id'))
    WHERE status = 'doing';

CREATE INDEX howdah_jobs_unscheduled_idx
    ON procrastinate_jobs (priority DESC, id)
    WHERE status = 'todo' AND scheduled_at IS NULL;

CREATE INDEX howdah_jobs_scheduled_idx
    ON procrastinate_jobs (scheduled_at)
    WHERE status = 'todo' AND scheduled_at IS NOT NULL;

CREATE INDEX howdah_jobs_unscheduled_by_group_idx
    ON procrastinate_jobs (queue_name, (coalesce(args ->> 'organization_id', '')), priority DESC, id)
    WHERE status = 'todo' AND scheduled_at IS NULL;

CREATE INDEX howdah_jobs_scheduled_by_group_idx
    ON procrastinate_jobs (queue_name, (coalesce(args ->> 'organization_id', '')), scheduled_at)
    WHERE status = 'todo' AND scheduled_at IS NOT NULL;

-- Procrastinate's lock rule (procrastinate_fetch_job_v2): a job with a lock waits while
-- another job with that lock runs, or waits ahead of it (higher priority, or the same
-- priority and deferred first), even one scheduled for later. Called only for jobs that
-- have a lock.
CREATE FUNCTION howdah_waits_for_lock(p_lock text, p_priority integer, p_id bigint)
    RETURNS boolean
    LANGUAGE sql
    STABLE
AS $$
    SELECT EXISTS (
        SELECT 1
          FROM procrastinate_jobs AS other_jobs
         WHERE other_jobs.lock = p_lock
           AND (
               other_jobs.status = 'doing'
               OR (
                   other_jobs.status = 'todo'
                   AND (
                       other_jobs.priority > p_priority
                       OR (other_jobs.priority = p_priority AND other_jobs.id < p_id)
                   )
               )
           )
    )
$$;

-- The (queue, organization) groups that have jobs without a time, after (p_queue,
-- p_after) or the first one in p_queue: one index lookup each, whatever the groups hold.
-- Each orders by the whole index key, which keeps the planner on the group index rather
-- than on one that holds every job of a queue.
CREATE FUNCTION howdah_next_group(p_queue character varying, p_after text)
    RETURNS TABLE (queue character varying, org text)
    LANGUAGE sql
    STABLE
AS $$
    SELECT j.queue_name, coalesce(j.args ->> 'organization_id', '')
      FROM procrastinate_jobs j
     WHERE j.status = 'todo' AND j.scheduled_at IS NULL
       AND (j.queue_name, coalesce(j.args ->> 'organization_id', '')) > (p_queue, p_after)
     ORDER BY j.queue_name, coalesce(j.args ->> 'organization_id', ''), j.priority DESC, j.id
     LIMIT 1
$$;

CREATE FUNCTION howdah_first_group_in(p_queue character varying)
    RETURNS TABLE (queue character varying, org text)
    LANGUAGE sql
    STABLE
AS $$
    SELECT j.queue_name, coalesce(j.args ->> 'organization_id', '')
      FROM procrastinate_jobs j
     WHERE j.status = 'todo' AND j.scheduled_at IS NULL AND j.queue_name = p_queue
     ORDER BY j.queue_name, coalesce(j.args ->> 'organization_id', ''), j.priority DESC, j.id
     LIMIT 1
$$;

-- The same walk over the groups that have jobs scheduled, with the time of each one's
-- first job.
CREATE FUNCTION howdah_next_scheduled_group(p_queue character varying, p_after text)
    RETURNS TABLE (queue character varying, org text, first_at timestamptz)
    LANGUAGE sql
    STABLE
AS $$
    SELECT j.queue_name, coalesce(j.args ->> 'organization_id', ''), j.scheduled_at
      FROM procrastinate_jobs j
     WHERE j.status = 'todo' AND j.scheduled_at IS NOT NULL
       AND (j.queue_name, coalesce(j.args ->> 'organization_id', '')) > (p_queue, p_after)
     ORDER BY j.queue_name, coalesce(j.args ->> 'organization_id', ''), j.scheduled_at
     LIMIT 1
$$;

-- The groups with jobs that may run now, in the given queues (NULL: every queue).
--
-- Groups with jobs without a time are found by walking the group index; for served
-- queues each walk starts in its queue and stops at its end. Groups whose scheduled
-- jobs are due are read off the due jobs themselves (the time index holds them first),
-- so groups whose jobs all wait for later cost nothing, however many there are. Only
-- while more than 10,000 due jobs wait in the served queues (a backlog held back by a
-- cap) does the walk go through the groups with scheduled jobs instead, one lookup per
-- group, so that the cost never follows one tenant's backlog.
CREATE FUNCTION howdah_waiting_groups(p_queues character varying[])
    RETURNS TABLE (queue character varying, org text)
    LANGUAGE plpgsql
    STABLE
    SET jit = off
AS $$
DECLARE
    v_many_due boolean;
BEGIN
    SELECT count(*) > 10000 INTO v_many_due
      FROM (SELECT 1 FROM procrastinate_jobs j
             WHERE j.status = 'todo' AND j.scheduled_at <= now()
               AND (p_queues IS NULL OR j.queue_name = ANY (p_queues))
             LIMIT 10001) AS due;

    RETURN QUERY
        WITH RECURSIVE groups (bound, queue, org) AS (
            (SELECT NULL::varchar, n.queue, n.org
               FROM howdah_next_group('', '') n
              WHERE p_queues IS NULL
             UNION ALL
             SELECT q.queue, n.queue, n.org
               FROM unnest(p_queues) AS q (queue), LATERAL howdah_first_group_in(q.queue) n)
            UNION ALL
            SELECT g.bound, n.queue, n.org
              FROM groups g, LATERAL howdah_next_group(g.queue, g.org) n
             WHERE g.bound IS NULL OR n.queue = g.bound
        ), scheduled (queue, org, first_at) AS (
            SELECT n.queue, n.org, n.first_at
              FROM howdah_next_scheduled_group('', '') n
             WHERE v_many_due
            UNION ALL
            SELECT n.queue, n.org, n.first_at
              FROM scheduled s, LATERAL howdah_next_scheduled_group(s.queue, s.org) n
        )
        SELECT g.queue, g.org FROM groups g
        UNION
        SELECT j.queue_name, coalesce(j.args ->> 'organization_id', '')
          FROM procrastinate_jobs j
         WHERE NOT v_many_due
           AND j.status = 'todo' AND j.scheduled_at <= now()
           AND (p_queues IS NULL OR j.queue_name = ANY (p_queues))
        UNION
        SELECT s.queue, s.org FROM scheduled s
         WHERE s.first_at <= now() AND (p_queues IS NULL OR s.queue = ANY (p_queues));
END;
$$;

CREATE FUNCTION howdah_fetch_jobs(
    p_queues character varying[],  -- NULL: every queue
    p_worker_id bigint,
    p_limit integer,
    p_org_max_running integer      -- running jobs per organization; NULL: no cap
)
    RETURNS TABLE (
        id bigint,
        queue_name character varying,
        task_name character varying,
        priority integer,
        lock text,
        queueing_lock text,
        args text,
        scheduled_at timestamptz,
        attempts integer
    )
    LANGUAGE plpgsql
    -- The planner prices the group walk high enough to compile it with JIT, which costs
    -- a hundred times what the walk does; and planning it afresh for each call costs more
    -- than running it, while one generic plan serves every argument.
    SET jit = off
    SET plan_cache_mode = force_generic_plan
AS $$
DECLARE
    v_caps jsonb;              -- queue -> {"max": n, "org_max": n}
    v_capped boolean;
    v_running jsonb := '{}';   -- counter key -> running jobs, those taken here included
    v_full text[] := '{}';     -- counter keys at their cap
    v_taken bigint[] := '{}';
    v_by_group boolean;
    v_restart boolean;
    v_keys text[];
    v_key text;
    v_cap integer;
    candidates refcursor;
    r record;
BEGIN
    IF p_limit IS NULL OR p_limit < 1 THEN
        RETURN;
    END IF;

    SELECT coalesce(jsonb_object_agg(
               s.queue_name,
               jsonb_build_object('max', s.max_running, 'org_max', s.organization_max_running)
           ), '{}')
      INTO v_caps
      FROM queue_settings s
     WHERE (s.max_running IS NOT NULL OR s.organization_max_running IS NOT NULL)
       AND (p_queues IS NULL OR s.queue_name = ANY (p_queues));
    v_capped := p_org_max_running IS NOT NULL OR v_caps <> '{}';

    IF v_capped THEN
        PERFORM pg_advisory_xact_lock(29395956153804801);  -- "howdah" 0x01
        -- Counter keys: 'q:<queue>', 'o:<organization>', 'qo:<queue>/<organization>'.
        WITH running AS (
            SELECT j.queue_name AS queue, j.args ->> 'organization_id' AS org, count(*) AS n
              FROM procrastinate_jobs j
             WHERE j.status = 'doing'
             GROUP BY 1, 2
        ), counters AS (
            SELECT 'q:' || queue AS k, sum(n) AS n, (v_caps -> queue ->> 'max')::int AS cap
              FROM running GROUP BY queue
            UNION ALL
            SELECT 'o:' || org, sum(n), p_org_max_running
              FROM running WHERE org IS NOT NULL GROUP BY org
            UNION ALL
            SELECT 'qo:' || queue || '/' || org, n, (v_caps -> queue ->> 'org_max')::int
              FROM running WHERE org IS NOT NULL
        )
        SELECT coalesce(jsonb_object_agg(k, n), '{}'),
               coalesce(array_agg(k) FILTER (WHERE n >= cap), '{}')
          INTO v_running, v_full
          FROM counters;
    END IF;

    LOOP
        v_by_group := cardinality(v_full) > 0 OR p_queues IS NOT NULL;
        -- Candidates in order: the best jobs without a time, and the best of those whose
        -- time has come, each read from its own index, then merged. OFFSET 0 keeps the
        -- planner from reading the due ones through an index in priority order, which
        -- would walk past every job scheduled for later.
        IF v_by_group THEN
            OPEN candidates FOR
                SELECT best.id, best.queue_name, nullif(g.org, '') AS org
                  FROM howdah_waiting_groups(p_queues) g
                 CROSS JOIN LATERAL (
                    SELECT c.id, c.queue_name, c.priority
                      FROM (
                          (SELECT j.id, j.queue_name, j.priority
                             FROM procrastinate_jobs AS j
                            WHERE j.status = 'todo' AND j.scheduled_at IS NULL
                              AND j.queue_name = g.queue
                              AND coalesce(j.args ->> 'organization_id', '') = g.org
                              AND j.id <> ALL (v_taken)
                              AND (j.lock IS NULL
                                   OR NOT howdah_waits_for_lock(j.lock, j.priority, j.id))
                            ORDER BY j.priority DESC, j.id ASC
                            LIMIT p_limit - cardinality(v_taken))
                          UNION ALL
                          (SELECT j.id, j.queue_name, j.priority
                             FROM (SELECT * FROM procrastinate_jobs AS d
                                    WHERE d.status = 'todo' AND d.scheduled_at <= now()
                                      AND d.queue_name = g.queue
                                      AND coalesce(d.args ->> 'organization_id', '') = g.org
                                   OFFSET 0) AS j  -- due ones by their time: see above
                            WHERE j.id <> ALL (v_taken)
                              AND (j.lock IS NULL
                                   OR NOT howdah_waits_for_lock(j.lock, j.priority, j.id))
                            ORDER BY j.priority DESC, j.id ASC
                            LIMIT p_limit - cardinality(v_taken))
                      ) AS c
                     ORDER BY c.priority DESC, c.id ASC
                     LIMIT p_limit - cardinality(v_taken)
                 ) best
                 WHERE NOT ('q:' || g.queue) = ANY (v_full)
                   AND (g.org = '' OR NOT (
                       ('o:' || g.org) = ANY (v_full)
                       OR ('qo:' || g.queue || '/' || g.org) = ANY (v_full)
                   ))
                 ORDER BY best.priority DESC, best.id ASC;
        ELSE
            OPEN candidates FOR
                SELECT c.id, c.queue_name, c.org
                  FROM (
                      (SELECT j.id, j.queue_name, j.args ->> 'organization_id' AS org, j.priority
                         FROM procrastinate_jobs AS j
                        WHERE j.status = 'todo' AND j.scheduled_at IS NULL
                          AND j.id <> ALL (v_taken)
                          AND (j.lock IS NULL
                               OR NOT howdah_waits_for_lock(j.lock, j.priority, j.id))
                        ORDER BY j.priority DESC, j.id ASC
                        LIMIT p_limit - cardinality(v_taken))
                      UNION ALL
                      (SELECT j.id, j.queue_name, j.args ->> 'organization_id', j.priority
                         FROM (SELECT * FROM procrastinate_jobs AS d
                                WHERE d.status = 'todo' AND d.scheduled_at <= now()
                               OFFSET 0) AS j  -- due ones by their time: see above
                        WHERE j.id <> ALL (v_taken)
                          AND (j.lock IS NULL
                               OR NOT howdah_waits_for_lock(j.lock, j.priority, j.id))
                        ORDER BY j.priority DESC, j.id ASC
                        LIMIT p_limit - cardinality(v_taken))
                  ) AS c
                 ORDER BY c.priority DESC, c.id ASC
                 LIMIT p_limit - cardinality(v_taken);
        END IF;

        v_restart := false;
        LOOP
            FETCH candidates INTO r;
            EXIT WHEN NOT FOUND;
            v_keys := ARRAY['q:' || r.queue_name, 'o:' || r.org,
                            'qo:' || r.queue_name || '/' || r.org];
            -- Candidates of a cap that filled up in this pass are passed over; the others
            -- are locked one by one, skipping any row another transaction holds or took.
            CONTINUE WHEN v_keys && v_full;
            PERFORM 1 FROM procrastinate_jobs j
              WHERE j.id = r.id AND j.status = 'todo' FOR UPDATE SKIP LOCKED;
            CONTINUE WHEN NOT FOUND;
            v_taken := v_taken || r.id;
            EXIT WHEN cardinality(v_taken) >= p_limit;
            CONTINUE WHEN NOT v_capped;
            -- Count the job against each of its caps. In the ordered scan, a cap that
            -- fills up ends it, and the next pass walks the groups without that one.
            FOREACH v_key IN ARRAY v_keys LOOP
                CONTINUE WHEN v_key IS NULL;
                v_running := jsonb_set(
                    v_running, ARRAY[v_key], to_jsonb(coalesce((v_running ->> v_key)::int, 0) + 1)
                );
                v_cap := CASE left(v_key, 2)
                    WHEN 'q:' THEN (v_caps -> r.queue_name ->> 'max')::int
                    WHEN 'o:' THEN p_org_max_running
                    ELSE (v_caps -> r.queue_name ->> 'org_max')::int
                END;
                IF v_cap IS NOT NULL AND (v_running ->> v_key)::int >= v_cap THEN
                    v_full := v_full || v_key;
                    v_restart := NOT v_by_group;
                END IF;
            END LOOP;
            EXIT WHEN v_restart;
        END LOOP;
        CLOSE candidates;
        EXIT WHEN NOT v_restart OR cardinality(v_taken) >= p_limit;
    END LOOP;

    RETURN QUERY
        UPDATE procrastinate_jobs AS j
           SET status = 'doing', worker_id = p_worker_id
          FROM unnest(v_taken) AS t(id)
         WHERE j.id = t.id
     RETURNING j.id, j.queue_name, j.task_name, j.priority, j.lock, j.queueing_lock,
               j.args::text, j.scheduled_at, j.attempts;
END;
$$;
