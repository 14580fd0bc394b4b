"""Each organization's load on the queues: what waits, what runs, what finished lately."""

import psycopg
from psycopg.rows import dict_row

# Waiting and running jobs are counted through the partial indexes on 'todo' and 'doing'
# rows (migration 0009), so the count follows the backlog, not the million finished jobs.
# Runs that ended in the last hour come from the per-minute rollup the worker keeps
# (job_minutes, migration 0021): sixty minutes of rows, whatever the throughput.
# Housekeeping jobs belong to no organization and are left out.
LIST_LOAD = """
    WITH waiting AS (
        SELECT due.org, count(*) AS n
          FROM (
              SELECT j.args ->> 'organization_id' AS org
                FROM procrastinate_jobs j
               WHERE j.status = 'todo' AND j.scheduled_at IS NULL
                 AND j.queue_name <> %(housekeeping)s
              UNION ALL
              SELECT j.args ->> 'organization_id'
                FROM procrastinate_jobs j
               WHERE j.status = 'todo' AND j.scheduled_at <= now()
                 AND j.queue_name <> %(housekeeping)s
          ) due
         GROUP BY due.org
    ), running AS (
        SELECT j.args ->> 'organization_id' AS org, count(*) AS n
          FROM procrastinate_jobs j
         WHERE j.status = 'doing' AND j.queue_name <> %(housekeeping)s
         GROUP BY 1
    ), finished AS (
        SELECT m.organization, sum(m.finished) AS n, sum(m.failed) AS failed
          FROM job_minutes m
         WHERE m.minute > date_trunc('minute', now()) - interval '60 minutes'
           AND m.organization <> ''
         GROUP BY 1
    )
    SELECT o.id, o.name,
           coalesce(w.n, 0) AS waiting,
           coalesce(r.n, 0) AS running,
           coalesce(f.failed, 0) AS failed_last_hour,
           coalesce(f.n, 0) AS finished_last_hour,
           round(coalesce(f.n, 0) / 60.0, 1) AS per_minute
      FROM organizations o
      LEFT JOIN waiting w ON w.org = o.id::text
      LEFT JOIN running r ON r.org = o.id::text
      LEFT JOIN finished f ON f.organization = o.id::text
     ORDER BY coalesce(w.n, 0) + coalesce(r.n, 0) DESC, coalesce(f.n, 0) DESC,
              coalesce(f.failed, 0) DESC, o.name, o.id
"""


def list_organization_load(conn: psycopg.Connection, housekeeping_queue: str) -> list[dict]:
    """Every organization with its waiting, running, failed and finished jobs, the
    noisiest first (waiting + running, then runs finished in the last hour)."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(LIST_LOAD, {"housekeeping": housekeeping_queue}).fetchall()
