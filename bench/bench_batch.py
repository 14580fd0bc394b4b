"""POST /api/v1/jobs/batch (1,000 jobs a request) beside bare Procrastinate ``batch_defer``.

The bare side writes to a database with Procrastinate's schema alone, so the cost of
Howdah's indexes on the jobs table counts against Howdah.
"""

import http.client
import json
import time

import procrastinate

from bench import bare_app, harness

BATCH = 1000
REQUESTS = 30
BODY = json.dumps(
    {"jobs": [{"task": "sms:send_notification", "payload": harness.SMS_PAYLOAD}] * BATCH}
)


def api(url: str) -> float:
    """Jobs per second through the batch endpoint, one client."""
    headers = {
        "Content-Type": "application/json",
        "Authorization": f"Bearer {harness.api_token(url)}",
    }
    with harness.web(url) as (host, port):
        conn = http.client.HTTPConnection(host, port)
        began = time.perf_counter()
        for _ in range(REQUESTS):
            conn.request("POST", "/api/v1/jobs/batch", BODY, headers)
            response = conn.getresponse()
            response.read()
            if response.status != 202:
                raise RuntimeError(f"batch answered {response.status}")
        return BATCH * REQUESTS / (time.perf_counter() - began)


def bare(url: str) -> float:
    """Jobs per second through ``task.batch_defer``, one caller."""
    connector = procrastinate.SyncPsycopgConnector(conninfo=url, min_size=1, max_size=2)
    kwargs = [harness.SMS_PAYLOAD] * BATCH
    with bare_app.app.replace_connector(connector) as app:
        app.open()
        try:
            began = time.perf_counter()
            for _ in range(REQUESTS):
                bare_app.noop.batch_defer(*kwargs)
            return BATCH * REQUESTS / (time.perf_counter() - began)
        finally:
            app.close()


def run() -> dict:
    """One side-by-side measurement."""
    with harness.fresh_database() as url:
        ours = api(url)
    with harness.fresh_database(howdah=False) as url:
        theirs = bare(url)
    return {
        "api_batch_per_second": ours,
        "bare_batch_defer_per_second": theirs,
        "ratio": ours / theirs,
    }


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
