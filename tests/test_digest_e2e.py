"""Digest scheduling end to end: two real worker processes, one digest per due subscription."""

import datetime
import json
import time
import zoneinfo

import pytest

from tests import processes
from tests.tasks import digest_rows

pytestmark = pytest.mark.e2e

ZONES = ["UTC", "America/New_York", "Asia/Kolkata"]
EXTRA_RUNS = 4  # scheduler jobs deferred by hand, beside the workers' periodic one


def wait_until(condition, timeout: float = 30.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while not (result := condition()):
        assert time.monotonic() < deadline, f"no {what} within {timeout} s"
        time.sleep(0.1)
    return result


def due_now(conn, zone: str, **columns) -> int:
    """A subscription whose digest falls due this hour, in ``zone``."""
    now = datetime.datetime.now(zoneinfo.ZoneInfo(zone))
    values = {"time_zone": zone, "hour": now.hour, "created_at": now - datetime.timedelta(days=9)}
    return digest_rows.insert_subscription(conn, **{**values, **columns})


def test_two_workers_defer_one_digest_per_due_subscription(db_url, conn, orgs, tmp_path):
    due = [due_now(conn, zone) for zone in ZONES]
    today = datetime.datetime.now(datetime.UTC).date()
    due_now(conn, "UTC", last_period=today)  # sent already
    due_now(conn, "UTC", created_at=datetime.datetime.now(datetime.UTC))  # too new
    for _ in range(EXTRA_RUNS):
        conn.execute(
            "SELECT procrastinate_defer_jobs_v1(ARRAY[ROW('housekeeping',"
            " 'email:schedule_digests', 1000, NULL, NULL, %s::jsonb, NULL)"
            "::procrastinate_job_to_defer_v1])",
            (json.dumps({"timestamp": int(time.time())}),),
        )
    env = processes.process_env(
        DATABASE_URL=db_url, WORKER_SHUTDOWN_TIMEOUT="3", ORG_MAX_RUNNING="0"
    )
    workers = [processes.start_worker(env, tmp_path / f"worker{n}.log") for n in range(2)]
    try:

        def finished(task):
            rows = conn.execute(
                "SELECT status FROM procrastinate_jobs WHERE task_name = %s", (task,)
            ).fetchall()
            return rows and all(status == "succeeded" for (status,) in rows) and rows

        # The periodic run of this minute (deferred once, however many workers) and ours.
        runs = wait_until(lambda: finished("email:schedule_digests"), what="scheduler runs")
        assert len(runs) == EXTRA_RUNS + 1
        wait_until(lambda: finished("email:send_digest"), what="digests sent")
        jobs = conn.execute(
            "SELECT (args->>'subscription_id')::bigint, id FROM procrastinate_jobs"
            " WHERE task_name = 'email:send_digest' ORDER BY 1"
        ).fetchall()
        assert [subscription for subscription, _ in jobs] == due
        delivered = conn.execute(
            "SELECT job_id, outcome FROM digest_deliveries ORDER BY job_id"
        ).fetchall()
        assert delivered == sorted((job_id, "logged") for _, job_id in jobs)
    finally:
        for worker in workers:
            processes.stop(worker)
