"""``--processes N``: one command runs N worker processes, and its own process minds them.

Each child is ``python -m tasks.worker --processes 1`` with the parent's other flags: its
own event loop, pool, LISTEN connection and worker row, exactly one worker as ever. The
parent opens no connection and starts the children before anything of its own could be
inherited (they are new interpreters, not forks).

The parent passes stops on over one pipe per child rather than as signals. A terminal's
Ctrl-C, systemd (``KillMode=control-group``) and Heroku signal every process of the
command at once; a forwarded signal would reach each child a second time, and a second
signal means "abort the running jobs". A stop over the pipe is taken once, however it
also arrived. The pipe also tells a child that its parent died, even of SIGKILL: the
child reads its end as a stop. Unlike ``PR_SET_PDEATHSIG``, the end of a pipe cannot be
missed by a child still starting up, and it names no process id the system could reuse.

A child that exits on its own with a failure (a crash, a non-zero status, a SIGKILL)
fails the command: the parent logs it once, stops the others gracefully and exits 1, so
that the platform restarts the whole command under its own restart policy and alerting,
as it would a single worker. A child that exits 0 was stopped by a signal sent to it alone (a worker
exits 0 only when asked to): the parent stops the others and the command ends as after a
stop. A stopped command exits 0 if every child did.
"""

import contextlib
import logging
import os
import select
import signal
import subprocess
import sys
import time
from argparse import Namespace
from dataclasses import dataclass

from tasks.worker import shutdown

log = logging.getLogger("tasks.worker")

STOP = b"s"  # stop taking jobs and let running ones finish (a first SIGTERM)
ABORT = b"a"  # abort running jobs now (a second SIGTERM)
GONE = b""  # what a child reads once the parent has died or exited
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
# Past the shutdown timeout, a child may abort its jobs, write their outcomes and
# unregister (tasks/worker/shutdown.py); one that is still running after that as well is
# killed, so that the command ends within the grace period the README asks for.
STOP_GRACE = shutdown.ABORT_GRACE + shutdown.FINISH_GRACE + shutdown.UNREGISTER_TIMEOUT + 2.0


def child_command(options: Namespace, number: int, order_fd: int) -> list[str]:
    """The command line of child ``number`` (from 1), which reads its orders on ``order_fd``."""
    command = [
        sys.executable,
        "-m",
        "tasks.worker",
        "--processes=1",
        f"--concurrency={options.concurrency}",
        f"--queues={','.join(options.queues)}",
        f"--shutdown-timeout={options.shutdown_timeout!r}",
        f"--supervisor-fd={order_fd}",
    ]
    if options.name:
        command.append(f"--name={options.name}.{number}")
    return command


@dataclass(eq=False)
class Child:
    number: int
    process: subprocess.Popen
    orders: int  # the write end of the child's pipe
    reported: bool = False

    def tell(self, order: bytes) -> None:
        """Send an order; a child that is gone, or has ignored 64 KiB of them, is reaped."""
        with contextlib.suppress(OSError):
            os.write(self.orders, order)

    def describe(self) -> str:
        """Which child, and how it ended."""
        status = self.process.returncode
        how = f"exited with status {status}"
        if status < 0:
            how = f"was killed by {signal.Signals(-status).name}"
        return f"worker process {self.number} (pid {self.process.pid}) {how}"


