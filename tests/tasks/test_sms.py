"""Sending one SMS as a worker runs it: real PostgreSQL, a fake Telnyx over HTTP."""

import datetime
import threading
import time
import types

import procrastinate
import psycopg
import pytest

from tasks import sms
from tasks.app import app
from tasks.worker import execution
from tests import fake_telnyx
from tests.fake_telnyx import FakeTelnyx
from tests.tasks.conftest import with_pool

TO = "+14155550123"


@pytest.fixture
def telnyx(httpserver, monkeypatch):
    """The fake Telnyx, and the settings that send to it from a number."""
    fake = FakeTelnyx(httpserver)
    settings = {
        "SMS_PROVIDER": "telnyx",
        "TELNYX_API_KEY": fake_telnyx.API_KEY,
        "TELNYX_FROM": fake_telnyx.FROM,
        "TELNYX_BASE_URL": fake.base_url,
        "TELNYX_WEBHOOK_URL": fake_telnyx.WEBHOOK_URL,
        "TELNYX_TIMEOUT": "5",
    }
    for name, value in settings.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("TELNYX_MESSAGING_PROFILE_ID", raising=False)
    return fake


def run_job(db_url, job_id=41, attempts=0, **payload) -> execution.Outcome:
    """Run one attempt of an SMS job as the worker does, on a pool like the worker's."""
    kwargs = {"organization_id": 1, "to": TO, "body": "Your order shipped.", **payload}

    async def go(pool):
        job = procrastinate.jobs.Job(
            id=job_id,
            queue="sms-notifications",
            lock=None,
            queueing_lock=None,
            task_name="sms:send_notification",
            task_kwargs=kwargs,
            attempts=attempts,
        )
        runner = types.SimpleNamespace(tasks=app.tasks, connector=types.SimpleNamespace(pool=pool))
        context = procrastinate.JobContext(
            app=runner, job=job, start_timestamp=time.time(), abort_reason=lambda: None
        )
        return await execution.run(context)

    return with_pool(db_url, go)


def message(conn, job_id=41) -> dict:
    cur = conn.cursor(row_factory=psycopg.rows.dict_row)
    return cur.execute("SELECT * FROM sms_messages WHERE job_id = %s", (job_id,)).fetchone()


def test_a_send_posts_to_telnyx_and_records_the_acceptance(orgs, conn, db_url, telnyx):
    outcome = run_job(db_url, body="Ünïcode costs more: " + "x" * 60)
    assert outcome.status == "succeeded", outcome.error_message
    [request] = telnyx.received
    assert request.headers["Authorization"] == f"Bearer {fake_telnyx.API_KEY}"
    assert request.body == {
        "to": TO,
        "text": "Ünïcode costs more: " + "x" * 60,
        "from": fake_telnyx.FROM,
        "webhook_url": fake_telnyx.WEBHOOK_URL,
    }
    row = message(conn)
    assert (row["organization_id"], row["provider"], row["to_number"]) == (1, "telnyx", TO)
    assert row["status"] == "queued" and row["provider_message_id"]
    assert row["segments"] == 2  # 80 UCS-2 units: two parts of 67
    assert row["accepted_at"] is not None and row["error_code"] is None
    assert '"sent": true' in outcome.result_summary
    assert row["provider_message_id"] in outcome.result_summary


def test_a_messaging_profile_sends_without_a_from_number(orgs, conn, db_url, telnyx, monkeypatch):
    monkeypatch.delenv("TELNYX_FROM")
    monkeypatch.delenv("TELNYX_WEBHOOK_URL")
    monkeypatch.setenv("TELNYX_MESSAGING_PROFILE_ID", fake_telnyx.PROFILE)
    assert run_job(db_url).status == "succeeded"
    assert telnyx.received[0].body == {
        "to": TO,
        "text": "Your order shipped.",
        "messaging_profile_id": fake_telnyx.PROFILE,
    }


def test_an_organization_that_does_not_exist_fails_at_once_and_sends_nothing(conn, db_url, telnyx):
    outcome = run_job(db_url, organization_id=99)
    assert (outcome.status, outcome.error_class, outcome.retry) == (
        "failed",
        "UnknownOrganization",
        None,
    )
    assert outcome.error_message == "organization 99 does not exist; nothing was sent"
    assert telnyx.received == [] and message(conn) is None


def test_an_invalid_number_fails_at_once_with_the_providers_error(orgs, conn, db_url, telnyx):
    telnyx.answer(fake_telnyx.refusal(*fake_telnyx.INVALID_TO))
    outcome = run_job(db_url)
    assert (outcome.status, outcome.error_class, outcome.retry) == (
        "failed",
        "ProviderRefused",
        None,
    )
    assert outcome.error_message == (
        "40310: Invalid 'to' address: The 'to' address should be a valid number."
    )
    row = message(conn)
    assert (row["status"], row["error_code"]) == ("failed", "40310")
    assert (
        row["error_message"] == "Invalid 'to' address: The 'to' address should be a valid number."
    )
    assert row["provider_message_id"] is None and len(telnyx.received) == 1


