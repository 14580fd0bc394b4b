-- A pause that commits while a fetch is under way: howdah_fetch_jobs (migration 0016)
-- reads the pauses in its first statement and picks its candidates in later ones, each
-- with a snapshot of its own (READ COMMITTED), so a fetch that read the pauses just
-- before a queue was paused could take a job deferred to that queue just after. The
-- statement that finally takes the jobs now checks the pauses once more, as of its own
-- snapshot, which sees every job it takes: no job of a paused queue starts once the
-- pause has committed. The function is otherwise the same, with the same signature.

CREATE OR REPLACE FUNCTION howdah_fetch_jobs(
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
    v_paused text[];           -- paused queues, as counter keys 'q:<queue>'
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
           ) FILTER (WHERE s.max_running IS NOT NULL OR s.organization_max_running IS NOT NULL),
           '{}'),
           coalesce(array_agg('q:' || s.queue_name) FILTER (WHERE s.paused_at IS NOT NULL), '{}')
      INTO v_caps, v_paused
      FROM queue_settings s
     WHERE (s.max_running IS NOT NULL OR s.organization_max_running IS NOT NULL
            OR s.paused_at IS NOT NULL)
       AND (p_queues IS NULL OR s.queue_name = ANY (p_queues));
    -- A worker whose every queue is paused has nothing to take: no lock, no walk.
    IF p_queues IS NOT NULL AND cardinality(v_paused) > 0 AND NOT EXISTS (
        SELECT 1 FROM unnest(p_queues) AS q (queue) WHERE NOT ('q:' || q.queue) = ANY (v_paused)
    ) THEN
        RETURN;
    END IF;
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

    -- A paused queue counts as a queue at its cap: the walk passes over its groups
    -- without reading their jobs, and a candidate of it is never locked.
    v_full := v_full || v_paused;

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

    -- The pauses again, as of now: the ones read above may predate a pause that
    -- committed while this call ran, and the candidates' statements saw jobs deferred
    -- after that pause. A job passed over here stays 'todo' (its row lock ends with the
    -- transaction).
    RETURN QUERY
        UPDATE procrastinate_jobs AS j
           SET status = 'doing', worker_id = p_worker_id
          FROM unnest(v_taken) AS t(id)
         WHERE j.id = t.id
           AND NOT EXISTS (
               SELECT 1 FROM queue_settings s
                WHERE s.queue_name = j.queue_name AND s.paused_at IS NOT NULL
           )
     RETURNING j.id, j.queue_name, j.task_name, j.priority, j.lock, j.queueing_lock,
               j.args::text, j.scheduled_at, j.attempts;
END;
$$;
