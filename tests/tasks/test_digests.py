"""The digest task: what it counts, where its links lead, whom it sends to and how often."""

import asyncio
import contextlib
import logging
import re
import urllib.parse

import pytest

import tasks.app  # noqa: F401  (the digest task gets its namespace from the App)
from tasks import digest_view, digests, mail
from tasks.payloads import DigestPayload
from tests.conftest import AuthActions
from tests.tasks import digest_rows
from tests.tasks.conftest import context_on, with_pool

JOB_PAGE = "/admin/queues/jobs/"
RECIPIENTS = ["ops@example.com", "dev@example.com", "cto@example.com"]


@pytest.fixture
def digest_job(conn, orgs):
    """A running digest job's id."""
    return digest_rows.insert_job(conn, 1, "email:send_digest", "doing", "email-digests")


def payload(**fields) -> DigestPayload:
    values = {"organization_id": 1, "period": "daily", "recipients": RECIPIENTS}
    return DigestPayload(**{**values, **fields})


def gather(db_url, digest_payload, public_url="https://howdah.example.com/base/"):
    async def run(pool):
        async with pool.connection() as conn:
            return await digest_view.gather(conn, digest_payload, digest_payload.until, public_url)

    return with_pool(db_url, run)


def send(db_url, job_id, **fields):
    async def run(pool):
        context = context_on(pool, job_id, "email:send_digest")
        return await digests.send_digest.func(context, **payload(**fields).model_dump(mode="json"))

    return with_pool(db_url, run)


def test_a_digest_counts_the_periods_messages_and_failed_jobs(db_url, conn, orgs):
    digest_rows.week_of_activity(conn)
    subscription = digest_rows.insert_subscription(conn)
    digest = gather(db_url, payload(until=digest_rows.UNTIL, subscription_id=subscription))
    assert [(s.label, s.value, s.alert) for s in digest.sms] == [
        ("Sent", "5", False),
        ("Delivered", "3", False),
        ("Failed", "2", True),
    ]
    assert digest.sms_note == (
        "1 message not accepted by the provider yet; 1 message only logged (console provider)"
    )
    assert digest.failed_summary == "2 jobs failed (4 failed runs, 2 kinds of error)."
    assert [(f.task, f.error) for f in digest.failures] == [
        ("sms:send_notification", "ProviderError: invalid number <phone>"),
        ("email:send_digest", "TimeoutError: timed out"),
    ]
    assert [f.counts for f in digest.failures] == [
        "2 jobs failed, 3 failed runs",
        "1 failed run, all retried",
    ]
    assert digest.more_failures == ""
    assert digest.window == "Sun 8 Mar 2026, 09:00 to Mon 9 Mar 2026, 09:00 (Europe/Berlin)"
    assert digest.subject == "Acme: daily digest, 5 SMS sent, 2 jobs failed"


def test_a_weekly_digest_covers_seven_days_in_utc_when_sent_by_hand(db_url, conn, orgs):
    digest_rows.week_of_activity(conn)
    digest = gather(db_url, payload(period="weekly", until=digest_rows.UNTIL))
    assert digest.sms[0].value == "6"  # with the one delivered two days before
    assert digest.failed_summary == "3 jobs failed (5 failed runs, 3 kinds of error)."
    assert digest.window == "Mon 2 Mar 2026, 08:00 to Mon 9 Mar 2026, 08:00 (UTC)"


def test_a_digest_lists_the_top_failures_and_counts_the_rest(db_url, conn, orgs, monkeypatch):
    monkeypatch.setattr(digest_view, "TOP_FAILURES", 2)
    for n in range(3):
        for _ in range(n + 1):
            at = digest_rows.UNTIL - 9 * digest_rows.HOUR
            digest_rows.failed_job(conn, 1, "sms:send_notification", [(f"Error{n}", "x")], at)
    digest = gather(db_url, payload(until=digest_rows.UNTIL))
    assert [f.error for f in digest.failures] == ["Error2: x", "Error1: x"]
    assert digest.failed_summary == "6 jobs failed (6 failed runs, 3 kinds of error)."
    assert digest.more_failures == "1 more kind of error on the failures page."


@pytest.mark.parametrize("role", ["admin", "viewer"])
def test_the_digests_links_open_the_matching_admin_pages(db_url, conn, app, make_user, role):
    digest_rows.week_of_activity(conn)
    jobs = conn.execute(
        "SELECT status, task_name, (args->>'organization_id')::int, id FROM procrastinate_jobs"
    ).fetchall()
    failed_sms = [i for s, t, o, i in jobs if (s, t, o) == ("failed", "sms:send_notification", 1)]
    retried = [i for s, t, o, i in jobs if (s, t) == ("succeeded", "email:send_digest")]
    others = [i for s, t, o, i in jobs if o == 2]
    digest = gather(db_url, payload(until=digest_rows.UNTIL), "http://localhost/")
    make_user(f"{role}@example.com", 1, role)
    reader = AuthActions(app.test_client())
    assert reader.login(f"{role}@example.com").status_code == 302
    urls = [digest.sms_url, digest.failures_url, *(link.url for link in digest.links)]
    for url in [*urls, *(f.url for f in digest.failures)]:
        parts = urllib.parse.urlsplit(url)
        response = reader.client.get(f"{parts.path}?{parts.query}")
        assert response.status_code == 200, (url, response.status_code)
    for failure, expected in zip(digest.failures, [failed_sms, retried], strict=True):
        page = reader.client.get(failure.url.removeprefix("http://localhost"))
        shown = page.get_data(as_text=True)
        listed = [i for i in [*expected, *others] if re.search(f'href="{JOB_PAGE}{i}[?"]', shown)]
        assert listed == expected


