"""Health and status documents, built from the store; the views only serialise them."""

import functools
from dataclasses import dataclass
from importlib import metadata

import procrastinate
import psycopg

from webapp import migrations
from webapp.store import schema as schema_store
from webapp.store import status as store

# Every status a job row can hold, in Procrastinate's order.
JOB_STATUSES = tuple(status.value for status in procrastinate.jobs.Status)


@dataclass(frozen=True)
class Readiness:
    """Whether this process should receive traffic, and why not."""

    ready: bool
    reason: str | None = None


@functools.cache
def howdah_version() -> str:
    """The installed Howdah distribution's version (read from its metadata once)."""
    return metadata.version("howdah")


def readiness(conn: psycopg.Connection) -> Readiness:
    """Ready when the database answers and no migration is pending."""
    pending = migrations.pending_names(conn)
    if pending:
        return Readiness(False, f"{len(pending)} migration(s) pending, first {pending[0]}")
    return Readiness(True)


def database_status(conn: psycopg.Connection) -> dict:
    """Reachability, server version and pending migrations."""
    return {
        "reachable": True,
        "server_version": store.get_server_version(conn),
        "pending_migrations": migrations.pending_names(conn),
    }


def worker_status(conn: psycopg.Connection, stale_after: float) -> list[dict]:
    """Every registered worker, with the age of its heartbeat and whether it is stale."""
    if not schema_store.procrastinate_installed(conn):
        return []
    return [
        {
            "id": row["id"],
            "last_heartbeat": row["last_heartbeat"].isoformat(),
            "heartbeat_age_seconds": round(row["age_seconds"], 3),
            "stale": row["age_seconds"] > stale_after,
        }
        for row in store.list_workers(conn)
    ]


def versions(server_version: str | None) -> dict:
    """Versions of Howdah, Procrastinate and PostgreSQL."""
    return {
        "howdah": howdah_version(),
        "procrastinate": procrastinate.__version__,
        "postgresql": server_version,
    }


def queue_health(conn: psycopg.Connection, max_wait: float, known: tuple[str, ...] = ()) -> dict:
    """Per queue: counts by status, the oldest waiting job's age, and a healthy flag.

    A queue is healthy while its longest-waiting runnable job has waited at
    most ``max_wait`` seconds. The ``known`` queues are listed even when empty.
    """
    queues: dict[str, dict] = {name: _empty_queue(name) for name in known}
    for row in store.count_jobs_by_queue_and_status(conn):
        queue = queues.setdefault(row["queue_name"], _empty_queue(row["queue_name"]))
        queue["counts"][row["status"]] = row["count"]
    for row in store.list_oldest_waiting_ages(conn):
        queue = queues.setdefault(row["queue_name"], _empty_queue(row["queue_name"]))
        queue["oldest_waiting_seconds"] = round(max(row["age_seconds"], 0.0), 3)
        queue["healthy"] = row["age_seconds"] <= max_wait
    listed = sorted(queues.values(), key=lambda q: q["name"])
    return {
        "healthy": all(q["healthy"] for q in listed),
        "max_wait_seconds": max_wait,
        "queues": listed,
    }


def _empty_queue(name: str) -> dict:
    return {
        "name": name,
        "counts": dict.fromkeys(JOB_STATUSES, 0),
        "oldest_waiting_seconds": None,
        "healthy": True,
    }