class Supervisor:
    """See the module docstring."""

    def __init__(self, options: Namespace):
        self.options = options
        self.children: list[Child] = []
        self.signals: list[int] = []
        self.stop_requests = 0
        self.deadline: float | None = None  # set once the children are asked to stop
        self.failed = False

    def run(self) -> int:
        """Start the children and mind them until all have ended; the exit status."""
        with self._wakeups() as wakeup:
            try:
                for number in range(1, self.options.processes + 1):
                    self.children.append(self._spawn(number))
                log.info(
                    "started %d worker processes: pids %s",
                    len(self.children),
                    ", ".join(str(child.process.pid) for child in self.children),
                    extra={"action": "supervisor_start"},
                )
                while True:
                    self._heed_signals()
                    live = self._live()
                    self._reap()
                    if not live:
                        break
                    self._enforce_deadline()
                    self._wait(wakeup)
            finally:
                self._close()
        return 1 if self.failed else 0

    @contextlib.contextmanager
    def _wakeups(self):
        """Stop signals are noted and a child's end is noticed, both waking ``_wait``."""
        read_end, write_end = os.pipe()
        for end in (read_end, write_end):
            os.set_blocking(end, False)
        previous_fd = signal.set_wakeup_fd(write_end)
        handlers = {sig: signal.getsignal(sig) for sig in (*STOP_SIGNALS, signal.SIGCHLD)}
        for sig in STOP_SIGNALS:
            signal.signal(sig, lambda signum, _: self.signals.append(signum))
        signal.signal(signal.SIGCHLD, lambda *_: None)  # only to wake the wait
        try:
            yield read_end
        finally:
            for sig, handler in handlers.items():
                signal.signal(sig, handler)
            signal.set_wakeup_fd(previous_fd)
            os.close(read_end)
            os.close(write_end)

    def _spawn(self, number: int) -> Child:
        read_end, write_end = os.pipe()
        try:
            process = subprocess.Popen(  # noqa: S603 - this interpreter, our own flags
                child_command(self.options, number, read_end), pass_fds=(read_end,)
            )
        except BaseException:
            os.close(write_end)
            raise
        finally:
            os.close(read_end)  # the child holds its own copy
        os.set_blocking(write_end, False)
        return Child(number, process, write_end)

    def _live(self) -> list[Child]:
        return [child for child in self.children if child.process.poll() is None]

    def _heed_signals(self) -> None:
        """The first stop signal stops the children; each later one makes them abort."""
        while self.signals:
            signum = self.signals.pop(0)
            self.stop_requests += 1
            if self.stop_requests == 1:
                log.info(
                    "%s: stopping %d worker processes, waiting up to %g s for them",
                    signal.Signals(signum).name,
                    len(self._live()),
                    self.options.shutdown_timeout + STOP_GRACE,
                    extra={"action": "supervisor_stopping"},
                )
                self._stop_children()
            else:
                log.warning("second stop request: worker processes abort their running jobs")
                for child in self._live():
                    child.tell(ABORT)

    def _stop_children(self) -> None:
        if self.deadline is None:
            self.deadline = time.monotonic() + self.options.shutdown_timeout + STOP_GRACE
            for child in self._live():
                child.tell(STOP)

    def _reap(self) -> None:
        """Note every child that has ended; one that ended unasked fails the command."""
        for child in self.children:
            if child.reported or child.process.returncode is None:
                continue
            child.reported = True
            if self.deadline is None and child.process.returncode == 0:
                # A worker exits 0 only when asked to stop: a signal reached it first.
                log.info(
                    "%s: stopped by a signal of its own; stopping the other worker processes",
                    child.describe(),
                    extra={"action": "supervisor_child_stopped"},
                )
                self._stop_children()
            elif self.deadline is None:
                self.failed = True
                log.error(
                    "%s unasked; stopping the other worker processes, then exiting 1",
                    child.describe(),
                    extra={"action": "supervisor_child_failed"},
                )
                self._stop_children()
            elif child.process.returncode != 0:
                self.failed = True
                log.error("%s", child.describe(), extra={"action": "supervisor_child_failed"})
            else:
                log.info("%s", child.describe(), extra={"action": "supervisor_child_stopped"})

    def _enforce_deadline(self) -> None:
        if self.deadline is None or time.monotonic() < self.deadline:
            return
        for child in self._live():
            log.error(
                "worker process %d (pid %d) still running %g s after the stop; killing it",
                child.number,
                child.process.pid,
                self.options.shutdown_timeout + STOP_GRACE,
                extra={"action": "supervisor_child_killed"},
            )
            child.process.kill()
            child.process.wait()
            child.reported = True
            self.failed = True

    def _wait(self, wakeup: int) -> None:
        """Sleep until a signal (a stop, a child's end) or the deadline."""
        timeout = None if self.deadline is None else max(0.0, self.deadline - time.monotonic())
        select.select([wakeup], [], [], timeout)
        with contextlib.suppress(BlockingIOError):
            while os.read(wakeup, 512):
                pass

    def _close(self) -> None:
        """Close the order pipes; a child still running (only after a failure of the parent
        itself) reads their end as a stop, and is waited for."""
        for child in self.children:
            os.close(child.orders)
        for child in self._live():
            try:
                child.process.wait(self.options.shutdown_timeout + STOP_GRACE)
            except subprocess.TimeoutExpired:
                child.process.kill()
                child.process.wait()


def read_order(fd: int) -> bytes | None:
    """The child's side: the strongest order waiting on ``fd`` (ABORT, STOP or GONE), or
    None. GONE, the end of the pipe, means the parent died or exits: a stop as well."""
    try:
        data = os.read(fd, 512)
    except BlockingIOError:
        return None
    if not data:
        return GONE
    return ABORT if ABORT in data else STOP
