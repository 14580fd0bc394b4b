"""PgQueuer's side of bench_worker.py: its schema, its no-op jobs, and its worker.

.venv/bin/python -m bench.pgqueuer_side install   # DATABASE_URL: PgQueuer's tables
.venv/bin/python -m bench.pgqueuer_side fill N    # N no-op jobs, 1,000 per statement
.venv/bin/python -m bench.pgqueuer_side work      # drain them (asyncpg; SIGTERM stops it)

The worker is PgQueuer's QueueManager on one asyncpg connection, with its defaults
(a dequeue batch of PGQUEUER_BATCH jobs, 10, and no cap on the tasks it runs at once),
as its own documentation starts it.
"""

import asyncio
import os
import signal
import sys

import asyncpg
from pgqueuer import AsyncpgDriver, Queries, QueueManager

ENTRYPOINT = "noop"
CHUNK = 1_000


async def connect() -> AsyncpgDriver:
    return AsyncpgDriver(await asyncpg.connect(os.environ["DATABASE_URL"]))


async def install() -> None:
    driver = await connect()
    await Queries(driver).install()


async def fill(count: int) -> None:
    queries = Queries(await connect())
    for start in range(0, count, CHUNK):
        size = min(CHUNK, count - start)
        await queries.enqueue([ENTRYPOINT] * size, [None] * size, [0] * size)


async def work() -> None:
    manager = QueueManager(Queries(await connect()))

    @manager.entrypoint(ENTRYPOINT)
    async def noop(job) -> None:
        """Do nothing."""

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, manager.shutdown.set)
    await manager.run(batch_size=int(os.environ.get("PGQUEUER_BATCH", "10")))


if __name__ == "__main__":
    command, *rest = sys.argv[1:]
    if command == "fill":
        asyncio.run(fill(int(rest[0])))
    else:
        asyncio.run({"install": install, "work": work}[command]())
