-- Failures grouped by what went wrong, and each attempt's organization, so that the
-- failures and organizations pages read a bounded slice of job_attempts, never all of it.
--
-- An error's key: its class and its message with the parts that vary from one job to the
-- next (quoted strings, UUIDs, e-mail addresses, phone numbers, hex ids, numbers) replaced
-- by placeholders, so "timeout after 31 s for +14155550123" and "timeout after 29 s for
-- +14155550199" are one error. job_attempts.error_key stores it for failed attempts (the
-- job list filters on it); the trigger below sets it, rather than a generated column,
-- because it needs the key itself and computing it twice doubles the regex work.
--
-- job_attempts also gets the job's task, queue and organization. The worker writes them
-- with the attempt, because an attempt must be recorded even while something holds the
-- jobs table (migration 0007): writing one never reads procrastinate_jobs. Writers that
-- leave them out (stalled-job recovery, which holds the job already) get them read from
-- the job.
--
-- failure_groups is a rollup with one row per (organization, task, error key): it holds
-- first_seen for all time (job_attempts rows go when their job is deleted, so a window over
-- them could not say it) and a last_seen the page sorts by. A BEFORE trigger on job_attempts keeps it, so every writer of
-- attempts is covered. Its cost per failed attempt: the key (a few regexp_replace calls),
-- one lookup of its group by unique index, and at most once a minute per group an update
-- of last_seen: about 50 us measured per failed attempt written in batches of 10, and
-- nothing measurable for other outcomes. Nothing
-- in it waits on another worker: the update skips a group row another transaction holds
-- (that one is moving last_seen anyway), so attempt writes that batch several groups
-- cannot deadlock on the rollup. Only the first failure of a brand-new group inserts.
--
-- Counts in the last hour and day come from job_attempts itself, through the partial
-- index on (failure_group_id, finished_at): a page reads only the shown groups' failures
-- of the last day. (The organizations page counts the runs of the last hour in the
-- per-minute rollup job_minutes, migration 0021, which costs the worker one upsert per
-- batch rather than an index entry per attempt.)
--
-- Existing attempts are filled in at the end, in one pass over the table: on a large
-- table, expect it to take a while and to leave the old row versions to vacuum.

CREATE FUNCTION howdah_error_pattern(p_message text)
    RETURNS text
    LANGUAGE sql
    IMMUTABLE
    PARALLEL SAFE
AS $$
    SELECT left(btrim(regexp_replace(
        regexp_replace(regexp_replace(regexp_replace(regexp_replace(regexp_replace(
        regexp_replace(regexp_replace(
            coalesce(p_message, ''),
            $re$'[^']*'|"[^"]*"$re$, '<str>', 'g'),
            '[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}',
            '<uuid>', 'g'),
            '[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+', '<email>', 'g'),
            '\+[0-9][0-9 ().-]{5,}[0-9]', '<phone>', 'g'),
            '\m0[xX][0-9a-fA-F]+\M', '<hex>', 'g'),
            -- a hex id has a letter and a digit; a run of digits alone is a number
            '\m(?=[0-9a-fA-F]*[a-fA-F])(?=[0-9a-fA-F]*[0-9])[0-9a-fA-F]{8,}\M', '<hex>', 'g'),
            '[0-9]+(\.[0-9]+)?', '<n>', 'g'),
        '\s+', ' ', 'g')), 500)
$$;

CREATE FUNCTION howdah_error_key(p_class text, p_message text)
    RETURNS text
    LANGUAGE sql
    IMMUTABLE
    PARALLEL SAFE
AS $$
    SELECT left(md5(coalesce(p_class, '') || E'\n' || howdah_error_pattern(p_message)), 16)
$$;

CREATE TABLE failure_groups (
    id bigserial PRIMARY KEY,
    organization_id bigint,  -- the jobs' organization; NULL for jobs of none
    housekeeping boolean NOT NULL,
    task_name text NOT NULL,
    error_class text,
    error_key text NOT NULL,
    pattern text NOT NULL,
    sample_message text,  -- the first message seen, as it was
    first_seen timestamptz NOT NULL,
    last_seen timestamptz NOT NULL  -- kept to within a minute; the page reads the exact one
);

