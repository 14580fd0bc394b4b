"""The worker: lanes of slots, fed by batched fetches, and parts that outlive the database.

A lane is a number of slots and the queues they take jobs from: the tenants' lane
(``--concurrency`` slots, ``--queues``) and a lane of one slot for the housekeeping
queue, so recovery and retention keep their schedule however busy the tenants keep
the other slots. A lane fetches as many jobs as it has free slots, in one call of
``howdah_fetch_jobs`` (the one place that decides what may run: priority, locks and
the caps per organization and queue). Each job runs as an asyncio task; its outcome
goes to the completer, which writes it whatever the database is doing.

Every part (fetchers, completer, listener/heartbeat, abort poll, periodic deferrer,
reconciliation) retries database failures with backoff, reported once through
``Availability``; only a bug in the worker itself stops it, with a non-zero exit.
"""

import asyncio
import contextlib
import functools
import inspect
import json
import logging
import os
import signal
import socket
import time
from dataclasses import dataclass, field

import procrastinate
import psycopg
import psycopg_pool
from procrastinate.job_context import AbortReason

from tasks import queues as queue_names
from tasks.worker import chores, execution, shutdown, supervisor
from tasks.worker.availability import Availability, BackoffTimer, connection_error
from tasks.worker.completer import Completer
from tasks.worker.control import ControlConnection, channel, channels_for
from webapp import logs
from webapp.store import worker as store

log = logging.getLogger("tasks.worker")

MIN_FETCH_GAP = 0.01  # notifications wake a lane at most every 10 ms after an empty fetch
# A lane with fewer than half its slots free while jobs run waits up to this long for
# half to be free before it fetches: quick jobs end meanwhile, and one fetch fills their
# slots instead of several. Slow jobs' slots wait at most this long.
FETCH_GATHER = 0.002


@dataclass
class Settings:
    """What one worker process is asked to do."""

    name: str
    queues: list[str] | None
    concurrency: int
    shutdown_timeout: float
    poll_interval: float
    org_max_running: int | None
    database_url: str
    connect_kwargs: dict = field(default_factory=dict)
    supervisor_fd: int | None = None  # orders from the parent of ``--processes N``


@dataclass(eq=False)
class Lane:
    """Slots that take jobs from some queues."""

    name: str
    queues: list[str] | None
    slots: int
    org_max_running: int | None
    busy: int = 0
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    found_nothing_at: float = 0.0  # monotonic time of the last fetch that took no job
    _deferred_wake: asyncio.TimerHandle | None = None

    @property
    def free(self) -> int:
        return self.slots - self.busy

    def news(self) -> None:
        """A notification says new jobs may wait. Within ``MIN_FETCH_GAP`` of a fetch that
        found nothing, the wake-up waits for the gap to pass: a tenant's flood held back
        by a cap notifies far faster than fetching again could pay."""
        wait = self.found_nothing_at + MIN_FETCH_GAP - time.monotonic()
        if wait <= 0:
            self.wake.set()
        elif self._deferred_wake is None:
            self._deferred_wake = asyncio.get_running_loop().call_later(wait, self._wake_late)

    def _wake_late(self) -> None:
        self._deferred_wake = None
        self.wake.set()


@dataclass(frozen=True)
class Running:
    task: asyncio.Task
    context: procrastinate.JobContext
    lane: Lane


