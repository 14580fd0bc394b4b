-- Which waiting jobs a worker may take now, decided in one place.
--
-- It keeps the rules of procrastinate_fetch_job_v2: a job waits while another job with
-- its lock runs, or waits ahead of it; the queue filter; scheduled_at <= now(); priority
-- first, then id; FOR UPDATE SKIP LOCKED. On top of them it applies Howdah's caps on
-- running jobs (per organization, per queue, per organization in a queue) and takes up
-- to p_limit jobs per call. The chosen rows become 'doing' for p_worker_id, so
-- Procrastinate's triggers write their 'started' events as usual.
--
-- Caps count 'doing' rows across all workers. While any cap applies, fetches take one
-- transaction-level advisory lock, so two workers never both take a cap's last slot.
--
-- While nothing is at its cap, one scan in priority order takes the jobs. Once a queue
-- or an organization is at its cap, its waiting jobs may fill the front of that order
-- (a tenant's flood at the highest priority); scanning past them on every fetch would
-- cost as much as the flood is long. So the fetch then walks the (queue, organization)
-- groups that have waiting jobs instead, skips the groups at a cap, and merges the best
-- few jobs of each other group: the cost follows the number of groups, not the backlog.
--
-- Arguments come back as text: the worker parses each row on its own, so a row it
-- cannot load fails alone instead of failing the whole fetch after it committed.

CREATE INDEX howdah_jobs_running_idx
    ON procrastinate_jobs (queue_name, (args ->> 'organization_id'))
    WHERE status = 'doing';

-- Waiting jobs by (queue, organization) group, best first: the groups for the walk
-- described above, and a worker serving one queue (the housekeeping lane) finds its
-- next job without walking past the other queues' backlogs.
CREATE INDEX howdah_jobs_waiting_by_group_idx
    ON procrastinate_jobs (queue_name, (coalesce(args ->> 'organization_id', '')), priority DESC, id)
    WHERE status = 'todo';

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
    -- a hundred times what the walk does.
    SET jit = off
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
        v_by_group := cardinality(v_full) > 0;
        IF v_by_group THEN
            OPEN candidates FOR
                WITH RECURSIVE groups (queue, org) AS (
                    (SELECT j.queue_name, coalesce(j.args ->> 'organization_id', '')
                       FROM procrastinate_jobs j
                      WHERE j.status = 'todo'
                      ORDER BY 1, 2
                      LIMIT 1)
                    UNION ALL
                    SELECT next.queue, next.org
                      FROM groups g
                     CROSS JOIN LATERAL (
                        SELECT j.queue_name AS queue,
                               coalesce(j.args ->> 'organization_id', '') AS org
                          FROM procrastinate_jobs j
                         WHERE j.status = 'todo'
                           AND (j.queue_name, coalesce(j.args ->> 'organization_id', ''))
                               > (g.queue, g.org)
                         ORDER BY 1, 2
                         LIMIT 1
                     ) next
                )
                SELECT best.id, best.queue_name, nullif(g.org, '') AS org
                  FROM groups g
                 CROSS JOIN LATERAL (
                    SELECT jobs.id, jobs.queue_name, jobs.priority
                      FROM procrastinate_jobs AS jobs
                     WHERE jobs.status = 'todo'
                       AND jobs.queue_name = g.queue
                       AND coalesce(jobs.args ->> 'organization_id', '') = g.org
                       AND (jobs.scheduled_at IS NULL OR jobs.scheduled_at <= now())
                       AND jobs.id <> ALL (v_taken)
                       AND (jobs.lock IS NULL OR NOT EXISTS (
                           SELECT 1
                             FROM procrastinate_jobs AS other_jobs
                            WHERE other_jobs.lock = jobs.lock
                              AND (
                                  other_jobs.status = 'doing'
                                  OR (
                                      other_jobs.status = 'todo'
                                      AND (
                                          other_jobs.priority > jobs.priority
                                          OR (other_jobs.priority = jobs.priority
                                              AND other_jobs.id < jobs.id)
                                      )
                                  )
                              )
                       ))
                     ORDER BY jobs.priority DESC, jobs.id ASC
                     LIMIT p_limit - cardinality(v_taken)
                 ) best
                 WHERE (p_queues IS NULL OR g.queue = ANY (p_queues))
                   AND NOT ('q:' || g.queue) = ANY (v_full)
                   AND (g.org = '' OR NOT (
                       ('o:' || g.org) = ANY (v_full)
                       OR ('qo:' || g.queue || '/' || g.org) = ANY (v_full)
                   ))
                 ORDER BY best.priority DESC, best.id ASC;
        ELSE
            OPEN candidates FOR
                SELECT jobs.id, jobs.queue_name, jobs.args ->> 'organization_id' AS org
                  FROM procrastinate_jobs AS jobs
                 WHERE jobs.status = 'todo'
                   AND (p_queues IS NULL OR jobs.queue_name = ANY (p_queues))
                   AND (jobs.scheduled_at IS NULL OR jobs.scheduled_at <= now())
                   AND jobs.id <> ALL (v_taken)
                   AND (jobs.lock IS NULL OR NOT EXISTS (
                       SELECT 1
                         FROM procrastinate_jobs AS other_jobs
                        WHERE other_jobs.lock = jobs.lock
                          AND (
                              other_jobs.status = 'doing'
                              OR (
                                  other_jobs.status = 'todo'
                                  AND (
                                      other_jobs.priority > jobs.priority
                                      OR (other_jobs.priority = jobs.priority
                                          AND other_jobs.id < jobs.id)
                                  )
                              )
                          )
                   ))
                 ORDER BY jobs.priority DESC, jobs.id ASC
                 LIMIT p_limit - cardinality(v_taken)
                   FOR UPDATE OF jobs SKIP LOCKED;
        END IF;

        v_restart := false;
        LOOP
            FETCH candidates INTO r;
            EXIT WHEN NOT FOUND;
            v_keys := ARRAY['q:' || r.queue_name, 'o:' || r.org,
                            'qo:' || r.queue_name || '/' || r.org];
            IF v_by_group THEN
                -- Candidates of a group that filled up in this loop are passed over; the
                -- others are locked one by one, skipping any another transaction holds.
                CONTINUE WHEN v_keys && v_full;
                PERFORM 1 FROM procrastinate_jobs j
                  WHERE j.id = r.id AND j.status = 'todo' FOR UPDATE SKIP LOCKED;
                CONTINUE WHEN NOT FOUND;
            END IF;
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
