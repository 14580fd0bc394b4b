"""Failures grouped by task and error (the rollup of migration 0018), with recent counts."""

import psycopg
from psycopg.rows import dict_row

# The groups most recently seen, then, for each, its failures in the last hour and day
# and its last failure, read from the partial index on (failure_group_id, finished_at):
# only the shown groups' failures of the last day are visited.
LIST_GROUPS = """
    SELECT g.id, g.organization_id, g.housekeeping, o.name AS organization_name, g.task_name,
           g.error_class, g.error_key, g.pattern, g.sample_message, g.first_seen,
           greatest(g.last_seen, latest.finished_at) AS last_seen,
           recent.last_hour, recent.last_day
      FROM (
          SELECT * FROM failure_groups g
           WHERE g.housekeeping = %(housekeeping)s
             AND (%(org)s::bigint IS NULL OR g.organization_id = %(org)s)
           ORDER BY g.last_seen DESC
           LIMIT %(limit)s
      ) g
      LEFT JOIN organizations o ON o.id = g.organization_id
     CROSS JOIN LATERAL (
          SELECT count(*) FILTER (WHERE a.finished_at > now() - interval '1 hour') AS last_hour,
                 count(*) AS last_day
            FROM job_attempts a
           WHERE a.failure_group_id = g.id AND a.finished_at > now() - interval '1 day'
     ) recent
     CROSS JOIN LATERAL (
          SELECT max(a.finished_at) AS finished_at
            FROM job_attempts a
           WHERE a.failure_group_id = g.id
     ) latest
     ORDER BY last_seen DESC, g.id DESC
"""


def list_failure_groups(
    conn: psycopg.Connection,
    organization_id: int | None,
    *,
    housekeeping: bool = False,
    limit: int = 100,
) -> list[dict]:
    """The ``limit`` failure groups last seen, of one organization (``None``: every one),
    either the tenants' or the housekeeping ones, most recent first."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            LIST_GROUPS,
            {"org": organization_id, "housekeeping": housekeeping, "limit": limit},
        ).fetchall()
