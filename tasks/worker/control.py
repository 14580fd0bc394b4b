"""The worker's own connection, apart from the pool: LISTEN/NOTIFY and the heartbeat.

Heartbeats go over this connection so they never queue behind job work in the pool
(a long lock on the jobs table cannot silence a live worker). Notifications wake the
fetchers and carry abort requests. When the connection drops, it is opened again
with backoff; on every (re)connect the fetchers are woken, since notifications may
have been missed meanwhile.
"""

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Iterable

import psycopg
from psycopg import sql

from tasks.worker.availability import Availability, BackoffTimer

PART = "listen/heartbeat"
HEARTBEAT_INTERVAL = 10.0  # Procrastinate's own interval
HEARTBEAT_TIMEOUT = 5.0
ANY_QUEUE = "procrastinate_any_queue_v1"


def channels_for(queues: Iterable[str] | None, *always: str) -> list[str]:
    """Procrastinate's notification channels for these queues (None: every queue)."""
    names = [ANY_QUEUE] if queues is None else [channel(q) for q in queues]
    return list(dict.fromkeys([*names, *(channel(q) for q in always)]))


def channel(queue: str) -> str:
    return f"procrastinate_queue_v1#{queue}"


class ControlConnection:
    """See the module docstring."""

    def __init__(
        self,
        conninfo: str,
        connect_kwargs: dict,
        channels: list[str],
        availability: Availability,
        on_connect: Callable[[], None],
        on_notify: Callable[[str, str], None],
        beat: Callable[[psycopg.AsyncConnection], Awaitable[None]],
    ):
        self.conninfo = conninfo
        self.connect_kwargs = connect_kwargs
        self.channels = channels
        self.availability = availability
        self.on_connect = on_connect
        self.on_notify = on_notify
        self.beat = beat

    async def run(self) -> None:
        """Listen and beat for ever, reconnecting after any outage (cancelled at shutdown)."""
        backoff = BackoffTimer()
        while True:
            async with self.availability.trying(PART, backoff):
                conn = await psycopg.AsyncConnection.connect(
                    self.conninfo, autocommit=True, **self.connect_kwargs
                )
                async with conn:
                    await self._serve(conn, backoff)

    async def _serve(self, conn: psycopg.AsyncConnection, backoff: BackoffTimer) -> None:
        for name in self.channels:
            await conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(name)))
        await self._beat(conn)
        self.availability.recovered(PART)
        backoff.reset()
        self.on_connect()
        due = time.monotonic() + HEARTBEAT_INTERVAL
        while True:
            # aclosing: the generator holds the connection's lock until it is closed.
            wait = max(0.0, due - time.monotonic())
            async with contextlib.aclosing(conn.notifies(timeout=wait)) as notifies:
                async for notify in notifies:
                    self.on_notify(notify.channel, notify.payload)
                    if time.monotonic() >= due:
                        break
            if time.monotonic() >= due:
                await self._beat(conn)
                due = time.monotonic() + HEARTBEAT_INTERVAL

    async def _beat(self, conn: psycopg.AsyncConnection) -> None:
        try:
            await asyncio.wait_for(self.beat(conn), HEARTBEAT_TIMEOUT)
        except TimeoutError:
            raise TimeoutError(f"no answer to the heartbeat in {HEARTBEAT_TIMEOUT:g} s") from None
