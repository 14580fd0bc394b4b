"""GET /metrics: the service in Prometheus' text format, for operators' scrapers.

Every number is read from the database at scrape time by ``DatabaseCollector``, so every
web process answers the same, and a restart loses nothing: there are no counters in
process memory. The reads are cheap at a million jobs: live counts from index-only scans
of the partial indexes of waiting and running jobs, finished ones from housekeeping's
counts, attempts and SMS from rollups kept by triggers (migrations 0030 and 0031).

The endpoint serves operators, not tenants: it adds up every organization, and no label
names one. Queue and task labels are bounded by the code: a queue or task the code does
not declare is counted under ``(other)``.
"""

import collections
import hmac
import ipaddress
import logging

import psycopg
from flask import Blueprint, Response, abort, current_app, request
from prometheus_client import exposition
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

import tasks.app  # a module reference: tasks and webapp import each other
from tasks import queues
from webapp import db, monitoring
from webapp.store import metrics as store
from webapp.store import overview as overview_store
from webapp.store import workers as workers_store

log = logging.getLogger(__name__)

bp = Blueprint("metrics", __name__)

PATH = "/metrics"
# The text format Prometheus has read since 2.0 (prometheus_client's newest default is 1.0.0,
# which older scrapers do not accept).
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
OTHER = "(other)"
# What a scrape meets when the release command has not yet applied what this code reads.
SCHEMA_BEHIND = (
    psycopg.errors.UndefinedTable,
    psycopg.errors.UndefinedFunction,
    psycopg.errors.UndefinedColumn,
)
QUEUES = (*queues.ALL, queues.HOUSEKEEPING)


def queue_label(name: str) -> str:
    """A queue's label: its name if the code declares it, else ``(other)``."""
    return name if name in QUEUES else OTHER


def task_label(name: str) -> str:
    """A task's label: its name if the App declares it, else ``(other)``."""
    return name if name in tasks.app.app.tasks else OTHER


class DatabaseCollector(Collector):
    """Reads every metric from the database through ``conn`` when collected."""

    def __init__(self, conn, stale_seconds: float):
        self.conn = conn
        self.stale_seconds = stale_seconds

    def collect(self):
        yield from self.jobs()
        yield from self.attempts()
        yield self.workers_alive()
        yield self.sms_messages()

    def jobs(self):
        counts = collections.Counter(
            {(queue, status): 0 for queue in QUEUES for status in monitoring.JOB_STATUSES}
        )
        ages = dict.fromkeys(QUEUES, 0.0)
        for row in store.count_waiting_jobs(self.conn):
            queue = queue_label(row["queue_name"])
            counts[queue, "todo"] += row["jobs"]
            ages[queue] = max(ages.get(queue, 0.0), row["oldest_age"] or 0.0, 0.0)
        for row in store.count_running_jobs(self.conn):
            counts[queue_label(row["queue_name"]), "doing"] += row["jobs"]
        for row in overview_store.list_finished_counts(self.conn, None):
            counts[queue_label(row["queue_name"]), row["status"]] += row["jobs"]
        yield labelled(
            GaugeMetricFamily,
            "howdah_jobs",
            "Jobs by queue and state; finished states as housekeeping last counted them"
            " (each minute)",
            ["queue", "state"],
            counts.items(),
        )
        yield labelled(
            GaugeMetricFamily,
            "howdah_queue_oldest_waiting_job_age_seconds",
            "Per queue, how long its longest-waiting runnable job has waited (0: none waits)",
            ["queue"],
            (((queue,), age) for queue, age in ages.items()),
        )

    def attempts(self):
        bounds = store.get_attempt_bounds(self.conn)
        attempts = collections.Counter()
        slots = collections.defaultdict(lambda: [0] * (len(bounds) + 1))
        seconds = collections.Counter()
        for row in store.list_attempt_totals(self.conn):
            task = task_label(row["task_name"])
            attempts[task, row["outcome"]] += row["attempts"]
            slots[task][row["slot"]] += row["attempts"]
            seconds[task] += row["seconds"]
        yield labelled(
            CounterMetricFamily,
            "howdah_job_attempts",
            "Runs of jobs ended, by task and outcome (succeeded, failed, aborted, lost)",
            ["task", "outcome"],
            attempts.items(),
        )
        histogram = HistogramMetricFamily(
            "howdah_job_attempt_duration_seconds",
            "How long runs of jobs took, by task",
            labels=["task"],
        )
        for task, counts in sorted(slots.items()):
            histogram.add_metric([task], cumulative(bounds, counts), seconds[task])
        yield histogram

    def workers_alive(self) -> GaugeMetricFamily:
        rows = workers_store.list_live_workers(self.conn, self.stale_seconds)
        return GaugeMetricFamily(
            "howdah_workers_alive",
            "Worker processes whose heartbeat is fresher than WORKER_STALE_SECONDS",
            value=sum(1 for row in rows if not row["stale"]),
        )

    def sms_messages(self) -> GaugeMetricFamily:
        return labelled(
            GaugeMetricFamily,
            "howdah_sms_messages",
            "SMS message records by status (kept for SMS_RETENTION_DAYS)",
            ["status"],
            (((row["status"],), row["messages"]) for row in store.count_sms_by_status(self.conn)),
        )


