"""SMS end to end: real gunicorn and worker processes sending to a fake Telnyx."""

import itertools
import math
import signal
import time

import psycopg
import pytest

from tests import fake_telnyx
from tests.fake_telnyx import FakeTelnyx
from tests.test_worker_e2e import Service

pytestmark = pytest.mark.e2e

TASK = "sms:send_notification"


@pytest.fixture
def telnyx(httpserver):
    return FakeTelnyx(httpserver)


@pytest.fixture
def service(db_url, tmp_path, make_token, telnyx):
    """The web process, and workers (started by the test) that send SMS to the fake."""
    running = Service(db_url, tmp_path, make_token(None))
    running.env.update(
        SMS_PROVIDER="telnyx",
        TELNYX_API_KEY=fake_telnyx.API_KEY,
        TELNYX_FROM=fake_telnyx.FROM,
        TELNYX_BASE_URL=telnyx.base_url,
        TELNYX_TIMEOUT="5",
        ORG_MAX_RUNNING="5",  # the default: an organization's backlog leaves room for others
    )
    yield running
    running.stop()


def number(i: int) -> str:
    return f"+1415555{i:04d}"


def send(service, organization_id: int, to: str, body: str = "hello") -> int:
    return service.defer(TASK, organization_id=organization_id, to=to, body=body)


def attempts(conn, job_id: int) -> list[tuple]:
    return conn.execute(
        "SELECT outcome, error_class, error_message, finished_at, retry_at FROM job_attempts"
        " WHERE job_id = %s ORDER BY attempt",
        (job_id,),
    ).fetchall()


def message(conn, job_id: int) -> tuple:
    return conn.execute(
        "SELECT status, error_code, error_message, provider_message_id FROM sms_messages"
        " WHERE job_id = %s",
        (job_id,),
    ).fetchone()


def wait_until(condition, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while not (result := condition()):
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)
    return result


def test_server_errors_and_429_are_retried_after_retry_after_then_sent(service, conn, telnyx):
    telnyx.answer(
        fake_telnyx.refusal(*fake_telnyx.UNEXPECTED),
        fake_telnyx.refusal(*fake_telnyx.TOO_MANY, **{"Retry-After": "3"}),
    )
    service.start_worker()
    job_id = send(service, 1, "+1 (415) 555-0123", "Your code is 1234")
    service.wait_status(job_id, "succeeded", timeout=60)
    first, second, third = wait_until(lambda: len(runs := attempts(conn, job_id)) == 3 and runs)
    assert first[:3] == (
        "failed",
        "ProviderUnavailable",
        "10007: Unexpected error: An unexpected error occured.",
    )
    assert 1.5 <= (first[4] - first[3]).total_seconds() <= 3  # the backoff's first delay: 2 s
    assert second[:3] == (
        "failed",
        "ProviderUnavailable",
        "10011: Too many requests: You have exceeded the allowed requests.",
    )
    assert (second[4] - second[3]).total_seconds() >= 3  # Retry-After: 3, above the backoff
    assert third[:2] == ("succeeded", None)
    requests = telnyx.wait_for(3)
    assert requests[2].at - requests[1].at >= 3  # the retry waited as it was told
    for request in requests:
        assert request.headers["Authorization"] == f"Bearer {fake_telnyx.API_KEY}"
        assert request.body == {
            "to": "+14155550123",
            "text": "Your code is 1234",
            "from": fake_telnyx.FROM,
        }
    status, code, error, message_id = message(conn, job_id)
    assert (status, code, error) == ("queued", None, None) and message_id


def test_an_invalid_number_fails_at_once_with_the_providers_error(service, conn, telnyx):
    telnyx.answer(fake_telnyx.refusal(*fake_telnyx.INVALID_TO))
    service.start_worker()
    job_id = send(service, 1, "+14155550123")
    job = service.wait_status(job_id, "failed", timeout=30)
    assert job["attempts"] == 1
    [run] = wait_until(lambda: attempts(conn, job_id))
    assert run[:3] == (
        "failed",
        "ProviderRefused",
        "40310: Invalid 'to' address: The 'to' address should be a valid number.",
    )
    assert run[4] is None  # no retry
    assert message(conn, job_id)[:3] == (
        "failed",
        "40310",
        "Invalid 'to' address: The 'to' address should be a valid number.",
    )
    assert len(telnyx.received) == 1


