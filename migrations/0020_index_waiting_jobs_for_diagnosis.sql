-- "Why is this job not running?" answers from the database, and must stay fast at a
-- million jobs. Two of its questions had no index to bound them:
-- - how many jobs wait ahead of a job in its queue (higher priority, or the same
--   priority and deferred first): Procrastinate's priority index spans every queue, so
--   counting one queue's share walked the others' backlogs. This one is per queue, and
--   carries scheduled_at so that jobs set for later are told apart without the heap;
-- - which waiting job ahead holds the lock a job waits for: Procrastinate indexes the
--   lock of running jobs only. Partial on jobs that have a lock, so it stays small.
-- Both are indexes of our own on Procrastinate's table, which change none of its objects.
CREATE INDEX howdah_jobs_waiting_by_queue_idx
    ON procrastinate_jobs (queue_name, priority DESC, id) INCLUDE (scheduled_at)
    WHERE status = 'todo';

CREATE INDEX howdah_jobs_waiting_lock_idx
    ON procrastinate_jobs (lock, priority DESC, id)
    WHERE status = 'todo' AND lock IS NOT NULL;
