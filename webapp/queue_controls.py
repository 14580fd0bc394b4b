"""Steering whole queues: pause, resume, and retrying every failed job of one.

Used by the admin pages and the flask CLI; each caller runs these inside its own
transaction, with its audit entry, so a change and its record commit together.
"""

from dataclasses import dataclass

import psycopg

import tasks.app  # a module reference: tasks and webapp import each other
from tasks import queues
from webapp.store import jobs as job_store
from webapp.store import queues as store

KNOWN = (*queues.ALL, queues.HOUSEKEEPING)
RETRY_MAX = 10_000  # above this, a queue's failed jobs go through the job list's bulk action
RETRY_BATCH = 1_000  # failed jobs per statement


class TooManyFailed(Exception):
    """More failed jobs than one request retries."""


@dataclass(frozen=True)
class RetryReport:
    """What "retry all failed" did: jobs put back, and jobs left failed, by reason."""

    retried: int = 0
    platform_only: int = 0  # tasks for platform admins, left to them
    copied: int = 0  # retried before as a new job (that one is the job to retry)
    key_taken: int = 0  # a waiting job holds their idempotency key

    def __add__(self, other: "RetryReport") -> "RetryReport":
        return RetryReport(
            *(getattr(self, f) + getattr(other, f) for f in self.__dataclass_fields__)
        )

    @property
    def skipped(self) -> dict:
        """The reasons jobs were left failed, with their counts (none: empty)."""
        counts = {"platform_only": self.platform_only, "copied": self.copied}
        return {reason: n for reason, n in {**counts, "key_taken": self.key_taken}.items() if n}


def visible_queues(platform: bool) -> tuple[str, ...]:
    """Queues a reader may act on: the tenants', and housekeeping for platform admins."""
    return KNOWN if platform else queues.ALL


def pause(conn: psycopg.Connection, queue: str, by: str) -> bool:
    """Pause a queue; False if it was paused already (its first pause stands)."""
    return store.pause_queue(conn, queue, by)["changed"]


def resume(conn: psycopg.Connection, queue: str) -> dict | None:
    """Resume a queue and wake its workers at commit; its pause, or None if not paused."""
    return store.resume_queue(conn, queue)


def held_tasks(platform: bool) -> list[str]:
    """Tasks whose jobs this caller may not retry (``QueueService.retry``'s rule)."""
    if platform:
        return []
    return sorted(name for name, spec in tasks.app.deferrable().items() if spec.platform_only)


def retry_failed(
    conn: psycopg.Connection, queue: str, organization_id: int | None, platform: bool
) -> RetryReport:
    """Put every failed job of a queue in scope back in it, in batches, and wake its
    workers at commit. Raises ``TooManyFailed`` above ``RETRY_MAX`` jobs, and
    UniqueViolation if a job took one of their idempotency keys meanwhile."""
    if job_store.count_failed_jobs(conn, queue, organization_id, RETRY_MAX + 1) > RETRY_MAX:
        raise TooManyFailed(f"more than {RETRY_MAX:,} failed jobs in {queue}")
    held, after, report, first = held_tasks(platform), 0, RetryReport(), None
    # Bounded: jobs that fail while this runs may add a batch, never an endless loop.
    for _ in range(RETRY_MAX // RETRY_BATCH + 1):
        batch = job_store.retry_failed_jobs_batch(
            conn, queue, organization_id, held, after, RETRY_BATCH
        )
        if batch["last_id"] is None:
            break
        after, first = batch["last_id"], first or batch["first_retried"]
        report += RetryReport(
            batch["retried"], batch["platform_only"], batch["copied"], batch["key_taken"]
        )
    if first is not None:
        store.wake_workers(conn, queue, first)
    return report
