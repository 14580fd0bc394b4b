-- A worker writes an attempt's outcome before the job's new status, in a transaction of
-- its own, so a status write that cannot land (a lock, an outage, a stop meanwhile)
-- still leaves the outcome on record. Stalled-job recovery then applies that outcome
-- instead of running the job again; for a failure that is to be retried it needs the
-- time of the retry as well.
ALTER TABLE job_attempts ADD COLUMN retry_at timestamptz;
