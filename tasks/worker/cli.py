"""``python -m tasks.worker``: run Howdah's jobs from DIRECT_DATABASE_URL (by default
DATABASE_URL): its LISTEN needs a session of its own, which a transaction pooler cannot give.

Flags override the environment (WORKER_CONCURRENCY, WORKER_QUEUES, WORKER_NAME,
WORKER_SHUTDOWN_TIMEOUT, WORKER_PROCESSES). New jobs arrive by LISTEN/NOTIFY; retried and
rescheduled ones are polled for every WORKER_POLL_INTERVAL seconds. SIGTERM or
SIGINT stops taking jobs and lets running ones finish for up to the shutdown
timeout, then aborts them (they are retried later) and exits 0; a second signal
aborts them at once. The worker waits out database outages; any other exit is 1.
With ``--processes N`` above 1, this process only starts N such workers, passes
stops on to them and waits for them (see ``supervisor``).
"""

import argparse
import asyncio
import logging
import math
import os
import socket
import sys
from collections.abc import Sequence

import psycopg_pool

from tasks.app import app
from tasks.worker import supervisor
from tasks.worker.runner import Settings, Worker
from webapp import connections, logs
from webapp.config import MAX_WORKER_PROCESSES, worker_flag_settings, worker_settings
from webapp.store import loaders

log = logging.getLogger("tasks.worker")

POOL_TIMEOUT = 5.0  # seconds a part waits for a pooled connection before it backs off
# psycopg_pool retries a failed connection with doubling delays until this timeout, then
# starts afresh on demand: a short timeout keeps its delays short, so the pool is back
# within seconds of the database, however long the outage was.
POOL_RECONNECT_TIMEOUT = 5.0
# libpq keepalives: a connection whose peer vanished without a word fails in ~30 s.
KEEPALIVES = {
    "keepalives": 1,
    "keepalives_idle": 10,
    "keepalives_interval": 5,
    "keepalives_count": 3,
}


def queue_list(text: str) -> list[str]:
    return [q.strip() for q in text.split(",") if q.strip()]


def parse_args(argv: Sequence[str], settings: dict) -> argparse.Namespace:
    """Command-line flags, defaulting to the environment's settings."""
    parser = argparse.ArgumentParser(
        prog="python -m tasks.worker",
        description="Run Howdah jobs.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "-c",
        "--concurrency",
        type=int,
        default=settings["WORKER_CONCURRENCY"],
        help="jobs run at once (WORKER_CONCURRENCY)",
    )
    parser.add_argument(
        "-q",
        "--queues",
        type=queue_list,
        default=settings["WORKER_QUEUES"],
        help="comma-separated queues to serve, empty for all (WORKER_QUEUES)",
    )
    parser.add_argument(
        "--name",
        default=settings["WORKER_NAME"],
        help="worker name in logs and attempt records (WORKER_NAME)",
    )
    parser.add_argument(
        "--shutdown-timeout",
        type=float,
        default=settings["WORKER_SHUTDOWN_TIMEOUT"],
        help="seconds running jobs get after SIGTERM (WORKER_SHUTDOWN_TIMEOUT)",
    )
    parser.add_argument(
        "--processes",
        type=int,
        default=settings["WORKER_PROCESSES"],
        help="worker processes to run, each with --concurrency slots and its own"
        " connections (WORKER_PROCESSES)",
    )
    # Set by the parent of ``--processes N`` on each child: the pipe its orders come on.
    parser.add_argument("--supervisor-fd", type=int, help=argparse.SUPPRESS)
    options = parser.parse_args(argv)
    if options.concurrency < 1:
        parser.error("--concurrency must be at least 1")
    if not 0 <= options.shutdown_timeout < math.inf:  # nan fails this too
        parser.error("--shutdown-timeout must be a finite number of seconds, 0 or more")
    if not 1 <= options.processes <= MAX_WORKER_PROCESSES:
        parser.error(f"--processes must be from 1 to {MAX_WORKER_PROCESSES}")
    if options.supervisor_fd is not None and options.processes != 1:
        parser.error("--supervisor-fd is for one process of --processes N")
    if options.processes == 1:  # the children of --processes N each name themselves
        options.name = options.name or f"{socket.gethostname()}:{os.getpid()}"
    return options