CREATE UNIQUE INDEX failure_groups_key_idx
    ON failure_groups ((coalesce(organization_id, 0)), task_name, error_key);

CREATE INDEX failure_groups_recent_idx
    ON failure_groups (housekeeping, organization_id, last_seen DESC);

CREATE INDEX failure_groups_all_recent_idx
    ON failure_groups (housekeeping, last_seen DESC);

ALTER TABLE job_attempts
    ADD COLUMN task_name text,
    ADD COLUMN queue_name text,
    ADD COLUMN organization_id bigint,
    ADD COLUMN failure_group_id bigint,
    ADD COLUMN error_key text;  -- howdah_error_key() of a failed attempt, set by the trigger

CREATE INDEX job_attempts_failures_idx
    ON job_attempts (failure_group_id, finished_at)
    WHERE failure_group_id IS NOT NULL;

CREATE FUNCTION howdah_note_attempt()
    RETURNS trigger
    LANGUAGE plpgsql
AS $$
DECLARE
    v_job record;
    v_key text;
    v_group bigint;
BEGIN
    IF NEW.task_name IS NULL THEN  -- a writer that did not say (stalled-job recovery): read it
        SELECT j.task_name, j.queue_name, j.args ->> 'organization_id' AS org
          INTO v_job
          FROM procrastinate_jobs j
         WHERE j.id = NEW.job_id;
        IF FOUND THEN
            NEW.task_name := v_job.task_name;
            NEW.queue_name := v_job.queue_name;
            NEW.organization_id := CASE WHEN v_job.org ~ '^[0-9]{1,18}$' THEN v_job.org::bigint END;
        END IF;
    END IF;
    NEW.failure_group_id := NULL;
    NEW.error_key := NULL;
    IF NEW.outcome <> 'failed' THEN
        RETURN NEW;
    END IF;
    NEW.error_key := howdah_error_key(NEW.error_class, NEW.error_message);
    IF NEW.task_name IS NULL THEN  -- an attempt of a job that is gone: keyed, but in no group
        RETURN NEW;
    END IF;

    v_key := NEW.error_key;
    SELECT g.id INTO v_group
      FROM failure_groups g
     WHERE coalesce(g.organization_id, 0) = coalesce(NEW.organization_id, 0)
       AND g.task_name = NEW.task_name
       AND g.error_key = v_key;
    IF v_group IS NULL THEN
        INSERT INTO failure_groups (organization_id, housekeeping, task_name, error_class,
                                    error_key, pattern, sample_message, first_seen, last_seen)
        -- 'housekeeping' is tasks.queues.HOUSEKEEPING: jobs of no organization, shown apart
        VALUES (NEW.organization_id, NEW.queue_name IS NOT DISTINCT FROM 'housekeeping', NEW.task_name,
                NEW.error_class, v_key, howdah_error_pattern(NEW.error_message),
                left(NEW.error_message, 500), NEW.finished_at, NEW.finished_at)
        ON CONFLICT DO NOTHING
        RETURNING id INTO v_group;
        IF v_group IS NULL THEN  -- another transaction created it meanwhile
            SELECT g.id INTO v_group
              FROM failure_groups g
             WHERE coalesce(g.organization_id, 0) = coalesce(NEW.organization_id, 0)
               AND g.task_name = NEW.task_name
               AND g.error_key = v_key;
        END IF;
    ELSE
        UPDATE failure_groups g
           SET last_seen = greatest(g.last_seen, NEW.finished_at),
               first_seen = least(g.first_seen, NEW.finished_at)
         WHERE g.id = (
             SELECT s.id FROM failure_groups s
              WHERE s.id = v_group
                AND (s.last_seen < NEW.finished_at - interval '1 minute'
                     OR s.first_seen > NEW.finished_at)
                FOR UPDATE SKIP LOCKED
         );
    END IF;
    NEW.failure_group_id := v_group;
    RETURN NEW;
END;
$$;

CREATE TRIGGER howdah_note_attempt
    BEFORE INSERT OR UPDATE OF outcome, error_class, error_message ON job_attempts
    FOR EACH ROW EXECUTE FUNCTION howdah_note_attempt();

UPDATE job_attempts SET outcome = outcome;
