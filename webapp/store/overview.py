"""The admin overview's reads: per queue, live counts, rollups, pauses and workers.

``org`` is an organization id as text (how job arguments hold it), or None for every
organization. None of these reads counts finished jobs: ``job_state_counts`` holds them.
"""

import psycopg
from psycopg.rows import dict_row

ORG = "(%(org)s::text IS NULL OR {column} = %(org)s)"
JOB_IN_SCOPE = ORG.format(column="j.args ->> 'organization_id'")


def count_live_jobs(conn: psycopg.Connection, org: str | None) -> list[dict]:
    """Per queue, jobs waiting now, scheduled for later and running (few: read from the
    partial index of waiting and running jobs)."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            f"""
            SELECT j.queue_name,
                   count(*) FILTER (WHERE j.status = 'todo'
                       AND (j.scheduled_at IS NULL OR j.scheduled_at <= now())) AS waiting,
                   count(*) FILTER (WHERE j.status = 'todo' AND j.scheduled_at > now())
                       AS scheduled,
                   count(*) FILTER (WHERE j.status = 'doing') AS running
            FROM procrastinate_jobs j
            WHERE j.status IN ('todo', 'doing') AND {JOB_IN_SCOPE}
            GROUP BY j.queue_name
            """,
            {"org": org},
        ).fetchall()


def list_oldest_waiting(conn: psycopg.Connection, queues: list[str], org: str | None) -> list[dict]:
    """Per queue, since when its longest-waiting job waits: the deferral of its oldest job
    without a time (ids grow with time), or the earliest time that came of the others."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            f"""
            SELECT q.queue_name, least(oldest.at, due.first_at) AS waiting_since
            FROM unnest(%(queues)s::varchar[]) AS q (queue_name)
            LEFT JOIN LATERAL (
                SELECT e.at FROM procrastinate_jobs j
                JOIN procrastinate_events e ON e.job_id = j.id AND e.type = 'deferred'
                WHERE j.status = 'todo' AND j.scheduled_at IS NULL
                  AND j.queue_name = q.queue_name AND {JOB_IN_SCOPE}
                ORDER BY j.id LIMIT 1
            ) oldest ON true
            LEFT JOIN LATERAL (
                SELECT j.scheduled_at AS first_at FROM procrastinate_jobs j
                WHERE j.status = 'todo' AND j.scheduled_at <= now()
                  AND j.queue_name = q.queue_name AND {JOB_IN_SCOPE}
                ORDER BY j.scheduled_at LIMIT 1
            ) due ON true
            """,
            {"queues": queues, "org": org},
        ).fetchall()


def list_finished_counts(conn: psycopg.Connection, org: str | None) -> list[dict]:
    """Per queue and final state, the jobs housekeeping counted last, and when."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            f"""
            SELECT queue_name, status, sum(jobs)::bigint AS jobs, min(counted_at) AS counted_at
            FROM job_state_counts
            WHERE {ORG.format(column="organization")}
            GROUP BY queue_name, status
            """,
            {"org": org},
        ).fetchall()


def list_last_hour(conn: psycopg.Connection, org: str | None) -> list[dict]:
    """Per queue and minute of the last hour, the runs that ended and those that failed."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            f"""
            SELECT queue_name,
                   (extract(epoch FROM date_trunc('minute', now()) - minute) / 60)::int
                       AS minutes_ago,
                   sum(finished)::bigint AS finished, sum(failed)::bigint AS failed
            FROM job_minutes
            WHERE minute > date_trunc('minute', now()) - interval '60 minutes'
              AND {ORG.format(column="organization")}
            GROUP BY queue_name, minute
            """,
            {"org": org},
        ).fetchall()


def list_queue_states(
    conn: psycopg.Connection, queues: list[str], stale_seconds: float
) -> list[dict]:
    """Per queue, whether and since when it is paused, by whom, and its live workers."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            """
            SELECT q.queue_name, s.paused_at, s.paused_by,
                   (SELECT count(*) FROM worker_registry r
                    JOIN procrastinate_workers w ON w.id = r.worker_id
                    WHERE w.last_heartbeat > now() - make_interval(secs => %(stale)s)
                      AND (r.queues IS NULL OR q.queue_name = ANY (r.queues))) AS workers
            FROM unnest(%(queues)s::varchar[]) AS q (queue_name)
            LEFT JOIN queue_settings s ON s.queue_name = q.queue_name
            """,
            {"queues": queues, "stale": stale_seconds},
        ).fetchall()
