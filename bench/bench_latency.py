"""Defer-to-start latency (LISTEN/NOTIFY) and the delay before a due retry starts.

Jobs go in through the API while one Howdah worker runs; the delays are read
from Procrastinate's events, all stamped by the database's clock.
"""

import http.client
import json
import time

import psycopg

from bench import harness
from tests import processes

LATENCY_JOBS = 300
RETRY_JOBS = 30


def post(conn: http.client.HTTPConnection, token: str, task: str, **payload) -> int:
    body = json.dumps({"task": task, "payload": {"organization_id": 1, **payload}})
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}
    conn.request("POST", "/api/v1/jobs", body, headers)
    response = conn.getresponse()
    data = json.loads(response.read())
    if response.status != 202:
        raise RuntimeError(data)
    return data["id"]


def wait_done(db: psycopg.Connection, ids: list[int]) -> None:
    deadline = time.monotonic() + 120
    while db.execute(
        "SELECT count(*) FROM procrastinate_jobs WHERE id = ANY(%s)"
        " AND status IN ('todo', 'doing')",
        (ids,),
    ).fetchone()[0]:
        if time.monotonic() > deadline:
            raise RuntimeError("jobs did not finish")
        time.sleep(0.05)


def run() -> dict:
    """Both measurements on one fresh database and one worker."""
    with harness.fresh_database() as url, harness.web(url) as (host, port):
        token = harness.api_token(url, platform=True)  # diagnostics tasks
        worker = harness.start([harness.PYTHON, "-m", "tasks.worker"], url, "latency-worker")
        try:
            time.sleep(2)  # let the worker start listening
            api = http.client.HTTPConnection(host, port)
            with psycopg.connect(url, autocommit=True) as db:
                ids = []
                for _ in range(LATENCY_JOBS):
                    ids.append(post(api, token, "diagnostics:noop"))
                    time.sleep(0.02)
                wait_done(db, ids)
                pickup = [
                    row[0]
                    for row in db.execute(
                        """
                    SELECT extract(epoch FROM max(at) FILTER (WHERE type = 'started')
                                           - min(at) FILTER (WHERE type = 'deferred'))
                    FROM procrastinate_events WHERE job_id = ANY(%s) GROUP BY job_id
                    """,
                        (ids,),
                    )
                ]

                # One at a time, so each retry is found by the poll, not woken by a new job.
                retried = []
                for _ in range(RETRY_JOBS):
                    retried.append(post(api, token, "diagnostics:fail_then_succeed", failures=1))
                    wait_done(db, retried[-1:])
                # The second start minus the moment the retry became due (scheduled_at).
                delays = [
                    row[0]
                    for row in db.execute(
                        """
                    SELECT extract(epoch FROM max(e.at) - j.scheduled_at)
                    FROM procrastinate_jobs j JOIN procrastinate_events e ON e.job_id = j.id
                    WHERE j.id = ANY(%s) AND e.type = 'started' GROUP BY j.id
                    """,
                        (retried,),
                    )
                ]
        finally:
            processes.stop(worker, timeout=60)
    ms = [float(v) * 1000 for v in pickup]
    retry_ms = [float(v) * 1000 for v in delays]
    return {
        "defer_to_start_p50_ms": harness.percentile(ms, 0.5),
        "defer_to_start_p99_ms": harness.percentile(ms, 0.99),
        "retry_pickup_p50_ms": harness.percentile(retry_ms, 0.5),
        "retry_pickup_p99_ms": harness.percentile(retry_ms, 0.99),
        "retry_pickup_max_ms": max(retry_ms),
    }


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
