"""POST /api/v1/jobs with 8 concurrent clients, beside bare Procrastinate ``defer()``.

API and bare segments alternate on one fresh database, three rounds each, after one
short unmeasured segment of each.
The HTTP load comes from ``wrk`` (Debian package ``wrk``) when it is installed,
so the load generator takes little of the machine; otherwise from Python threads.
"""

import http.client
import json
import re
import shutil
import subprocess
import tempfile
import threading
import time

import procrastinate

from bench import bare_app, harness

CLIENTS = 8
SECONDS = 3.0
ROUNDS = 3  # API and bare segments alternate, so drifts in load hit both
# First, unmeasured: gunicorn answers its liveness probe before every worker has booted
# (a first segment found all eight connections on one worker), and each worker's pool
# grows and prepares its statements under the first load.
WARM_UP = 1.0
BODY = json.dumps({"task": "sms:send_notification", "payload": harness.SMS_PAYLOAD})


def hammer(clients: int, seconds: float, one_call) -> tuple[float, list[float]]:
    """Run ``one_call(state)`` from ``clients`` threads for ``seconds``; rate and latencies."""
    latencies: list[list[float]] = [[] for _ in range(clients)]
    start = threading.Barrier(clients + 1)

    def client(index: int):
        state = {}
        start.wait()
        deadline = time.perf_counter() + seconds
        while (began := time.perf_counter()) < deadline:
            one_call(state)
            latencies[index].append(time.perf_counter() - began)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    start.wait()
    began = time.perf_counter()
    for thread in threads:
        thread.join()
    flat = [value for per_client in latencies for value in per_client]
    return len(flat) / (time.perf_counter() - began), flat


WRK_SCRIPT = """
wrk.method = "POST"
wrk.body = '{body}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer {token}"
"""
UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def wrk(host: str, port: int, token: str, seconds: float) -> dict:
    """Drive the API with wrk: 8 connections on 2 threads."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua") as script:
        script.write(WRK_SCRIPT.format(body=BODY, token=token))
        script.flush()
        out = subprocess.run(
            [
                "wrk",
                "-t2",
                f"-c{CLIENTS}",
                f"-d{seconds:g}s",
                "--latency",
                "-s",
                script.name,
                f"http://{host}:{port}/api/v1/jobs",
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    if "Non-2xx" in out or "Socket errors" in out:  # wrk prints these lines only on failures
        raise RuntimeError(out)

    def latency(label: str) -> float:
        value, unit = re.search(rf"^\s+{label}%\s+([\d.]+)(us|ms|s)$", out, re.M).groups()
        return float(value) * UNITS[unit]

    return {
        "per_second": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "p50_ms": latency("50"),
        "p99_ms": latency("99"),
        "client": "wrk",
    }


def api(host: str, port: int, token: str, seconds: float = SECONDS) -> dict:
    """One segment of load on the running API."""
    if shutil.which("wrk"):
        return wrk(host, port, token, seconds)
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}

    def post(state):
        conn = state.setdefault("conn", http.client.HTTPConnection(host, port))
        conn.request("POST", "/api/v1/jobs", BODY, headers)
        response = conn.getresponse()
        response.read()
        if response.status != 202:
            raise RuntimeError(f"API answered {response.status}")

    rate, latencies = hammer(CLIENTS, seconds, post)
    return {**summary(rate, latencies), "client": "python threads"}


def bare(clients: int, seconds: float = SECONDS) -> dict:
    """One segment of bare ``defer()`` calls from ``clients`` threads (the App is open)."""
    rate, latencies = hammer(
        clients, seconds, lambda state: bare_app.noop.defer(**harness.SMS_PAYLOAD)
    )
    return summary(rate, latencies)


def summary(rate: float, latencies: list[float]) -> dict:
    return {
        "per_second": rate,
        "p50_ms": harness.percentile(latencies, 0.5) * 1000,
        "p99_ms": harness.percentile(latencies, 0.99) * 1000,
    }


def run() -> dict:
    """Alternate API and bare segments on one database; medians of each and of the ratios.

    Bare ``defer()`` runs one call at a time (how DESIGN.md's yardstick was taken) and
    from CLIENTS threads at once (the same concurrency as the API's clients).
    """
    ours, one, many = [], [], []
    with harness.fresh_database() as url, harness.web(url) as (host, port):
        token = harness.api_token(url)
        connector = procrastinate.SyncPsycopgConnector(
            conninfo=url, min_size=CLIENTS, max_size=CLIENTS
        )
        with bare_app.app.replace_connector(connector) as app:
            app.open()
            try:
                api(host, port, token, WARM_UP)
                bare(CLIENTS, WARM_UP)
                for _ in range(ROUNDS):
                    ours.append(api(host, port, token))
                    one.append(bare(1))
                    many.append(bare(CLIENTS))
            finally:
                app.close()
    return {
        "api": medians(ours),
        "bare_defer_one_caller": medians(one),
        "bare_defer_8_threads": medians(many),
        "ratio_one_caller": ratio(ours, one),
        "ratio_8_threads": ratio(ours, many),
    }


def ratio(ours: list[dict], theirs: list[dict]) -> float:
    """The median over rounds of our rate over theirs."""
    pairs = zip(ours, theirs, strict=True)
    return harness.median([a["per_second"] / b["per_second"] for a, b in pairs])


def medians(segments: list[dict]) -> dict:
    return {
        key: harness.median([s[key] for s in segments]) if key != "client" else value
        for key, value in segments[0].items()
    }


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
