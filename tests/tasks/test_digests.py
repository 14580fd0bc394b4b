"""The digest task: it sends in batches and reports its progress as it goes."""

import asyncio

import pytest

from tasks import digests, mail
from tests.tasks.conftest import context_on, with_pool

RECIPIENTS = [f"person{n}@example.com" for n in range(25)]


class SlowEmail:
    """A provider that takes a while per message and notes who each one went to."""

    name = "slow"

    def __init__(self):
        self.batches = []

    async def send(self, recipients: list[str], subject: str, text: str) -> dict:
        await asyncio.sleep(0.3)
        self.batches.append(recipients)
        return {"provider": self.name, "sent": True, "recipients": len(recipients)}


@pytest.fixture
def digest_job(conn):
    """A running digest job's id."""
    return conn.execute(
        "INSERT INTO procrastinate_jobs (queue_name, task_name, args, status)"
        " VALUES ('email-digests', 'email:send_digest', '{\"organization_id\": 1}', 'doing')"
        " RETURNING id"
    ).fetchone()[0]


def send(db_url, job_id, recipients):
    async def run(pool):
        return await digests.send_digest.func(
            context_on(pool, job_id, "email:send_digest"),
            organization_id=1,
            period="daily",
            recipients=recipients,
        )

    return with_pool(db_url, run)


def test_a_digest_reports_how_many_emails_it_has_sent(
    db_url, conn, digest_job, writes, monkeypatch
):
    provider = SlowEmail()
    monkeypatch.setattr(mail, "email_provider", lambda: provider)
    assert send(db_url, digest_job, RECIPIENTS) == {
        "provider": "slow",
        "sent": True,
        "recipients": 25,
    }
    assert provider.batches == [RECIPIENTS[:10], RECIPIENTS[10:20], RECIPIENTS[20:]]
    rows = [(fraction, message) for fraction, message, _ in writes()]
    assert rows[0] == (0.0, "sending 25 e-mails")
    assert rows[-1] == (1.0, "sent 25 of 25 e-mails")
    # 0.9 s of sending: the reports in between reach the database too.
    assert set(rows[1:-1]) & {(0.4, "sent 10 of 25 e-mails"), (0.8, "sent 20 of 25 e-mails")}


def test_a_digest_by_the_console_provider_ends_at_one(db_url, conn, digest_job):
    result = send(db_url, digest_job, RECIPIENTS[:3])
    assert result == {"provider": "console", "sent": False, "recipients": 3}
    assert conn.execute(
        "SELECT fraction, message FROM job_progress WHERE job_id = %s", (digest_job,)
    ).fetchone() == (1.0, "sent 3 of 3 e-mails")
