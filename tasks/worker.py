"""``python -m tasks.worker``: run Procrastinate's worker against DATABASE_URL.

Flags override the environment (WORKER_CONCURRENCY, WORKER_QUEUES, WORKER_NAME,
WORKER_SHUTDOWN_TIMEOUT). SIGTERM or SIGINT stops taking jobs and waits for
running ones up to the shutdown timeout; a second signal exits at once.
"""

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Sequence

import psycopg_pool

from tasks.app import app
from webapp.config import worker_settings

log = logging.getLogger("tasks.worker")


def parse_args(argv: Sequence[str], settings: dict) -> argparse.Namespace:
    """Command-line flags, defaulting to the environment's settings."""
    parser = argparse.ArgumentParser(prog="python -m tasks.worker", description=__doc__)
    parser.add_argument(
        "-c",
        "--concurrency",
        type=int,
        default=settings["WORKER_CONCURRENCY"],
        help="jobs run at once (default: WORKER_CONCURRENCY or 10)",
    )
    parser.add_argument(
        "-q",
        "--queues",
        type=lambda s: [q.strip() for q in s.split(",") if q.strip()],
        default=settings["WORKER_QUEUES"],
        help="comma-separated queues to take jobs from (default: WORKER_QUEUES or all)",
    )
    parser.add_argument("--name", default=settings["WORKER_NAME"], help="worker name in logs")
    parser.add_argument(
        "--shutdown-timeout",
        type=float,
        default=settings["WORKER_SHUTDOWN_TIMEOUT"],
        help="seconds running jobs get after SIGTERM before they are aborted (default 30)",
    )
    options = parser.parse_args(argv)
    if options.concurrency < 1:
        parser.error("--concurrency must be at least 1")
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
        log.info(
            "worker starting: concurrency=%s queues=%s",
            options.concurrency,
            ",".join(options.queues) or "all",
            extra={"action": "worker_start"},
        )
        await app.run_worker_async(
            queues=options.queues or None,
            concurrency=options.concurrency,
            name=options.name,
            shutdown_graceful_timeout=options.shutdown_timeout,
        )
    log.info("worker stopped", extra={"action": "worker_stop"})


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
