-- One row per recipient of a digest job, written as soon as the SMTP server has taken the
-- message for that recipient (sent) or refused it for good (refused, with the server's
-- reply code). A retried job reads its rows and skips those recipients, so a retry never
-- mails anyone twice, and a refused address is not tried again for that job.
--
-- The rows matter only while their job may still run: they go with the job when
-- retention deletes it.
CREATE TABLE digest_deliveries (
    job_id bigint NOT NULL REFERENCES procrastinate_jobs (id) ON DELETE CASCADE,
    recipient text NOT NULL CHECK (length(recipient) BETWEEN 3 AND 320),
    outcome text NOT NULL CHECK (outcome IN ('sent', 'logged', 'refused')),
    smtp_code smallint CHECK (smtp_code BETWEEN 200 AND 599),
    at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (job_id, recipient)
);
