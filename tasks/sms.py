"""SMS notifications."""

import procrastinate

from tasks import queues, sms_providers
from tasks.payloads import SmsPayload
from tasks.registry import Backoff, job_task

bp = procrastinate.Blueprint()


@job_task(
    bp,
    name="send_notification",
    payload=SmsPayload,
    queue=queues.SMS,
    priority=10,
    time_limit=30,
    retry=Backoff(max_retries=5, base=2, cap=300),
)
async def send_notification(payload: SmsPayload, context: procrastinate.JobContext) -> dict:
    """Send one SMS notification."""
    return await sms_providers.sms_provider().send(payload.to, payload.body)
