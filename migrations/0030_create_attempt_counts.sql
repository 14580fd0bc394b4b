-- Attempts ended per task, outcome and duration, for GET /metrics: counters that never go
-- down. job_attempts cannot serve them: its rows go with their jobs after
-- JOB_RETENTION_DAYS, and a counter that drops reads as a reset to Prometheus.
--
-- attempt_counts holds, per hour, task, outcome and duration bucket (slot), how many
-- attempts ended and their seconds in total. A trigger adds each statement's new
-- attempt rows in that statement, so every writer of job_attempts is counted (the
-- worker's batches, and the runs stalled-job recovery records as lost) and a repeated
-- write, which inserts nothing, is not. A lost run whose worker later writes its real
-- outcome replaces the row in place: that attempt stays counted once, as lost.
--
-- Contention: the rows are also keyed by a shard taken from the worker's name, so
-- workers finishing runs of one task at once add to rows of their own, not to one hot
-- row. Housekeeping folds hours older than the last into one row per task, outcome and
-- slot with hour '-infinity' (webapp/store/maintenance.py), in one statement, so totals
-- only grow and the table stays a few hundred rows.
CREATE TABLE attempt_counts (
    hour timestamptz NOT NULL,      -- '-infinity': every folded hour
    task_name text NOT NULL,        -- '' when the attempt row names none
    outcome text NOT NULL,
    slot smallint NOT NULL,         -- howdah_attempt_slot() of the attempt's duration
    shard smallint NOT NULL,
    attempts bigint NOT NULL,
    seconds double precision NOT NULL,
    PRIMARY KEY (hour, task_name, outcome, slot, shard)
);

-- The upper bounds, in seconds, of the duration buckets (Prometheus' "le"); slot i counts
-- durations in (bounds[i], bounds[i + 1]], and the slot after the last bound the longer
-- ones. Changing them would mix old and new buckets: add a new function instead.
CREATE FUNCTION howdah_attempt_bounds() RETURNS double precision[]
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN ARRAY[0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600];

-- How many bounds lie below a duration: its bucket, 0-based (so 0.5 s is in "le 0.5").
CREATE FUNCTION howdah_attempt_slot(p_seconds double precision) RETURNS smallint
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN (SELECT count(*) FROM unnest(howdah_attempt_bounds()) AS b (bound)
         WHERE b.bound < p_seconds)::smallint;

CREATE FUNCTION howdah_count_attempts() RETURNS trigger
    LANGUAGE plpgsql
AS $$
BEGIN
    INSERT INTO attempt_counts AS c (hour, task_name, outcome, slot, shard, attempts, seconds)
    SELECT date_trunc('hour', now()), r.task_name, r.outcome, howdah_attempt_slot(r.seconds),
           r.shard, count(*), sum(r.seconds)
      FROM (SELECT coalesce(n.task_name, '') AS task_name, n.outcome,
                   (hashtext(n.worker_name) & 15)::smallint AS shard,
                   CASE WHEN isfinite(n.started_at) AND isfinite(n.finished_at)
                        THEN greatest(extract(epoch FROM n.finished_at - n.started_at), 0)::float8
                        ELSE 0 END AS seconds
              FROM new_attempts n) AS r
     GROUP BY 1, 2, 3, 4, 5
     ORDER BY 1, 2, 3, 4, 5
    ON CONFLICT (hour, task_name, outcome, slot, shard) DO UPDATE SET
        attempts = c.attempts + excluded.attempts, seconds = c.seconds + excluded.seconds;
    RETURN NULL;
END;
$$;

CREATE TRIGGER howdah_count_attempts
    AFTER INSERT ON job_attempts
    REFERENCING NEW TABLE AS new_attempts
    FOR EACH STATEMENT EXECUTE FUNCTION howdah_count_attempts();

-- The attempts on record now start the totals (older ones were deleted uncounted).
INSERT INTO attempt_counts (hour, task_name, outcome, slot, shard, attempts, seconds)
SELECT '-infinity'::timestamptz, r.task_name, r.outcome, howdah_attempt_slot(r.seconds), 0, count(*),
       sum(r.seconds)
  FROM (SELECT coalesce(a.task_name, '') AS task_name, a.outcome,
               CASE WHEN isfinite(a.started_at) AND isfinite(a.finished_at)
                    THEN greatest(extract(epoch FROM a.finished_at - a.started_at), 0)::float8
                    ELSE 0 END AS seconds
          FROM job_attempts a) AS r
 GROUP BY 1, 2, 3, 4;