@pytest.mark.parametrize(
    ("headers", "at_least"),
    [
        ({"Retry-After": "120"}, 120),
        ({"Retry-After": "7.5"}, 7.5),
        ({}, 2),  # no Retry-After: the backoff's own first delay
    ],
)
def test_too_many_requests_is_retried_after_retry_after(
    orgs, conn, db_url, telnyx, headers, at_least
):
    telnyx.answer(fake_telnyx.refusal(*fake_telnyx.TOO_MANY, **headers))
    outcome = run_job(db_url)
    assert (outcome.status, outcome.error_class) == ("failed", "ProviderUnavailable")
    waited = (outcome.retry_at - outcome.finished_at).total_seconds()
    assert at_least - 0.5 <= waited <= at_least + 1
    row = message(conn)
    assert (row["status"], row["error_code"]) == ("pending", "10011")


def test_retry_after_as_an_http_date_is_honoured(orgs, conn, db_url, telnyx):
    when = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=90)
    date = when.strftime("%a, %d %b %Y %H:%M:%S GMT")
    telnyx.answer(fake_telnyx.refusal(*fake_telnyx.TOO_MANY, **{"Retry-After": date}))
    outcome = run_job(db_url)
    waited = (outcome.retry_at - outcome.finished_at).total_seconds()
    assert 88 <= waited <= 91


def test_a_server_error_is_retried_with_backoff_and_a_later_run_sends(orgs, conn, db_url, telnyx):
    telnyx.answer(fake_telnyx.refusal(*fake_telnyx.UNEXPECTED))
    first = run_job(db_url, attempts=2)
    assert first.error_class == "ProviderUnavailable" and first.retry is not None
    assert 7.5 <= (first.retry_at - first.finished_at).total_seconds() <= 9  # 2 * 2**2
    assert (message(conn)["status"], message(conn)["error_code"]) == ("pending", "10007")
    second = run_job(db_url, attempts=3)
    assert second.status == "succeeded"
    row = message(conn)
    assert row["status"] == "queued" and row["error_code"] is None and row["error_message"] is None
    assert len(telnyx.received) == 2


def test_an_answer_that_quotes_the_api_key_is_recorded_with_the_key_masked(
    orgs, conn, db_url, telnyx
):
    # A proxy or a misdirected TELNYX_BASE_URL that echoes the request's headers.
    echoed = f"Authorization: Bearer {fake_telnyx.API_KEY}"
    telnyx.answer(fake_telnyx.refusal(500, fake_telnyx.API_KEY, "boom", echoed))
    outcome = run_job(db_url)
    assert outcome.error_class == "ProviderUnavailable"
    row = message(conn)
    recorded = [outcome.error_message, outcome.traceback, row["error_code"], row["error_message"]]
    assert not [text for text in recorded if text and fake_telnyx.API_KEY in text]
    assert "Authorization: Bearer ***" in outcome.error_message


def test_no_connection_is_retried(orgs, conn, db_url, monkeypatch):
    monkeypatch.setenv("SMS_PROVIDER", "telnyx")
    monkeypatch.setenv("TELNYX_API_KEY", "k")
    monkeypatch.setenv("TELNYX_FROM", fake_telnyx.FROM)
    monkeypatch.setenv("TELNYX_BASE_URL", "http://127.0.0.1:9/v2")  # discard: nobody listens
    outcome = run_job(db_url)
    assert outcome.error_class == "ProviderUnavailable" and outcome.retry is not None
    assert outcome.error_message.startswith("no_connection: ConnectError")
    row = message(conn)
    assert row["status"] == "pending" and row["send_started_at"] is None


def test_the_last_try_ends_the_message_as_failed(orgs, conn, db_url, telnyx):
    telnyx.answer(fake_telnyx.refusal(500, "10007", "Unexpected error", "Try again."))
    outcome = run_job(db_url, attempts=sms.RETRY.max_retries)
    assert (outcome.status, outcome.retry) == ("failed", None)
    assert (message(conn)["status"], message(conn)["error_code"]) == ("failed", "10007")


def slow(seconds: float):
    """An answer that comes after ``seconds``: an acceptance the sender never reads."""

    def answer(body):
        time.sleep(seconds)
        return fake_telnyx.acceptance(body)

    return answer


def test_a_request_without_an_answer_is_never_sent_again(orgs, conn, db_url, telnyx, monkeypatch):
    monkeypatch.setenv("TELNYX_TIMEOUT", "1")
    telnyx.answer(slow(1.5))
    first = run_job(db_url)
    assert (first.status, first.error_class, first.retry) == ("failed", "NoAnswer", None)
    row = message(conn)
    assert row["status"] == "unknown" and row["send_started_at"] is not None
    again = run_job(db_url, attempts=1)  # the job run again all the same (say, by hand)
    assert (again.status, again.error_class) == ("failed", "MaySendTwice")
    assert len(telnyx.received) == 1


