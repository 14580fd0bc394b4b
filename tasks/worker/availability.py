"""Whether the database answers the worker: one line when it goes, one when it is back.

Every part of the worker that talks to the database (the fetchers, the finisher, the
heartbeat and listener, the abort poll, the periodic deferrer) reports each failure
and each success here. The first failure of an outage is logged with its cause; the
end of the outage (every failing part has succeeded again) is logged with its length.
Between tries each part waits with capped, jittered exponential backoff.

A pool's ``PoolTimeout`` keeps no cause (the pool's own connection errors go to its
logger, which the worker quiets), so when one starts an outage, one new connection
is tried to learn why the database refuses (a role that does not exist, say), and its
error goes into the line.
"""

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import procrastinate
import psycopg
import psycopg_pool

log = logging.getLogger("tasks.worker")

# The database is down, unreachable, restarting, or cut this connection.
OUTAGE_ERRORS = (
    psycopg.OperationalError,
    psycopg.InterfaceError,
    psycopg_pool.PoolTimeout,
    OSError,
    TimeoutError,
)
# The schema is not there yet (a worker started before the release step): waited out too.
NOT_READY_ERRORS = (psycopg.errors.UndefinedTable, psycopg.errors.UndefinedFunction)
MAX_CAUSE_CHARS = 500  # libpq lists every address it tried, one line each


def unwrap(exc: BaseException) -> BaseException:
    """Procrastinate wraps database errors in its own; the cause is what matters."""
    if isinstance(exc, procrastinate.exceptions.ConnectorException) and exc.__cause__:
        return exc.__cause__
    return exc


def is_outage(exc: BaseException) -> bool:
    """Whether ``exc`` means "the database cannot serve us now", not "this row is bad"."""
    return isinstance(unwrap(exc), OUTAGE_ERRORS + NOT_READY_ERRORS)


def describe(exc: BaseException) -> str:
    """``ErrorClass: first line of the message``, for a log line that says what happened."""
    exc = unwrap(exc)
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__


async def connection_error(conninfo: str, kwargs: dict) -> str | None:
    """Why a new connection to ``conninfo`` fails, on one line; None when it succeeds.
    libpq's messages name the host, port, user and database, never the password: should
    one ever quote it, it is masked all the same."""
    try:
        conn = await psycopg.AsyncConnection.connect(conninfo, **kwargs)
    except Exception as exc:  # whatever it is, it is the answer sought
        text = " ".join(f"{type(exc).__name__}: {exc}".split())[:MAX_CAUSE_CHARS]
        password = psycopg.conninfo.conninfo_to_dict(conninfo, **kwargs).get("password")
        return text.replace(password, "***") if password else text
    await conn.close()
    return None


class BackoffTimer:
    """Waits of ``first``, doubling up to ``cap`` seconds, each with ±25 % jitter."""

    def __init__(self, first: float = 0.1, cap: float = 2.5):
        self.first, self.cap = first, cap
        self._tries = 0

    def next_delay(self) -> float:
        delay = min(self.cap, self.first * 2**self._tries)
        self._tries = min(self._tries + 1, 30)
        return delay * random.uniform(0.75, 1.25)  # noqa: S311 - jitter, not secrets

    async def wait(self) -> None:
        await asyncio.sleep(self.next_delay())

    def reset(self) -> None:
        self._tries = 0


@dataclass
class Attempt:
    """Whether the database work in an ``Availability.trying`` block went through."""

    ok: bool = False


class Availability:
    """Which parts of the worker cannot reach the database now; see the module docstring."""

    def __init__(self, probe: Callable[[], Awaitable[str | None]] | None = None):
        self._failing: dict[str, str] = {}
        self._erring: dict[str, str] = {}  # parts whose last try failed, not for an outage
        self._since: float | None = None
        self._back_at: float | None = None  # when the last outage ended
        self._probe = probe  # why a new connection fails (``connection_error``)
        self._probing: asyncio.Future[str | None] | None = None

    @property
    def up(self) -> bool:
        return not self._failing

    def failed(self, part: str, exc: BaseException, cause: str | None = None) -> None:
        """Note a failure of ``part``; the first one of an outage is logged, with the
        ``cause`` a new connection gave when it is known."""
        if not self._failing:
            self._since = time.monotonic()
            self._probing = None  # the next outage asks anew
            log.warning(
                "database unavailable (%s): %s%s; retrying until it is back",
                part,
                describe(exc),
                f" (a new connection fails: {cause})" if cause else "",
                extra={"action": "database_unavailable"},
            )
        else:
            log.debug("still no database (%s): %s", part, describe(exc))
        self._failing[part] = describe(exc)

    def recovered(self, part: str) -> None:
        """Note a success of ``part``; the one that ends an outage is logged."""
        if self._failing.pop(part, None) is not None and not self._failing:
            self._back_at = time.monotonic()
            log.warning(
                "database available again after %.1f s",
                time.monotonic() - (self._since or time.monotonic()),
                extra={"action": "database_available"},
            )

    def straggler(self, started: float) -> bool:
        """Whether a try that failed began during an outage that has ended since: a wait
        for a pooled connection begun while the database was away may time out after it
        came back. That is the same outage, said already, not a new one; the next try
        tells whether the database is away again."""
        return self.up and self._back_at is not None and started < self._back_at

    @contextlib.asynccontextmanager
    async def trying(self, part: str, backoff: BackoffTimer) -> AsyncIterator[Attempt]:
        """Run a block of ``part``'s database work, and never let the database end it.

        An outage in the block is noted, then waited out with ``backoff``; so is any other
        database error (a row that breaks a statement, say), logged with its traceback
        the first time. The block then ends early with ``attempt.ok`` False. A success
        is noted and resets the backoff. An error that is not the database's goes through.
        """
        attempt = Attempt()
        started = time.monotonic()
        try:
            yield attempt
        except Exception as exc:
            if is_outage(exc) and self.straggler(started):
                log.debug("%s: a try begun in the outage failed after it: %s", part, describe(exc))
            elif is_outage(exc):
                self.failed(part, exc, await self._cause(exc))
            elif isinstance(unwrap(exc), psycopg.Error):
                self._erred(part, exc)
            else:
                raise
            await backoff.wait()
            return
        attempt.ok = True
        self.recovered(part)
        self._erring.pop(part, None)
        backoff.reset()

    async def _cause(self, exc: BaseException) -> str | None:
        """Why no pooled connection came, when a ``PoolTimeout`` starts an outage: one new
        connection is tried, and parts that time out meanwhile wait for its answer."""
        if self._probe is None or not self.up:
            return None
        if not isinstance(unwrap(exc), psycopg_pool.PoolTimeout):
            return None
        if self._probing is None:
            self._probing = asyncio.ensure_future(self._probe())
        return await asyncio.shield(self._probing)

    def _erred(self, part: str, exc: BaseException) -> None:
        text = describe(exc)
        if self._erring.get(part) == text:
            log.debug("%s failed again: %s", part, text)
            return
        self._erring[part] = text
        log.error("%s failed: %s; trying again", part, text, exc_info=unwrap(exc))
