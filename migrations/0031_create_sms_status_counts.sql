-- SMS messages by status, for GET /metrics, without counting sms_messages (kept for
-- SMS_RETENTION_DAYS, it can hold millions of rows, and no index leads with status).
-- Triggers add each statement's change: inserted rows, deleted ones (retention), and
-- status changes (the worker's sends, the providers' receipts). Rows are keyed by a
-- shard taken from the session, so concurrent writers add to rows of their own rather
-- than wait on one row per status; a shard may go below zero, and the sum over shards
-- is the count.
CREATE TABLE sms_status_counts (
    status text NOT NULL,
    shard smallint NOT NULL,
    messages bigint NOT NULL,
    PRIMARY KEY (status, shard)
);

INSERT INTO sms_status_counts (status, shard, messages)
SELECT status, 0, count(*) FROM sms_messages GROUP BY status;

CREATE FUNCTION howdah_count_sms_statuses() RETURNS trigger
    LANGUAGE plpgsql
AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO sms_status_counts AS c (status, shard, messages)
        SELECT n.status, pg_backend_pid() % 16, count(*) FROM new_messages n
         GROUP BY 1, 2 ORDER BY 1
        ON CONFLICT (status, shard) DO UPDATE SET messages = c.messages + excluded.messages;
    ELSIF TG_OP = 'DELETE' THEN
        INSERT INTO sms_status_counts AS c (status, shard, messages)
        SELECT o.status, pg_backend_pid() % 16, -count(*) FROM old_messages o
         GROUP BY 1, 2 ORDER BY 1
        ON CONFLICT (status, shard) DO UPDATE SET messages = c.messages + excluded.messages;
    ELSE
        INSERT INTO sms_status_counts AS c (status, shard, messages)
        SELECT d.status, pg_backend_pid() % 16, sum(d.delta)
          FROM (SELECT n.status, 1 AS delta FROM new_messages n
                UNION ALL
                SELECT o.status, -1 FROM old_messages o) AS d
         GROUP BY 1, 2
        HAVING sum(d.delta) <> 0
         ORDER BY 1
        ON CONFLICT (status, shard) DO UPDATE SET messages = c.messages + excluded.messages;
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER howdah_count_new_sms
    AFTER INSERT ON sms_messages REFERENCING NEW TABLE AS new_messages
    FOR EACH STATEMENT EXECUTE FUNCTION howdah_count_sms_statuses();

CREATE TRIGGER howdah_count_changed_sms
    AFTER UPDATE ON sms_messages REFERENCING OLD TABLE AS old_messages NEW TABLE AS new_messages
    FOR EACH STATEMENT EXECUTE FUNCTION howdah_count_sms_statuses();

CREATE TRIGGER howdah_count_deleted_sms
    AFTER DELETE ON sms_messages REFERENCING OLD TABLE AS old_messages
    FOR EACH STATEMENT EXECUTE FUNCTION howdah_count_sms_statuses();
