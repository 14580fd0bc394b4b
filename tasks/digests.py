"""Email digests."""

import procrastinate

from tasks import mail, queues
from tasks.payloads import DigestPayload
from tasks.progress import report_progress
from tasks.registry import Backoff, job_task

bp = procrastinate.Blueprint()

BATCH = 10  # recipients per message handed to the provider


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
    recipients = list(payload.recipients)
    provider = mail.email_provider()
    sent = []
    report_progress(context, 0, f"sending {len(recipients)} e-mails")
    # In batches, so that the job's page shows how far a long list has gone.
    for start in range(0, len(recipients), BATCH):
        sent.append(await provider.send(recipients[start : start + BATCH], subject, text))
        done = min(start + BATCH, len(recipients))
        report_progress(
            context, done / len(recipients), f"sent {done} of {len(recipients)} e-mails"
        )
    return {
        "provider": provider.name,
        "sent": all(result["sent"] for result in sent),
        "recipients": len(recipients),
    }
