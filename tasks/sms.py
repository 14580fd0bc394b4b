"""SMS notifications: one message per job, sent once, at the organization's pace.

A run of ``send_notification``:

1. takes the job's row in ``sms_messages`` (creating it as pending); if the provider has
   accepted the message already (a provider message id is on record), it sends nothing
   and returns what is recorded: a retried or re-run job never sends twice;
2. takes the organization's next send slot (``webapp.store.sms.reserve_send_slot``) and
   sleeps until it: the rate limit delays messages across every worker, never drops them;
3. sends; a refusal for good (an invalid or blocked number: a 4xx) is recorded as
   failed with the provider's code and message and fails the job without a retry; a
   refusal for now (429, 5xx, no answer) is retried with backoff, after Retry-After;
4. records the acceptance at once, in a statement of its own, retried through a short
   database blip. If the database stays away through every try, the job fails without a
   retry (the attempt's error names the provider's message id): a message may then lack
   its record, but it is never sent twice.

Just before the request leaves, the row notes that a send is under way; the provider's
answer, a refusal included, clears it. A request that got no answer (a timeout, a
dropped connection) may have been accepted: the message is recorded as unknown and the
job fails without a retry. A run that finds the note still set (its worker was killed
mid-request, then the job recovered) or a job that retries one whose message went out,
or may have, sends nothing and fails the same way. A message is thus lost rather than
sent twice when the outcome cannot be known; the job's page and the failures page say so.
"""

import asyncio
import logging
import os

import procrastinate
import psycopg

from tasks import queues, sms_providers, sms_text
from tasks.maintenance import pool
from tasks.payloads import SmsPayload
from tasks.registry import Backoff, NotRetryable, TryLater, job_task
from webapp.config import sms_settings
from webapp.store import sms as store

log = logging.getLogger(__name__)

bp = procrastinate.Blueprint()

TIME_LIMIT = 30.0
# The time limit must never cut a send from its record, so a run budgets for both before
# it waits for its slot: the send takes at most TELNYX_TIMEOUT, held to SEND_TIMEOUT_CAP,
# and the acceptance's record five tries of ACCEPT_TRY_SECONDS with these waits between.
# What is left (about 7 s) is the longest a run waits for its slot; a slot further away
# sends the job back to wait in the queue (SendSlotsTaken), not asleep in a worker.
SEND_TIMEOUT_CAP = 10.0
ACCEPT_RETRY_WAITS = (0.2, 0.5, 1.0, 2.0)
ACCEPT_TRY_SECONDS = 1.5
MARGIN_SECONDS = 2.0
RETRY = Backoff(max_retries=5, base=2, cap=300)


class AcceptanceNotRecorded(NotRetryable):
    """The provider accepted the message, but the database did not take the record."""


class UnknownOrganization(NotRetryable):
    """The job's organization is gone (or never was): its message has no one to bill."""


class MaySendTwice(NotRetryable):
    """An earlier run's request, or an earlier job's, may have sent the message already."""


class SendSlotsTaken(TryLater):
    """The organization's sends are booked further ahead than a run may wait."""


def accept_budget() -> float:
    """The longest the acceptance's record may take, every try timing out."""
    return ACCEPT_TRY_SECONDS * (len(ACCEPT_RETRY_WAITS) + 1) + sum(ACCEPT_RETRY_WAITS)


@job_task(
    bp,
    name="send_notification",
    payload=SmsPayload,
    queue=queues.SMS,
    priority=10,
    time_limit=TIME_LIMIT,
    retry=RETRY,
)
async def send_notification(payload: SmsPayload, context: procrastinate.JobContext) -> dict:
    """Send one SMS notification, once, at its organization's pace."""
    deadline = asyncio.get_running_loop().time() + TIME_LIMIT
    settings = sms_settings(os.environ)
    provider = sms_providers.sms_provider(settings)
    job_id, connections = context.job.id, pool(context)
    segments = sms_text.count_segments(payload.body).segments
    async with connections.connection() as conn:
        try:
            message = await store.claim_message(
                conn, job_id, payload.organization_id, provider.name, payload.to, segments
            )
        except psycopg.errors.ForeignKeyViolation:
            raise UnknownOrganization(
                f"organization {payload.organization_id} does not exist; nothing was sent"
            ) from None
        if message["provider_message_id"]:
            return summary(message, repeat=True)
        await refuse_a_second_send(conn, job_id, message)
    send_timeout = min(settings["TELNYX_TIMEOUT"], SEND_TIMEOUT_CAP)
    room = deadline - asyncio.get_running_loop().time() - send_timeout - accept_budget()
    await wait_for_slot(connections, payload.organization_id, room - MARGIN_SECONDS)
    last_try = context.job.attempts >= RETRY.max_retries
    answer = await send(connections, job_id, provider, payload, send_timeout, last_try)
    message = await record_acceptance(connections, job_id, answer) or message
    log.info(
        "SMS of job %s accepted by %s as %s (to %s)",
        job_id,
        provider.name,
        answer.message_id,
        sms_providers.masked_number(payload.to),
        extra={"action": "sms_accepted"},
    )
    return summary({**message, "provider_message_id": answer.message_id}, repeat=False)