def labelled(kind, name: str, documentation: str, labels: list[str], samples):
    """A metric family of ``kind`` with a sample per (label values, value), in label order."""
    family = kind(name, documentation, labels=labels)
    for values, value in sorted(samples):
        family.add_metric(list(values), value)
    return family


def cumulative(bounds: list[float], counts: list[int]) -> list[tuple[str, int]]:
    """Per-bucket counts as Prometheus' cumulative ``le`` buckets, ``+Inf`` last."""
    buckets, total = [], 0
    for bound, count in zip([*bounds, float("inf")], counts, strict=True):
        total += count
        buckets.append((floatToGoString(bound), total))
    return buckets


def address_allowed(address: str | None, networks: tuple) -> bool:
    """Whether the client's address (after ProxyFix) is in one of ``networks``."""
    try:
        ip = ipaddress.ip_address(address or "")
    except ValueError:
        return False
    if ip.version == 6 and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return any(ip in network for network in networks)


def token_matches(header: str, token: str | None) -> bool:
    """Whether an Authorization header carries ``token`` as a bearer token (constant time)."""
    scheme, _, given = header.partition(" ")
    if token is None or scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(given.strip().encode("utf-8", "replace"), token.encode())


def refusal() -> Response | None:
    """None when the caller may read the metrics; else the answer that refuses it.

    A request with an Authorization header is judged by its token alone; one without is
    let in from METRICS_ALLOW_FROM. Elsewhere it is a 401 when a token would let it in,
    and when no token is set, a 404, as if there were no such page.
    """
    config = current_app.config
    header = request.headers.get("Authorization")
    if header is not None:
        return None if token_matches(header, config["METRICS_TOKEN"]) else unauthorized()
    if address_allowed(request.remote_addr, config["METRICS_ALLOW_FROM"]):
        return None
    if config["METRICS_TOKEN"] is not None:
        return unauthorized()
    abort(404)


def unauthorized() -> Response:
    return Response(
        "Unauthorized\n", 401, {"WWW-Authenticate": 'Bearer realm="metrics"'}, mimetype="text/plain"
    )


@bp.get(PATH)
def metrics():
    """The metrics, read from the database now; 503 in plain text while it is away."""
    refused = refusal()
    if refused is not None:
        return refused
    try:
        collector = DatabaseCollector(db.get_conn(), current_app.config["WORKER_STALE_SECONDS"])
        body = exposition.generate_latest(collector)
    except db.UNAVAILABLE_ERRORS as exc:
        log.warning("metrics: database unavailable: %s", exc, extra={"action": "metrics"})
        return Response("database unavailable\n", 503, mimetype="text/plain")
    except SCHEMA_BEHIND as exc:  # this code runs before the release that it needs
        log.warning("metrics: schema behind the code: %s", exc, extra={"action": "metrics"})
        return Response("database schema not current\n", 503, mimetype="text/plain")
    return Response(body, 200, content_type=CONTENT_TYPE)
