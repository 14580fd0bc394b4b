"""``python -m tasks.worker.healthcheck``: is this machine's worker alive? (a container's
HEALTHCHECK).

Each worker process registers under its name (``WORKER_NAME``, by default
``host:pid``) and host, and beats every 10 s. The check reads, with the worker's own
settings and from its database (DIRECT_DATABASE_URL, by default DATABASE_URL), the
newest registration of each worker it is asked about: by default every name seen on
this host (in a container, the container's hostname, unique to it), the
``WORKER_PROCESSES`` most recent; with ``--name`` or ``WORKER_NAME``, that name (or
``NAME.1`` to ``NAME.N`` for ``WORKER_PROCESSES`` N). A worker that restarted
registers anew, so its old, silent rows are left behind.

It exits 0 when each of them is registered, running and has beaten within
``WORKER_STALE_SECONDS``, else 1; either way it prints one line, the reason on
failure (a database it cannot reach included), never a traceback.
"""

import argparse
import os
import socket
import sys
from collections.abc import Sequence
from dataclasses import dataclass

import psycopg

from webapp.config import worker_check_settings
from webapp.store import workers as store


@dataclass(frozen=True)
class Target:
    """Which workers to look for: these names, or the newest ``count`` seen on ``host``."""

    names: list[str] | None
    host: str | None
    count: int

    def describe(self) -> str:
        if self.names:
            return f"worker {', '.join(self.names)}"
        return f"worker processes on host {self.host}"


def target_for(name: str | None, processes: int) -> Target:
    """The workers ``python -m tasks.worker`` with this name and processes registers."""
    if not name:
        return Target(None, socket.gethostname(), processes)
    if processes == 1:
        return Target([name], None, 1)
    # The supervisor names its children NAME.1 to NAME.N (tasks/worker/supervisor.py).
    return Target([f"{name}.{n}" for n in range(1, processes + 1)], None, processes)


def problem(row: dict, stale_seconds: int) -> str | None:
    """Why this registration is not a healthy worker, or None."""
    if row["stopped_at"] is not None:
        return f"worker {row['name']} stopped at {row['stopped_at']:%Y-%m-%d %H:%M:%S %Z}"
    if row["gone"]:
        return f"worker {row['name']} was taken for dead (its Procrastinate row is gone)"
    if row["heartbeat_age"] > stale_seconds:
        return (
            f"worker {row['name']}: last heartbeat {row['heartbeat_age']:.0f} s ago"
            f" (WORKER_STALE_SECONDS={stale_seconds})"
        )
    return None


def verdict(rows: list[dict], target: Target, stale_seconds: int) -> str | None:
    """Why the target's workers are not healthy, or None when they are."""
    if not rows:
        return f"unknown: no registration of {target.describe()}"
    if len(rows) < target.count:
        return f"only {len(rows)} of {target.count} registered: {target.describe()}"
    problems = [p for row in rows if (p := problem(row, stale_seconds))]
    return "; ".join(problems) or None


def first_line(exc: Exception) -> str:
    """The first line of an error's message (libpq's run to several)."""
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def check(settings: dict, target: Target) -> tuple[bool, str]:
    """Ask the worker's own database about ``target`` (a pooler the worker does not use
    must not make its container unhealthy); whether it is healthy, and one line why."""
    try:
        conn = psycopg.connect(
            settings["DIRECT_DATABASE_URL"],
            connect_timeout=settings["DB_CONNECT_TIMEOUT"],
            application_name="howdah-worker-healthcheck",
            autocommit=True,
        )
    except psycopg.Error as exc:
        return False, f"database unreachable: {first_line(exc)}"
    try:
        with conn:
            rows = store.list_latest_registrations(conn, target.names, target.host, target.count)
    except psycopg.Error as exc:
        return False, f"database error: {first_line(exc)}"
    reason = verdict(rows, target, settings["WORKER_STALE_SECONDS"])
    if reason:
        return False, reason
    oldest = max(row["heartbeat_age"] for row in rows)
    return True, f"ok: {target.describe()}, oldest heartbeat {oldest:.1f} s ago"


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: exit 0 if this machine's worker is healthy, 1 with a reason if not."""
    parser = argparse.ArgumentParser(
        prog="python -m tasks.worker.healthcheck",
        description="Exit 0 if this machine's worker beats within WORKER_STALE_SECONDS.",
    )
    parser.add_argument(
        "--name", help="the worker's name (default: WORKER_NAME, else every worker of this host)"
    )
    options = parser.parse_args(argv)
    settings = worker_check_settings(os.environ)  # a bad setting exits 1 with one line
    name = options.name or settings["WORKER_NAME"]
    healthy, line = check(settings, target_for(name, settings["WORKER_PROCESSES"]))
    print(line, file=sys.stdout if healthy else sys.stderr)
    return 0 if healthy else 1


if __name__ == "__main__":
    sys.exit(main())
