"""Tenant-scoped job queries use the expression index on the organization id."""

from webapp.store import jobs as store


def test_scoped_listing_uses_the_organization_index(conn):
    conn.execute(
        """
        INSERT INTO procrastinate_jobs (queue_name, task_name, args, status)
        SELECT 'default', 'diagnostics:noop',
               jsonb_build_object('organization_id', 1 + n % 200), 'succeeded'
        FROM generate_series(1, 40000) AS n
        """
    )
    conn.execute("ANALYZE procrastinate_jobs")
    params = {
        "org": "7",
        "status": None,
        "queue": None,
        "task": None,
        "hidden": "housekeeping",
        "before": None,
        "limit": 51,
    }
    plan = "\n".join(row[0] for row in conn.execute("EXPLAIN " + store.LIST_JOBS, params))
    assert "howdah_jobs_organization_id_idx" in plan, plan
    assert "Seq Scan on procrastinate_jobs" not in plan, plan
    rows = store.list_jobs(conn, 7, limit=5)
    assert [r["args"]["organization_id"] for r in rows] == [7] * 5
    assert [r["id"] for r in rows] == sorted((r["id"] for r in rows), reverse=True)
