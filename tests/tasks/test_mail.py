"""Digests through a real SMTP server on localhost (aiosmtpd): headers, parts, failures."""

import datetime
import email
import email.policy
import email.utils

import procrastinate
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

import tasks.app  # noqa: F401  (the digest task gets its namespace from the App)
from tasks import digests, mail
from tests import processes
from tests.tasks import digest_rows
from tests.tasks.conftest import context_on, with_pool

SENDER = "digests@howdah.example.com"
RECIPIENTS = ["ops@example.com", "dev@example.com", "cto@example.com"]
PUBLIC_URL = "https://howdah.example.com"


class Inbox:
    """An aiosmtpd handler that keeps what it receives and refuses whom it is told to."""

    def __init__(self):
        self.envelopes = []
        self.refuse: dict[str, str] = {}  # address: the reply to its RCPT

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address in self.refuse:
            return self.refuse[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.envelopes.append(envelope)
        return "250 Message accepted for delivery"

    def messages(self) -> list[email.message.EmailMessage]:
        return [
            email.message_from_bytes(e.content, policy=email.policy.default) for e in self.envelopes
        ]


def sign_in(server, session, envelope, mechanism, auth_data):
    """aiosmtpd's authenticator: one user, one password."""
    good = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == (
        b"howdah",
        b"s3cret",
    )
    return AuthResult(success=good, handled=False)  # a refusal gets the usual 535


@pytest.fixture
def smtp(monkeypatch):
    """Start an SMTP server with the given options; the worker's settings point at it."""
    controllers = []

    def start(**options) -> Inbox:
        inbox = Inbox()
        port = processes.free_port()
        controller = Controller(inbox, hostname="127.0.0.1", port=port, **options)
        controller.start()
        controllers.append(controller)
        for name, value in {
            "EMAIL_PROVIDER": "smtp",
            "SMTP_HOST": "127.0.0.1",
            "SMTP_PORT": str(port),
            "SMTP_SECURITY": "none",
            "SMTP_FROM": SENDER,
            "SMTP_TIMEOUT": "5",
            "PUBLIC_URL": PUBLIC_URL,
        }.items():
            monkeypatch.setenv(name, value)
        return inbox

    yield start
    for controller in controllers:
        controller.stop()


@pytest.fixture
def digest_job(conn, orgs):
    """A running digest job's id."""
    return digest_rows.insert_job(conn, 1, "email:send_digest", "doing", "email-digests")


def send(db_url, job_id, recipients=RECIPIENTS):
    async def run(pool):
        context = context_on(pool, job_id, "email:send_digest")
        return await digests.send_digest.func(
            context,
            organization_id=1,
            period="daily",
            recipients=recipients,
            until=digest_rows.UNTIL.isoformat(),
        )

    return with_pool(db_url, run)


def deliveries(conn, job_id) -> dict:
    rows = conn.execute(
        "SELECT recipient, outcome, smtp_code FROM digest_deliveries WHERE job_id = %s",
        (job_id,),
    )
    return {recipient: (outcome, code) for recipient, outcome, code in rows}


def retried(exception: BaseException, attempts: int = 0) -> bool:
    """Whether the digest task's retry strategy would run the job again."""
    job = procrastinate.jobs.Job(
        id=1, queue="email-digests", lock=None, queueing_lock=None,
        task_name="email:send_digest", attempts=attempts,
    )  # fmt: skip
    strategy = digests.send_digest.retry_strategy
    return strategy.get_retry_decision(exception=exception, job=job) is not None


def test_the_digest_reaches_an_smtp_server_one_message_per_recipient(
    db_url, conn, digest_job, smtp
):
    digest_rows.week_of_activity(conn)
    inbox = smtp()
    before = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
    result = send(db_url, digest_job)
    assert result == {"provider": "smtp", "recipients": 3, "sent": 3, "logged": 0, "resumed": 0}
    assert [e.rcpt_tos for e in inbox.envelopes] == [[r] for r in RECIPIENTS]
    assert {e.mail_from for e in inbox.envelopes} == {SENDER}
    messages = inbox.messages()
    assert len({m["Message-ID"] for m in messages}) == 3
    for message, recipient in zip(messages, RECIPIENTS, strict=True):
        assert message["From"] == SENDER
        assert message["To"] == recipient and message["Cc"] is None
        assert message["Subject"] == "Acme: daily digest, 5 SMS sent, 2 jobs failed"
        assert before <= email.utils.parsedate_to_datetime(message["Date"])
        assert message["Message-ID"].endswith("@howdah.example.com>")
        assert message.get_content_type() == "multipart/alternative"
        text, html = message.iter_parts()
        assert (text.get_content_type(), html.get_content_type()) == ("text/plain", "text/html")
        text, html = (part.get_content().replace("\r\n", "\n") for part in (text, html))
        assert "Sent: 5\n  Delivered: 3\n  Failed: 2" in text
        assert "2 jobs failed (4 failed runs, 2 kinds of error)." in text
        assert "2 jobs failed (4 failed runs, 2 kinds of error)." in html
        assert ">5</p>" in html and ">3</p>" in html and ">2</p>" in html
        failures = f"{PUBLIC_URL}/admin/queues/failures?org=1"
        assert f"Failures: {failures}\n" in text and f'href="{failures}"' in html
        assert "&state=failed&task=sms%3Asend_notification&error=" in text
        assert "&amp;state=failed&amp;task=sms%3Asend_notification&amp;error=" in html
    assert deliveries(conn, digest_job) == {r: ("sent", None) for r in RECIPIENTS}


# Signing in without TLS is what a test server on localhost may allow.
NO_TLS = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")


@NO_TLS
def test_the_digest_signs_in_when_a_user_is_set(db_url, conn, digest_job, smtp, monkeypatch):
    inbox = smtp(authenticator=sign_in, auth_required=True, auth_require_tls=False)
    monkeypatch.setenv("SMTP_USER", "howdah")
    monkeypatch.setenv("SMTP_PASSWORD", "s3cret")
    assert send(db_url, digest_job, RECIPIENTS[:1])["sent"] == 1
    assert len(inbox.envelopes) == 1


@NO_TLS
def test_a_refused_sign_in_fails_the_job_for_good(db_url, conn, digest_job, smtp, monkeypatch):
    inbox = smtp(authenticator=sign_in, auth_required=True, auth_require_tls=False)
    monkeypatch.setenv("SMTP_USER", "howdah")
    monkeypatch.setenv("SMTP_PASSWORD", "wrong")
    with pytest.raises(mail.PermanentFailure, match="refused the connection or the sign-in: 535"):
        send(db_url, digest_job)
    assert not retried(mail.PermanentFailure("x"))
    assert inbox.envelopes == [] and deliveries(conn, digest_job) == {}


def test_a_refusal_for_now_is_retried_and_one_for_good_is_not(db_url, conn, digest_job, smtp):
    inbox = smtp()
    ops, dev, cto = RECIPIENTS
    inbox.refuse = {dev: "450 4.2.1 Mailbox busy, try later", cto: "550 5.1.1 No such user"}
    with pytest.raises(mail.TemporaryFailure) as first:
        send(db_url, digest_job)
    assert retried(first.value)
    assert deliveries(conn, digest_job) == {ops: ("sent", None), cto: ("refused", 550)}

    inbox.refuse.pop(dev)  # the mailbox is free again
    with pytest.raises(digests.RecipientsRefused) as second:
        send(db_url, digest_job)
    assert not retried(second.value, attempts=1)
    assert str(second.value) == "the SMTP server refused 1 of 3 recipients for good"
    assert deliveries(conn, digest_job) == {
        ops: ("sent", None),
        dev: ("sent", None),
        cto: ("refused", 550),
    }
    # Run by hand once more: nobody is mailed again, and the refusal still stands.
    with pytest.raises(digests.RecipientsRefused):
        send(db_url, digest_job)
    assert [e.rcpt_tos for e in inbox.envelopes] == [[ops], [dev]]
    assert "example.com" not in f"{first.value} {second.value}"


def test_no_server_is_worth_a_retry(db_url, conn, digest_job, smtp, monkeypatch):
    smtp()
    monkeypatch.setenv("SMTP_PORT", str(processes.free_port()))  # nobody listens there
    with pytest.raises(ConnectionRefusedError) as refused:
        send(db_url, digest_job)
    assert retried(refused.value, attempts=3)
    assert not retried(refused.value, attempts=4)  # max_retries


def test_starttls_that_the_server_does_not_offer_fails_for_good(
    db_url, conn, digest_job, smtp, monkeypatch
):
    inbox = smtp()
    monkeypatch.setenv("SMTP_SECURITY", "starttls")
    with pytest.raises(mail.PermanentFailure, match="does not support"):
        send(db_url, digest_job)
    assert inbox.envelopes == []


def test_an_international_domain_goes_out_in_ascii_and_a_local_part_needing_smtputf8_is_refused(
    db_url, conn, digest_job, smtp
):
    inbox = smtp(enable_SMTPUTF8=False)  # as many servers still do
    recipients = ["first@example.com", "ops@münchen.de", "用户@example.com", "last@example.com"]
    with pytest.raises(digests.RecipientsRefused):
        send(db_url, digest_job, recipients)
    assert [e.rcpt_tos for e in inbox.envelopes] == [
        ["first@example.com"],
        ["ops@xn--mnchen-3ya.de"],
        ["last@example.com"],
    ]
    assert deliveries(conn, digest_job)["用户@example.com"] == ("refused", 553)


def test_a_long_list_stops_while_a_send_still_fits_and_goes_on_in_a_new_run(
    db_url, conn, digest_job, smtp, monkeypatch
):
    inbox = smtp()
    # No room for a send of SMTP_TIMEOUT (5 s here) twice over, and 5 s to spare.
    monkeypatch.setattr(digests, "TIME_LIMIT", 15.0)
    with pytest.raises(digests.TryLater) as stopped:
        send(db_url, digest_job)
    assert retried(stopped.value, attempts=99)  # always goes on, whatever the attempts
    assert inbox.envelopes == []
    monkeypatch.setattr(digests, "TIME_LIMIT", 120.0)
    send(db_url, digest_job)
    assert sorted(r for e in inbox.envelopes for r in e.rcpt_tos) == sorted(RECIPIENTS)