def connect_kwargs(settings: dict) -> dict:
    """libpq options for every worker connection."""
    return {
        "connect_timeout": settings["DB_CONNECT_TIMEOUT"],
        "application_name": "howdah-worker",
        **KEEPALIVES,
    }


async def check_connection(conn) -> None:
    """Before lending a connection: a round trip only when its socket says it may be
    dead. A connection that dies unseen fails its statement, which every part retries."""
    if connections.may_be_closed(conn):
        await psycopg_pool.AsyncConnectionPool.check_connection(conn)


async def configure(conn) -> None:
    """Pool connections run in autocommit and read any row PostgreSQL can hold."""
    await conn.set_autocommit(True)
    loaders.register(conn)


def build_pool(settings: dict) -> psycopg_pool.AsyncConnectionPool:
    """The worker's pool; its listen/heartbeat connection comes on top of it."""
    return psycopg_pool.AsyncConnectionPool(
        conninfo=settings["DIRECT_DATABASE_URL"],
        min_size=settings["DB_POOL_MIN_SIZE"],
        max_size=settings["DB_POOL_MAX_SIZE"],
        kwargs=connect_kwargs(settings),
        configure=configure,
        check=check_connection,
        timeout=POOL_TIMEOUT,
        reconnect_timeout=POOL_RECONNECT_TIMEOUT,
        name="howdah-worker",
        open=False,
    )


async def run(options: argparse.Namespace, settings: dict) -> int:
    """Open the pool and the App, then work until a stop; the exit status."""
    worker_config = Settings(
        name=options.name,
        queues=options.queues or None,
        concurrency=options.concurrency,
        shutdown_timeout=options.shutdown_timeout,
        poll_interval=settings["WORKER_POLL_INTERVAL"],
        org_max_running=settings["ORG_MAX_RUNNING"],
        database_url=settings["DIRECT_DATABASE_URL"],
        connect_kwargs=connect_kwargs(settings),
        supervisor_fd=options.supervisor_fd,
    )
    cap = settings["ORG_MAX_RUNNING"]
    if cap is None or cap >= options.concurrency:
        log.warning(
            "one organization may fill every slot of this worker (ORG_MAX_RUNNING=%s,"
            " concurrency %s)",
            cap or "no cap",
            options.concurrency,
        )
    async with build_pool(settings) as pool, app.open_async(pool):
        return await Worker(app, pool, worker_config).run()


def configure_logging(level: str, log_format: str, several: bool = False) -> None:
    """Lines in ``log_format``; several processes share one output, so each text line then
    names its process."""
    logs.configure(level, log_format, several)
    # The worker reports outages itself, once; the pool would log every reconnection
    # attempt, psycopg every query it could not cancel on a dead connection, and
    # Procrastinate every periodic defer.
    logging.getLogger("psycopg.pool").setLevel(logging.CRITICAL)
    logging.getLogger("psycopg").setLevel(max(logging.ERROR, logging.getLevelName(level)))
    logging.getLogger("procrastinate").setLevel(max(logging.WARNING, logging.getLevelName(level)))


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: parse settings and flags, configure logging, run."""
    # The flags first: --help and a bad flag need no database settings.
    options = parse_args(sys.argv[1:] if argv is None else argv, worker_flag_settings(os.environ))
    # Checked in the parent of --processes N too, so that a bad setting stops it once.
    settings = worker_settings(os.environ)
    several = options.processes > 1 or options.supervisor_fd is not None
    configure_logging(settings["LOG_LEVEL"], settings["LOG_FORMAT"], several)
    if options.name:
        logs.bind_process(worker=options.name)
    if options.processes > 1:
        return supervisor.Supervisor(options).run()
    return asyncio.run(run(options, settings))