def test_a_run_whose_worker_died_mid_request_sends_nothing(orgs, conn, db_url, telnyx):
    # What a worker killed while its request was out leaves behind: a send under way.
    conn.execute(
        "INSERT INTO sms_messages (organization_id, job_id, provider, to_number, segments,"
        " send_started_at) VALUES (1, 41, 'telnyx', %s, 1, now())",
        (TO,),
    )
    outcome = run_job(db_url, attempts=1)
    assert (outcome.status, outcome.error_class, outcome.retry) == ("failed", "MaySendTwice", None)
    assert "may have gone out" in outcome.error_message
    assert telnyx.received == [] and message(conn)["status"] == "unknown"


@pytest.mark.parametrize("earlier_sent", [True, False])
def test_a_retry_of_a_job_whose_message_went_out_sends_nothing(
    orgs, conn, db_url, telnyx, earlier_sent
):
    original, retry = (
        conn.execute(
            "INSERT INTO procrastinate_jobs (queue_name, task_name, args, status)"
            " VALUES ('sms-notifications', 'sms:send_notification', '{}', %s) RETURNING id",
            (status,),
        ).fetchone()[0]
        for status in ("failed", "doing")
    )
    conn.execute(
        "INSERT INTO job_retries (job_id, retry_job_id) VALUES (%s, %s)", (original, retry)
    )
    conn.execute(
        "INSERT INTO sms_messages (organization_id, job_id, provider, to_number, segments,"
        " status, send_started_at) VALUES (1, %s, 'telnyx', %s, 1, %s, now())",
        (original, TO, "unknown" if earlier_sent else "failed"),
    )
    if not earlier_sent:  # refused: the provider answered, so no send was under way
        conn.execute(
            "UPDATE sms_messages SET send_started_at = NULL WHERE job_id = %s", (original,)
        )
    outcome = run_job(db_url, job_id=retry)
    if earlier_sent:
        assert (outcome.status, outcome.error_class) == ("failed", "MaySendTwice")
        assert f"job {original}, which this job retries" in outcome.error_message
        assert telnyx.received == []
    else:
        assert outcome.status == "succeeded" and len(telnyx.received) == 1


def test_a_job_run_again_after_acceptance_does_not_send_again(orgs, conn, db_url, telnyx):
    first = run_job(db_url)
    again = run_job(db_url, attempts=1)
    assert first.status == again.status == "succeeded"
    assert len(telnyx.received) == 1
    assert '"repeat": true' in again.result_summary
    assert message(conn)["provider_message_id"] in again.result_summary


def test_a_retry_after_a_refusal_sends_again(orgs, conn, db_url, telnyx):
    # Refused is not sent: the operator's retry (a new number in a new job, or the same job
    # once the block is lifted) may go out.
    telnyx.answer(fake_telnyx.refusal(403, "40300", "Blocked destination", "Blocked."))
    assert run_job(db_url).retry is None
    assert run_job(db_url, attempts=1).status == "succeeded"
    assert len(telnyx.received) == 2 and message(conn)["status"] == "queued"


def hold_row_lock(db_url, job_id: int, seconds: float):
    """Answer a send after locking the job's message row for ``seconds`` from another
    session: the task's record of the acceptance waits, as through a database blip."""

    def answer(body):
        holder = psycopg.connect(db_url)
        holder.execute("SELECT 1 FROM sms_messages WHERE job_id = %s FOR UPDATE", (job_id,))

        def release():
            holder.rollback()
            holder.close()

        threading.Timer(seconds, release).start()
        return fake_telnyx.acceptance(body)

    return answer


def test_the_acceptance_is_recorded_through_a_short_blip(orgs, conn, db_url, telnyx, caplog):
    telnyx.answer(hold_row_lock(db_url, 41, sms.ACCEPT_TRY_SECONDS + 0.5))
    outcome = run_job(db_url)
    assert outcome.status == "succeeded", outcome.error_message
    assert message(conn)["provider_message_id"] is not None
    assert "SMS acceptance not recorded yet" in caplog.text
    assert run_job(db_url, attempts=1).status == "succeeded"
    assert len(telnyx.received) == 1


def test_an_acceptance_that_cannot_be_recorded_fails_without_a_retry(
    orgs, conn, db_url, telnyx, monkeypatch
):
    monkeypatch.setattr(sms, "ACCEPT_RETRY_WAITS", (0.1,))
    monkeypatch.setattr(sms, "ACCEPT_TRY_SECONDS", 0.3)
    telnyx.answer(hold_row_lock(db_url, 41, 2.0))
    outcome = run_job(db_url)
    assert (outcome.error_class, outcome.retry) == ("AcceptanceNotRecorded", None)
    assert "not retried, so as not to send it twice" in outcome.error_message
    assert len(telnyx.received) == 1


def test_the_console_provider_logs_and_records_without_sending(
    orgs, conn, db_url, monkeypatch, caplog
):
    monkeypatch.setenv("SMS_PROVIDER", "console")
    caplog.set_level("INFO", logger="tasks.sms_providers")
    outcome = run_job(db_url)
    assert outcome.status == "succeeded"
    row = message(conn)
    assert (row["provider"], row["status"]) == ("console", "logged")
    assert row["provider_message_id"].startswith("console-")
    assert '"sent": false' in outcome.result_summary
    assert "to=…0123 chars=19" in caplog.text
    assert TO not in caplog.text and "Your order shipped." not in caplog.text