def test_the_text_and_html_say_the_same(db_url, conn, orgs):
    digest_rows.week_of_activity(conn)
    digest = gather(db_url, payload(until=digest_rows.UNTIL))
    text, html = digest_view.render(digest)
    for shown in (text, html):
        assert "Daily digest for Acme" in shown
        assert "2 jobs failed (4 failed runs, 2 kinds of error)." in shown
        assert "ProviderError: invalid number &lt;phone&gt;" in html
        assert "ProviderError: invalid number <phone>" in text
    for link in digest.links:
        assert link.url in text
        assert f'href="{link.url.replace("&", "&amp;")}"' in html


def test_the_html_escapes_what_an_organization_may_name(db_url, conn, orgs):
    conn.execute("UPDATE organizations SET name = %s WHERE id = 1", ("<b>Acme</b>\nCo",))
    text, html = digest_view.render(gather(db_url, payload(until=digest_rows.UNTIL)))
    assert "<b>Acme</b>" not in html and "&lt;b&gt;Acme&lt;/b&gt; Co" in html
    assert "Daily digest for <b>Acme</b> Co" in text


def test_a_digest_by_the_console_provider_records_each_recipient(db_url, conn, digest_job, caplog):
    caplog.set_level(logging.INFO, logger="tasks.mail")
    result = send(db_url, digest_job)
    assert result == {"provider": "console", "recipients": 3, "sent": 0, "logged": 3, "resumed": 0}
    assert conn.execute(
        "SELECT recipient, outcome FROM digest_deliveries WHERE job_id = %s ORDER BY recipient",
        (digest_job,),
    ).fetchall() == [(r, "logged") for r in sorted(RECIPIENTS)]
    assert conn.execute(
        "SELECT fraction, message FROM job_progress WHERE job_id = %s", (digest_job,)
    ).fetchone() == (1.0, "sent 3 of 3 e-mails")
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "o***@example.com" in logged
    assert not any(address in logged for address in RECIPIENTS)


def test_a_retried_digest_skips_the_recipients_done_before(db_url, conn, digest_job, caplog):
    conn.execute(
        "INSERT INTO digest_deliveries (job_id, recipient, outcome) VALUES (%s, %s, 'logged')",
        (digest_job, RECIPIENTS[1]),
    )
    caplog.set_level(logging.INFO, logger="tasks.mail")
    result = send(db_url, digest_job)
    assert result["resumed"] == 1 and result["logged"] == 3
    logged = [r.getMessage() for r in caplog.records if r.name == "tasks.mail"]
    assert len(logged) == 2 and not any("d***@" in line for line in logged)


def test_a_digest_of_a_deleted_subscription_is_not_sent(db_url, conn, digest_job, caplog):
    caplog.set_level(logging.INFO, logger="tasks.mail")
    result = send(db_url, digest_job, subscription_id=99)
    assert result == {"skipped": "the organization or the subscription is gone"}
    assert not caplog.records
    assert conn.execute("SELECT count(*) FROM digest_deliveries").fetchone()[0] == 0


class SlowEmail:
    """A provider that takes a while per message and notes whom each one went to."""

    name = "slow"
    sender = "digests@example.com"

    def __init__(self):
        self.sent = []

    @contextlib.asynccontextmanager
    async def session(self):
        yield self

    async def send(self, message) -> mail.Outcome:
        await asyncio.sleep(0.3)
        self.sent.append(message["To"])
        return mail.SENT


def test_a_digest_reports_how_many_emails_it_has_sent(
    db_url, conn, digest_job, writes, monkeypatch
):
    provider = SlowEmail()
    monkeypatch.setattr(mail, "email_provider", lambda settings: provider)
    recipients = [f"person{n}@example.com" for n in range(4)]
    assert send(db_url, digest_job, recipients=recipients)["sent"] == 4
    assert provider.sent == recipients
    rows = [(fraction, message) for fraction, message, _ in writes()]
    assert rows[0] == (0.0, "sending 4 e-mails")
    assert rows[-1] == (1.0, "sent 4 of 4 e-mails")
    # 1.2 s of sending: the reports in between reach the database too.
    assert set(rows[1:-1]) & {(0.5, "sent 2 of 4 e-mails"), (0.75, "sent 3 of 4 e-mails")}