def test_a_job_run_again_after_acceptance_does_not_send_twice(service, conn, telnyx, db_url):
    # The worker is killed after Telnyx accepted the message and the acceptance was
    # recorded, but before the run's outcome was (a lock holds job_attempts): stalled-job
    # recovery runs the job again, and that run finds the acceptance and sends nothing.
    holder = psycopg.connect(db_url)
    holder.execute("LOCK TABLE job_attempts IN EXCLUSIVE MODE")
    first = service.start_worker()
    job_id = send(service, 1, "+14155550123")
    wait_until(lambda: message(conn, job_id) and message(conn, job_id)[3])
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=10)
    holder.rollback()
    holder.close()

    service.start_worker()
    job = service.wait_status(job_id, "succeeded", timeout=90)
    assert job["attempts"] == 2
    runs = wait_until(lambda: len(found := attempts(conn, job_id)) == 2 and found)
    assert [run[0] for run in runs] == ["lost", "succeeded"]
    assert len(telnyx.received) == 1
    assert message(conn, job_id)[0] == "queued"


LATE = 0.5  # seconds a send may leave after its slot on a loaded machine


def busiest_second(arrivals: list[float]) -> int:
    """The most arrivals in any closed window of one second (one starting at an arrival
    holds as many as any)."""
    return max(sum(1 for b in arrivals if a <= b <= a + 1.0) for a in arrivals)


def test_the_rate_limit_holds_across_two_workers_and_spares_other_organizations(
    service, conn, telnyx
):
    # A third of a second between slots: arrivals trail their slots by the send's own
    # latency, which varies by far less on a busy machine.
    rate, backlog, others = 3, 18, 5
    conn.execute("UPDATE organizations SET sms_per_second = %s WHERE id = 1", (rate,))
    for _ in range(2):
        service.start_worker()
    jobs = [
        {"task": TASK, "payload": {"organization_id": org, "to": number(i), "body": f"m{i}"}}
        for org, i in itertools.chain(
            ((1, i) for i in range(backlog)), ((2, i) for i in range(100, 100 + others))
        )
    ]
    response = service.http.post(f"{service.base}/jobs/batch", json={"jobs": jobs}, timeout=10)
    assert response.status_code == 202, response.text

    received = telnyx.wait_for(backlog + others, timeout=60)
    wait_until(
        lambda: (
            conn.execute(
                "SELECT count(*) FROM procrastinate_jobs"
                " WHERE task_name = %s AND status = 'succeeded'",
                (TASK,),
            ).fetchone()[0]
            == backlog + others
        )
    )
    # Every message went out exactly once: none dropped, none sent twice.
    assert sorted(r.body["text"] for r in telnyx.received) == sorted(
        j["payload"]["body"] for j in jobs
    )
    first = [r.at for r in received if r.body["to"] < number(100)]
    second = [r.at for r in received if r.body["to"] >= number(100)]
    # Slots are 1/rate apart, so a closed one-second window holds rate + 1 of them (one at
    # each end). Arrivals trail their slots by each send's latency, up to LATE seconds on
    # a loaded machine (a send due at its slot may leave late, the next one on time), so
    # a window of arrivals may hold rate * LATE more. Sends that shared slots would all
    # arrive at once: the 18 would crowd into one window.
    spacing = [round(b - a, 3) for a, b in itertools.pairwise(sorted(first))]
    assert busiest_second(first) <= rate + 1 + math.ceil(rate * LATE), spacing
    # Paced, not bunched: the backlog took its slots' time, less a first send that left
    # late (a bunched backlog would span next to nothing).
    assert max(first) - min(first) >= (backlog - 1) / rate - LATE, spacing
    # The other organization (10 a second) went out while the backlog still waited.
    assert max(second) < max(first) - 2.0, (max(second) - min(first), max(first) - min(first))
    states = conn.execute(
        "SELECT count(*) FILTER (WHERE status = 'queued'), count(DISTINCT provider_message_id)"
        " FROM sms_messages"
    ).fetchone()
    assert states == (backlog + others, backlog + others)