class Worker:
    """See the module docstring."""

    def __init__(
        self, app: procrastinate.App, pool: psycopg_pool.AsyncConnectionPool, settings: Settings
    ):
        self.app, self.pool, self.settings = app, pool, settings
        self.availability = Availability(
            functools.partial(connection_error, settings.database_url, settings.connect_kwargs)
        )
        self.tenants = Lane(
            "fetch", settings.queues, settings.concurrency, settings.org_max_running
        )
        self.housekeeping = Lane("housekeeping fetch", [queue_names.HOUSEKEEPING], 1, None)
        self.completer = Completer(pool, self.availability, settings.name, self._wake_tenants)
        self.control = ControlConnection(
            settings.database_url,
            settings.connect_kwargs,
            channels_for(settings.queues, queue_names.HOUSEKEEPING),
            self.availability,
            on_connect=self._wake_all,
            on_notify=self._on_notify,
            beat=functools.partial(chores.beat, self),
        )
        self.worker_id: int | None = None
        # By (job id, attempts): after an outage a job this worker still runs may come
        # back to it as a new attempt, and both runs must be told apart.
        self.running: dict[tuple[int, int], Running] = {}
        self.abort_reasons: dict[int, AbortReason] = {}
        self.fetch_lock = asyncio.Lock()  # fetches, re-registration and reconciliation
        self.needs_reconcile = False
        self.stopping = asyncio.Event()
        self.forced = asyncio.Event()
        self.failure: BaseException | None = None

    # -- life cycle ---------------------------------------------------------------

    async def run(self) -> int:
        """Work until asked to stop; 0 after a requested stop, 1 after a failure."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.request_stop)
        if self.settings.supervisor_fd is not None:
            loop.add_reader(self.settings.supervisor_fd, self._heed_supervisor)
        try:
            await self._register()
            if self.worker_id is None:
                return 0  # stopped before the database ever answered
            log.info(
                "worker %s (id %s) started: concurrency=%s queues=%s",
                self.settings.name,
                self.worker_id,
                self.settings.concurrency,
                ",".join(self.settings.queues or []) or "all",
                extra={"action": "worker_start"},
            )
            side = [
                self._spawn(self.control.run(), "listen/heartbeat"),
                self._spawn(self.completer.run(), "finish"),
                self._spawn(chores.poll_aborts(self), "abort poll"),
                self._spawn(chores.defer_periodic(self), "periodic deferrer"),
                self._spawn(chores.reconcile_periodically(self), "reconcile"),
            ]
            feeders = [self._spawn(self._feed(lane), lane.name) for lane in self._lanes()]
            await self.stopping.wait()
            await shutdown.shut_down(self, feeders, side)
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)
            if self.settings.supervisor_fd is not None:
                loop.remove_reader(self.settings.supervisor_fd)
        return 1 if self.failure else 0

    def request_stop(self) -> None:
        """A stop signal. First: stop taking jobs and let running ones finish. Second: abort
        them. Under ``--processes N``, the parent's orders alone abort: a terminal or a
        platform may signal every process besides the parent, whose stop then arrives too,
        and the two are one stop."""
        supervised = self.settings.supervisor_fd is not None
        self.stop(abort=self.stopping.is_set() and not supervised)

    def stop(self, abort: bool = False) -> None:
        """Stop taking jobs and let running ones finish; with ``abort``, abort them now."""
        if not self.stopping.is_set():
            log.info(
                "stop requested: %d jobs running, waiting up to %g s for them",
                len(self.running),
                self.settings.shutdown_timeout,
                extra={"action": "worker_stopping"},
            )
            self.stopping.set()
        if abort and not self.forced.is_set():
            log.warning("second stop request: aborting running jobs now")
            self.forced.set()

    def _heed_supervisor(self) -> None:
        """An order from the parent process; the end of its pipe (the parent died) is a stop."""
        order = supervisor.read_order(self.settings.supervisor_fd)
        if order == supervisor.GONE:
            asyncio.get_running_loop().remove_reader(self.settings.supervisor_fd)
            log.warning("the parent process is gone; stopping", extra={"action": "orphaned"})
        if order is not None:
            self.stop(abort=order == supervisor.ABORT)

    def _spawn(self, coroutine, name: str) -> asyncio.Task:
        task = asyncio.create_task(coroutine, name=name)
        task.add_done_callback(self._part_done)
        return task

    def _part_done(self, task: asyncio.Task) -> None:
        if task.cancelled():
            return
        exc = task.exception()
        if exc is None and not self.stopping.is_set():
            exc = RuntimeError(f"{task.get_name()} ended")
        if exc is not None:
            log.critical("worker part %r failed; stopping", task.get_name(), exc_info=exc)
            self.failure = self.failure or exc
            self.stopping.set()

    async def _register(self) -> None:
        backoff = BackoffTimer()
        while self.worker_id is None and not self.stopping.is_set():
            async with (
                self.availability.trying("register", backoff),
                self.pool.connection() as conn,
            ):
                self.worker_id = await self.register_on(conn)

    async def register_on(self, conn) -> int:
        """Register this worker on ``conn``; returns its new id, which its log lines carry."""
        worker_id = await store.register_worker(
            conn,
            self.settings.name,
            socket.gethostname(),
            os.getpid(),
            self.settings.queues,
            self.settings.concurrency,
        )
        logs.bind_process(worker_id=worker_id)
        return worker_id

    # -- fetching and running jobs ---------------------------------------------------

    def _lanes(self) -> list[Lane]:
        return [self.tenants, self.housekeeping]

    async def _feed(self, lane: Lane) -> None:
        """Fill the lane's free slots, then wait for news, a free slot or the poll."""
        backoff = BackoffTimer()
        while not self.stopping.is_set():
            await self._gather_free_slots(lane)
            wanted = lane.free
            if wanted == 0:
                # News that came while the lane was full is no reason to look again (a
                # wake left set would spin this loop until a slot frees); a job that
                # ends sets it again.
                lane.wake.clear()
                await self._wait_for_news(lane, None)
                continue
            lane.wake.clear()
            taken = 0
            async with self.availability.trying(lane.name, backoff) as attempt:
                taken = await self._fetch(lane, wanted)
            if not attempt.ok:
                self.needs_reconcile = True  # the fetch may have committed all the same
            elif taken < wanted:
                if taken == 0:
                    lane.found_nothing_at = time.monotonic()
                await self._wait_for_news(lane, self.settings.poll_interval)

    async def _gather_free_slots(self, lane: Lane) -> None:
        """See ``FETCH_GATHER``."""
        deadline = time.monotonic() + FETCH_GATHER
        while 0 < lane.free * 2 < lane.slots and not self.stopping.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                return
            lane.wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(lane.wake.wait(), left)

    async def _wait_for_news(self, lane: Lane, timeout: float | None) -> None:
        waits = [asyncio.create_task(lane.wake.wait()), asyncio.create_task(self.stopping.wait())]
        await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        for wait in waits:
            wait.cancel()

    async def _fetch(self, lane: Lane, wanted: int) -> int:
        async with self.fetch_lock:
            async with self.pool.connection() as conn:
                if self.needs_reconcile:
                    await chores.reconcile(self, conn)
                try:
                    rows = await store.fetch_jobs(
                        conn, self.worker_id, lane.queues, wanted, lane.org_max_running
                    )
                except psycopg.errors.ForeignKeyViolation:  # this worker's row is gone
                    await chores.register_again(self, conn)
                    return 0
            # Started under the lock, so reconciliation never takes them for orphans.
            for row in sorted(rows, key=lambda r: (-r["priority"], r["id"])):
                self._start(lane, row)
        return len(rows)

    def _start(self, lane: Lane, row: dict) -> None:
        try:
            job = execution.load_job(row, self.worker_id)
        except Exception as exc:  # whatever the row holds, it fails alone
            log.warning("job %s cannot run: %s", row["id"], exc, extra={"action": "job_unloadable"})
            self.completer.add(execution.unloadable(row, exc))
            return
        context = procrastinate.JobContext(
            app=self.app,
            worker_name=self.settings.name,
            worker_queues=self.settings.queues,
            job=job,
            start_timestamp=time.time(),
            abort_reason=functools.partial(self.abort_reasons.get, job.id),
        )
        lane.busy += 1
        task = asyncio.create_task(self._run_job(lane, context), name=f"job {job.id}")
        self.running[(job.id, job.attempts)] = Running(task, context, lane)

    async def _run_job(self, lane: Lane, context: procrastinate.JobContext) -> None:
        job = context.job
        # This job's own asyncio task (and the thread of a sync task) has a context of its
        # own: every line logged while it runs names the job.
        logs.bind(
            job_id=job.id,
            task=job.task_name,
            organization_id=execution.organization_of(job.task_kwargs),
            attempt=job.attempts + 1,
        )
        log.debug("job %s %s started (attempt %d)", job.id, job.task_name, job.attempts + 1)
        try:
            outcome = await execution.run(context)
        except asyncio.CancelledError as exc:  # aborted before its first step
            task = self.app.tasks.get(job.task_name)
            outcome = execution.failure(context, task, execution.now(), exc)
        self.completer.add(outcome)  # known to the completer before it leaves ``running``
        del self.running[(job.id, job.attempts)]
        if job.id not in self.known_running_ids():
            self.abort_reasons.pop(job.id, None)
        lane.busy -= 1
        lane.wake.set()
        execution.log_outcome(outcome)

    def known_running_ids(self) -> set[int]:
        """Jobs this worker runs now."""
        return {job_id for job_id, _ in self.running}

    def known_job_ids(self) -> set[int]:
        """Jobs this worker runs, or has still to write the outcome of."""
        return self.known_running_ids() | self.completer.pending_job_ids()

    def abort(self, job_id: int, reason: AbortReason) -> None:
        """Ask a running job to stop: async tasks are cancelled, sync ones must check."""
        runs = [run for (run_id, _), run in self.running.items() if run_id == job_id]
        if not runs or job_id in self.abort_reasons:
            return
        self.abort_reasons[job_id] = reason
        for run in runs:
            task = self.app.tasks.get(run.context.job.task_name)
            if task is not None and inspect.iscoroutinefunction(task.func):
                run.task.cancel()

    # -- side parts ------------------------------------------------------------------

    def _wake_tenants(self) -> None:
        self.tenants.wake.set()

    def _wake_all(self) -> None:
        for lane in self._lanes():
            lane.wake.set()

    def _on_notify(self, channel_name: str, payload: str) -> None:
        """A notification wakes a lane, or brings an abort request. Anyone who may connect
        may send one, so a payload of any shape only ever wakes the lane up."""
        try:
            notification = json.loads(payload)
        except (RecursionError, ValueError):
            notification = None
        if not isinstance(notification, dict):
            notification = {}
        job_id = notification.get("job_id")
        if notification.get("type") == "abort_job_requested" and isinstance(job_id, int):
            self.abort(job_id, AbortReason.USER_REQUEST)
        elif channel_name == channel(queue_names.HOUSEKEEPING):
            self.housekeeping.news()
        else:
            self.tenants.news()
