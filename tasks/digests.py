"""Email digests."""

import procrastinate

from tasks import providers, queues
from tasks.payloads import DigestPayload
from tasks.registry import Backoff, job_task

bp = procrastinate.Blueprint()


@job_task(
    bp,
    name="send_digest",
    payload=DigestPayload,
    queue=queues.EMAIL,
    priority=0,
    time_limit=120,
    retry=Backoff(max_retries=4, base=30, cap=1800),
)
async def send_digest(payload: DigestPayload, context: procrastinate.JobContext) -> dict:
    """Send an organization's activity digest by email."""
    subject = f"Your {payload.period} Howdah digest"
    text = f"Digest for organization {payload.organization_id} ({payload.period})."
    return await providers.email_provider().send(list(payload.recipients), subject, text)
