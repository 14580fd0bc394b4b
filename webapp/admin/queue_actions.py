"""Actions on a whole queue: pause, resume, and retry every failed job in it.

Queues are shared by every organization, so pausing one stops every tenant: only
platform admins pause and resume. Retrying failed jobs is scoped like every page: an
operator retries their organization's failed jobs only.
"""

import psycopg
from flask import abort, flash, redirect
from flask_login import current_user

from webapp import audit, db, queue_controls
from webapp.admin import bp, platform_page, scope
from webapp.admin.layout import admin_url

SKIPPED = {
    "platform_only": "{} of tasks for platform admins",
    "copied": "{} retried before as new jobs",
    "key_taken": "{} whose idempotency key a waiting job holds",
}


def queue_or_404(queue: str) -> str:
    """The queue named in the URL, if it is one the reader may act on."""
    if queue not in queue_controls.visible_queues(current_user.is_admin):
        abort(404, f"There is no queue named {queue!r}.")
    return queue


def back_to_overview():
    """Where a queue action sends the reader: the overview, with its organization filter."""
    return redirect(admin_url("admin.overview"))


@bp.post("/<queue>/pause")
@platform_page
def pause_queue(queue: str):
    """Stop workers taking jobs of a queue; its jobs wait, running ones finish."""
    queue = queue_or_404(queue)
    conn = db.get_conn()
    with conn.transaction():  # the pause and its audit entry, or neither
        paused = queue_controls.pause(conn, queue, current_user.label)
        if paused:
            audit.record("queue.paused", target_type="queue", target_id=queue)
    if paused:
        flash(f"Queue {queue} is paused: workers take none of its jobs.", "success")
    else:
        flash(f"Queue {queue} was paused already.", "info")
    return back_to_overview()


@bp.post("/<queue>/resume")
@platform_page
def resume_queue(queue: str):
    """Let workers take jobs of a paused queue again, waking them at once."""
    queue = queue_or_404(queue)
    conn = db.get_conn()
    with conn.transaction():  # the resume, its wake-up call and its audit entry
        pause = queue_controls.resume(conn, queue)
        if pause is not None:
            details = {"paused_at": pause["paused_at"].isoformat(), "paused_by": pause["paused_by"]}
            audit.record("queue.resumed", target_type="queue", target_id=queue, details=details)
    if pause is None:
        flash(f"Queue {queue} was not paused.", "info")
    else:
        flash(f"Queue {queue} is resumed: workers take its jobs again.", "success")
    return back_to_overview()


@bp.post("/<queue>/retry-failed")
def retry_failed(queue: str):
    """Put every failed job of a queue, in the reader's scope, back to wait."""
    queue, organization_id = queue_or_404(queue), scope.organization()
    conn = db.get_conn()
    try:
        with conn.transaction():
            report = queue_controls.retry_failed(
                conn, queue, organization_id, current_user.is_admin
            )
            details = {"retried": report.retried, "skipped": report.skipped}
            audit.record(
                "queue.retried_failed",
                target_type="queue",
                target_id=queue,
                organization_id=organization_id,
                details=details,
            )
    except queue_controls.TooManyFailed:
        flash(too_many_message(queue), "error")
    except psycopg.errors.UniqueViolation:
        flash("A job took the idempotency key of one of them meanwhile; try again.", "error")
    else:
        flash(retried_message(queue, report), "success")
    return back_to_overview()


def too_many_message(queue: str) -> str:
    """Why a large retry is refused, and where to do it instead."""
    return (
        f"Queue {queue} holds more than {queue_controls.RETRY_MAX:,} failed jobs, more than"
        " one request retries. Retry them with the bulk action on the job list"
        f" (Jobs, queue {queue}, state failed), which runs in the background."
    )


def retried_message(queue: str, report: queue_controls.RetryReport) -> str:
    """ "12 failed jobs of sms are back in the queue; 2 left failed: ..." """
    message = f"{report.retried:,} failed jobs of {queue} are back in the queue."
    left = [SKIPPED[reason].format(f"{n:,}") for reason, n in report.skipped.items()]
    return message + (f" Left failed: {'; '.join(left)}." if left else "")
