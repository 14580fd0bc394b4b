"""Reads behind the workers page (the worker's own statements are in ``worker.py``).

Workers serve every organization; only the jobs they run are scoped.
"""

import psycopg
from psycopg.rows import dict_row

# Running jobs come through Procrastinate's partial index on (worker_id) for 'doing'
# jobs, so these reads stay small however many jobs the table holds.
RUNNING = "j.worker_id IS NOT NULL AND j.status = 'doing'"
IN_SCOPE = "(%(org)s::text IS NULL OR j.args ->> 'organization_id' = %(org)s::text)"


def _scope(organization_id: int | None) -> str | None:
    return None if organization_id is None else str(organization_id)


def list_live_workers(conn: psycopg.Connection, stale_seconds: float) -> list[dict]:
    """Workers not stopped cleanly, with their heartbeat, its age and whether they are stale
    (heartbeat too old, or their Procrastinate row pruned); unnamed ones too."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            """
            SELECT coalesce(r.worker_id, w.id) AS worker_id, r.name, r.host, r.pid, r.queues,
                   r.concurrency, r.started_at, w.last_heartbeat,
                   extract(epoch FROM now() - w.last_heartbeat)::float AS heartbeat_age,
                   w.id IS NULL AS gone,
                   w.id IS NULL
                       OR w.last_heartbeat < now() - make_interval(secs => %(stale)s) AS stale
            FROM worker_registry r
            FULL JOIN procrastinate_workers w ON w.id = r.worker_id
            WHERE r.stopped_at IS NULL
            ORDER BY stale, r.name NULLS LAST, coalesce(r.worker_id, w.id)
            """,
            {"stale": stale_seconds},
        ).fetchall()


def list_stopped_workers(conn: psycopg.Connection, hours: int) -> list[dict]:
    """Workers that stopped cleanly in the last ``hours``, most recent first."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            """
            SELECT worker_id, name, host, pid, queues, concurrency, started_at, stopped_at
            FROM worker_registry
            WHERE stopped_at > now() - make_interval(hours => %(hours)s)
            ORDER BY stopped_at DESC, worker_id DESC
            """,
            {"hours": hours},
        ).fetchall()


def list_running_jobs(
    conn: psycopg.Connection, organization_id: int | None, per_worker: int
) -> list[dict]:
    """Up to ``per_worker`` jobs running on each worker now, in scope, longest first, each
    with when its run started and how many in scope the worker runs (``in_scope``)."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            f"""
            SELECT j.worker_id, j.id, j.task_name, j.queue_name, j.in_scope,
                   started.at AS started_at,
                   extract(epoch FROM now() - started.at)::float AS running_seconds
            FROM (
                SELECT j.worker_id, j.id, j.task_name, j.queue_name,
                       count(*) OVER (PARTITION BY j.worker_id) AS in_scope,
                       row_number() OVER (PARTITION BY j.worker_id ORDER BY j.id) AS place
                FROM procrastinate_jobs j
                WHERE {RUNNING} AND {IN_SCOPE}
            ) j
            LEFT JOIN LATERAL (
                SELECT max(e.at) AS at FROM procrastinate_events e
                WHERE e.job_id = j.id AND e.type = 'started'
            ) started ON true
            WHERE j.place <= %(per_worker)s
            ORDER BY j.worker_id, j.id
            """,
            {"org": _scope(organization_id), "per_worker": per_worker},
        ).fetchall()


def count_hidden_running_jobs(conn: psycopg.Connection, organization_id: int | None) -> list[dict]:
    """Per worker, how many of its running jobs are out of scope: other organizations'
    (``others``) and the platform's own, of no organization (``platform``)."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            f"""
            SELECT j.worker_id,
                   count(*) FILTER (WHERE j.args ->> 'organization_id' IS NOT NULL) AS others,
                   count(*) FILTER (WHERE j.args ->> 'organization_id' IS NULL) AS platform
            FROM procrastinate_jobs j
            WHERE {RUNNING} AND ({IN_SCOPE}) IS NOT TRUE
            GROUP BY j.worker_id
            """,
            {"org": _scope(organization_id)},
        ).fetchall()


def list_latest_registrations(
    conn: psycopg.Connection, names: list[str] | None, host: str | None, limit: int
) -> list[dict]:
    """The newest registration of each worker name in ``names``, or of each name seen on
    ``host``, most recent first, at most ``limit``; with its heartbeat's age (None once
    Procrastinate's row is gone) and when it stopped cleanly, if it did."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            """
            SELECT l.worker_id, l.name, l.host, l.pid, l.stopped_at, w.id IS NULL AS gone,
                   extract(epoch FROM now() - w.last_heartbeat)::float AS heartbeat_age
            FROM (
                SELECT DISTINCT ON (r.name) r.worker_id, r.name, r.host, r.pid, r.stopped_at
                FROM worker_registry r
                WHERE r.name = ANY(%(names)s::text[]) OR r.host = %(host)s
                ORDER BY r.name, r.worker_id DESC
            ) l
            LEFT JOIN procrastinate_workers w ON w.id = l.worker_id
            ORDER BY l.worker_id DESC
            LIMIT %(limit)s
            """,
            {"names": names, "host": host, "limit": limit},
        ).fetchall()
