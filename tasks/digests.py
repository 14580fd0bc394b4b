"""Email digests: the task that sends one, and the periodic task that defers them.

``send_digest`` mails one message per recipient (nobody sees the others' addresses) and
records each recipient as soon as the server has taken or refused the message, so a
retried job skips them: nobody gets a digest twice, except if the worker dies in the
moment between the server's answer and the record.

Its outcome: it succeeds once every recipient has the digest. A recipient the server
refuses for good (5xx) is recorded and not tried again; the others still get theirs,
then the job fails without a retry, so the refusal shows on the failures page. A
refusal for now (4xx), a lost connection or a timeout fails the run, and the job is
retried with backoff, for the recipients not served yet.
"""

import asyncio
import datetime
import os
from dataclasses import dataclass

import procrastinate
import psycopg

from tasks import digest_schedule, digest_view, mail, queues
from tasks.maintenance import pool
from tasks.payloads import DigestPayload
from tasks.progress import report_progress
from tasks.registry import Backoff, TryLater, job_task
from webapp.config import email_settings
from webapp.store import digests as store

bp = procrastinate.Blueprint()

TIME_LIMIT = 120.0


class RecipientsRefused(Exception):
    """The SMTP server refused some recipients for good; the others have the digest."""


@dataclass(frozen=True)
class MailBackoff(Backoff):
    """Backoff that gives up at once when retrying cannot help."""

    def get_retry_decision(
        self, *, exception: BaseException, job: procrastinate.jobs.Job
    ) -> procrastinate.RetryDecision | None:
        if isinstance(exception, mail.PermanentFailure | RecipientsRefused):
            return None
        return super().get_retry_decision(exception=exception, job=job)


@job_task(
    bp,
    name="send_digest",
    payload=DigestPayload,
    queue=queues.EMAIL,
    priority=0,
    time_limit=TIME_LIMIT,
    retry=MailBackoff(max_retries=4, base=30, cap=1800),
)
async def send_digest(payload: DigestPayload, context: procrastinate.JobContext) -> dict:
    """Send an organization's activity digest by email, one message per recipient."""
    settings = email_settings(os.environ)
    until = payload.until or datetime.datetime.now(datetime.UTC)
    async with pool(context).connection() as conn:
        digest = await digest_view.gather(conn, payload, until, settings["PUBLIC_URL"])
        done = await store.list_deliveries(conn, context.job.id)
    if digest is None:
        return {"skipped": "the organization or the subscription is gone"}
    text, html = digest_view.render(digest)
    provider = mail.email_provider(settings)
    recipients = list(dict.fromkeys(payload.recipients))  # each address once
    resumed = sum(1 for r in recipients if r in done)
    retry_later = 0
    report_progress(context, resumed / len(recipients), f"sending {len(recipients)} e-mails")
    # A send must never be cut by the time limit (its record would be lost, and the
    # retry would mail that recipient again): stop while a slow send still fits, and go
    # on in a new run, which skips the recipients on record.
    stop_at = asyncio.get_running_loop().time() + TIME_LIMIT - 2 * settings["SMTP_TIMEOUT"] - 5
    async with provider.session() as session:
        for recipient in recipients:
            if recipient in done:
                continue
            if asyncio.get_running_loop().time() > stop_at:
                raise TryLater(f"sent {len(done)} of {len(recipients)}; the rest in a new run", 1)
            message = mail.compose(provider.sender, recipient, digest.subject, text, html)
            outcome = await send_and_record(context, session, recipient, message)
            if outcome.kind == "refused" and not outcome.permanent:
                retry_later += 1
                continue
            done[recipient] = outcome.kind
            count, total = len(done), len(recipients)
            report_progress(context, count / total, f"sent {count} of {total} e-mails")
    return outcome_of(provider.name, recipients, done, resumed, retry_later)


async def send_and_record(context, session, recipient: str, message) -> mail.Outcome:
    """Send one message and note what became of it (a refusal for now is not noted). A
    cancellation (a shutdown's abort) waits for both, so no message goes out unrecorded."""
    work = asyncio.ensure_future(send_one(context, session, recipient, message))
    try:
        return await asyncio.shield(work)
    except asyncio.CancelledError:
        await work
        raise


async def send_one(context, session, recipient: str, message) -> mail.Outcome:
    outcome = await session.send(message)
    if outcome.kind != "refused" or outcome.permanent:
        async with pool(context).connection() as conn:
            await store.insert_delivery(conn, context.job.id, recipient, outcome.kind, outcome.code)
    return outcome


def outcome_of(
    provider: str, recipients: list[str], done: dict[str, str], resumed: int, retry_later: int
) -> dict:
    """The job's result, or the exception that ends it (see the module's docstring)."""
    refused = sum(1 for outcome in done.values() if outcome == "refused")
    if retry_later:
        raise mail.TemporaryFailure(
            f"the SMTP server refused {retry_later} of {len(recipients)} recipients for now"
        )
    if refused:
        raise RecipientsRefused(
            f"the SMTP server refused {refused} of {len(recipients)} recipients for good"
        )
    return {
        "provider": provider,
        "recipients": len(recipients),
        "sent": sum(1 for outcome in done.values() if outcome == "sent"),
        "logged": sum(1 for outcome in done.values() if outcome == "logged"),
        "resumed": resumed,
    }


async def defer_digest(conn: psycopg.AsyncConnection, payload: DigestPayload) -> int:
    """Defer a digest job on ``conn``, inside the caller's transaction; its id."""
    deferrer = send_digest.configure(connection=conn)
    return await deferrer.defer_async(**payload.model_dump(mode="json"))


@bp.periodic(cron="* * * * *")
@bp.task(
    name="schedule_digests",
    queue=queues.HOUSEKEEPING,
    priority=queues.URGENT_PRIORITY,
    pass_context=True,
)
async def schedule_digests(context: procrastinate.JobContext, timestamp: int) -> dict:
    """Defer the digest of every subscription that has fallen due, once per period
    (see ``tasks.digest_schedule``)."""
    now = datetime.datetime.now(datetime.UTC)
    async with pool(context).connection() as conn:
        jobs = await digest_schedule.defer_due_digests(conn, now, defer_digest)
    return {"deferred": jobs}