def summary(message: dict, repeat: bool) -> dict:
    """The job's result: the message as recorded (``repeat``: accepted by an earlier run)."""
    return {
        "provider": message["provider"],
        "message_id": message["provider_message_id"],
        "status": message["status"],
        "segments": message["segments"],
        "sent": message["status"] != "logged",
        "repeat": repeat,
    }


async def wait_for_slot(connections, organization_id: int, max_wait: float) -> None:
    """Sleep until the organization's next send slot, if it lies within ``max_wait``
    seconds; otherwise leave the slots to others and come back later (``SendSlotsTaken``)."""
    async with connections.connection() as conn:
        wait = None
        if max_wait >= 0:
            wait = await store.reserve_send_slot(conn, organization_id, max_wait)
        if wait is None:
            ahead = await store.get_send_slot(conn, organization_id) or 0.0
            raise SendSlotsTaken(
                f"the organization's SMS slots are taken for the next {ahead:.1f} s",
                retry_after=max(1.0, ahead - max(0.0, max_wait)),
            )
    await asyncio.sleep(wait)


async def refuse_a_second_send(conn, job_id: int, message: dict) -> None:
    """Raise ``MaySendTwice`` if the message may have gone out already: an earlier run's
    request got no answer (or its worker died during it), or a job this one retries had
    its message accepted, or may have."""
    problem = None
    if message["send_started_at"]:
        problem = "an earlier run's request to the provider got no answer"
    elif earlier := await store.find_sent_by_an_earlier_job(conn, job_id):
        problem = f"job {earlier['job_id']}, which this job retries, sent it or may have"
    if problem:
        error = f"{problem}; the message may have gone out, so it is not sent again"
        await store.record_error(conn, job_id, "may_send_twice", error, True, unknown=True)
        raise MaySendTwice(error)


async def send(connections, job_id, provider, payload: SmsPayload, timeout: float, last_try):
    """The provider's acceptance of the message; its refusal recorded and raised."""
    async with connections.connection() as conn:  # from here on, sent or not is unknown
        await store.mark_sending(conn, job_id)
    try:
        async with asyncio.timeout(timeout):
            return await provider.send(payload.to, payload.body)
    except TimeoutError:
        error = sms_providers.NoAnswer("timeout", f"no answer in {timeout:g} s")
    except (
        sms_providers.ProviderRefused,
        sms_providers.ProviderUnavailable,
        sms_providers.NoAnswer,
    ) as exc:
        error = exc
    unknown = isinstance(error, sms_providers.NoAnswer)
    final = last_try or isinstance(error, NotRetryable)
    try:
        async with connections.connection() as conn:
            await store.record_error(conn, job_id, error.code, error.message, final, unknown)
    except psycopg.Error as exc:  # the provider's answer is what the job reports
        log.warning("job %s: SMS error not recorded: %s", job_id, type(exc).__name__)
    raise error


async def record_acceptance(connections, job_id: int, answer) -> dict | None:
    """Record the acceptance, through a short database blip; shielded, so that a
    cancellation (a shutdown) does not cut it short."""
    return await asyncio.shield(accept_with_retries(connections, job_id, answer))


async def accept_with_retries(connections, job_id: int, answer) -> dict | None:
    """Try the acceptance's record a few times; ``AcceptanceNotRecorded`` if none lands."""
    for wait in (*ACCEPT_RETRY_WAITS, None):
        try:
            async with asyncio.timeout(ACCEPT_TRY_SECONDS):
                async with connections.connection(timeout=ACCEPT_TRY_SECONDS) as conn:
                    return await store.record_acceptance(
                        conn, job_id, answer.message_id, answer.status
                    )
        except (psycopg.Error, TimeoutError) as exc:
            problem = f"{type(exc).__name__}: {exc}".splitlines()[0]
        if wait is None:
            raise AcceptanceNotRecorded(
                f"the provider accepted the message as {answer.message_id}, but it could"
                f" not be recorded ({problem}); not retried, so as not to send it twice"
            )
        log.warning("job %s: SMS acceptance not recorded yet (%s)", job_id, problem)
        await asyncio.sleep(wait)
