"""``python -m tasks.worker``: run Howdah's jobs from DATABASE_URL.

Flags override the environment (WORKER_CONCURRENCY, WORKER_QUEUES, WORKER_NAME,
WORKER_SHUTDOWN_TIMEOUT). New jobs arrive by LISTEN/NOTIFY; retried and
rescheduled ones are polled for every WORKER_POLL_INTERVAL seconds. SIGTERM or
SIGINT stops taking jobs and lets running ones finish for up to the shutdown
timeout, then aborts them (they are retried later) and exits 0; a second
signal exits at once.
"""

import argparse
import asyncio
import logging
import os
import socket
import sys
from collections.abc import Sequence

import psycopg_pool

from tasks.app import app
from tasks.attempts import AttemptRecorder
from webapp.config import worker_settings

log = logging.getLogger("tasks.worker")


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
    options = parser.parse_args(argv)
    if options.concurrency < 1:
        parser.error("--concurrency must be at least 1")
    if options.shutdown_timeout < 0:
        parser.error("--shutdown-timeout must not be negative")
    options.name = options.name or f"{socket.gethostname()}:{os.getpid()}"
    return options


def build_pool(settings: dict) -> psycopg_pool.AsyncConnectionPool:
    """The worker's own pool; Procrastinate's LISTEN connection comes on top of it."""
    return psycopg_pool.AsyncConnectionPool(
        conninfo=settings["DATABASE_URL"],
        min_size=settings["DB_POOL_MIN_SIZE"],
        max_size=settings["DB_POOL_MAX_SIZE"],
        kwargs={
            "connect_timeout": settings["DB_CONNECT_TIMEOUT"],
            "application_name": "howdah-worker",
        },
        check=psycopg_pool.AsyncConnectionPool.check_connection,
        name="howdah-worker",
        open=False,
    )


async def run(options: argparse.Namespace, settings: dict) -> None:
    """Open the pool and the App, then work until a stop signal."""
    async with build_pool(settings) as pool, app.open_async(pool):
        recorder = AttemptRecorder(pool, options.name)
        stopped = asyncio.Event()
        flusher = asyncio.create_task(recorder.run(stopped))
        log.info(
            "worker %s starting: concurrency=%s queues=%s",
            options.name,
            options.concurrency,
            ",".join(options.queues) or "all",
            extra={"action": "worker_start"},
        )
        try:
            await app.run_worker_async(
                queues=options.queues or None,
                concurrency=options.concurrency,
                name=options.name,
                shutdown_graceful_timeout=options.shutdown_timeout,
                fetch_job_polling_interval=settings["WORKER_POLL_INTERVAL"],
                abort_job_polling_interval=settings["WORKER_POLL_INTERVAL"],
                stalled_worker_timeout=settings["WORKER_STALLED_AFTER"],
                worker_middleware=[recorder],
                additional_context={"settings": settings},
            )
        finally:
            stopped.set()
            await flusher
    log.info("worker %s stopped", options.name, extra={"action": "worker_stop"})


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: parse settings and flags, configure logging, run."""
    settings = worker_settings(os.environ)
    options = parse_args(sys.argv[1:] if argv is None else argv, settings)
    logging.basicConfig(
        level=settings["LOG_LEVEL"], format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    asyncio.run(run(options, settings))
    return 0


if __name__ == "__main__":
    sys.exit(main())
