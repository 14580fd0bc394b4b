""" "Why is this job not running?": the wording from facts, and each fact read from the
database."""

import datetime

import pytest

from tests.admin.job_rows import add_job, add_worker
from webapp import db
from webapp.admin import diagnosis
from webapp.admin.diagnosis import Facts
from webapp.store import job_detail as job_store

NOW = datetime.datetime(2026, 11, 29, 12, 0, tzinfo=datetime.UTC)
WORKER = {"worker_id": 1, "name": "w1", "concurrency": 2, "running": 0}
QUEUE = "sms-notifications"


def waiting(**overrides) -> dict:
    job = {
        "id": 42,
        "queue_name": QUEUE,
        "priority": 0,
        "lock": None,
        "scheduled_at": None,
        "args": {"organization_id": 1},
    }
    return {**job, **overrides}


def texts(job: dict, facts: Facts) -> list[str]:
    return [reason.text + reason.after for reason in diagnosis.reasons(job, facts, NOW)]


def kinds(job: dict, facts: Facts) -> list[str]:
    return [reason.kind for reason in diagnosis.reasons(job, facts, NOW)]


# The wording, from rows


def test_nothing_holds_it_back():
    assert texts(waiting(), Facts(workers=[WORKER])) == [
        "Nothing holds it back: it should start within moments."
    ]


def test_scheduled_for_later_says_when_and_in_how_long():
    job = waiting(scheduled_at=NOW + datetime.timedelta(minutes=12, seconds=5))
    assert texts(job, Facts(workers=[WORKER])) == [
        "It is scheduled for 2026-11-29 12:12:05 UTC, in 12 min 5 s."
    ]


def test_a_due_time_is_no_reason():
    job = waiting(scheduled_at=NOW - datetime.timedelta(seconds=1))
    assert kinds(job, Facts(workers=[WORKER])) == ["none"]


def test_a_paused_queue_says_since_when_and_by_whom():
    settings = {"paused_at": NOW - datetime.timedelta(hours=2), "paused_by": "ann@example.com"}
    assert texts(waiting(), Facts(settings=settings, workers=[WORKER])) == [
        "Its queue “sms-notifications” is paused, since 2026-11-29 10:00:00 UTC (2 h ago),"
        " by ann@example.com. Workers take none of its jobs until it is resumed."
    ]


@pytest.mark.parametrize(
    ("holder", "after"),
    [
        ({"id": 7, "status": "doing", "scheduled_at": None}, ", which is running."),
        ({"id": 7, "status": "todo", "scheduled_at": None}, ", which waits ahead of it."),
        (
            {"id": 7, "status": "todo", "scheduled_at": NOW},
            ", which waits ahead of it (scheduled for 2026-11-29 12:00:00 UTC).",
        ),
    ],
)
def test_a_lock_names_the_job_holding_it(holder, after):
    (reason,) = diagnosis.reasons(
        waiting(lock="report-7"), Facts(lock_holder=holder, workers=[WORKER]), NOW
    )
    assert (reason.kind, reason.text, reason.job_id, reason.after) == (
        "lock",
        "It waits for the lock “report-7” held by",
        7,
        after,
    )


def test_no_live_worker():
    assert texts(waiting(), Facts(workers=[], stale_seconds=30)) == [
        "No live worker serves the queue “sms-notifications”: none that takes its jobs has"
        " sent a heartbeat in the last 30 s."
    ]


def test_caps_of_the_queue_and_of_the_organization():
    settings = {"max_running": 5, "organization_max_running": 2}
    facts = Facts(settings=settings, workers=[WORKER], running={"queue": 5, "organization": 2})
    assert texts(waiting(), facts) == [
        "The queue “sms-notifications” is at its cap: 5 of 5 jobs it may run at once are running.",
        "Organization 1 is at its cap in “sms-notifications”: 2 of 2 jobs it may run there at"
        " once are running.",
    ]


def test_caps_not_reached_are_no_reason():
    settings = {"max_running": 5, "organization_max_running": 2}
    facts = Facts(settings=settings, workers=[WORKER], running={"queue": 4, "organization": 1})
    assert kinds(waiting(), facts) == ["none"]


def test_every_slot_busy_says_with_what():
    workers = [{**WORKER, "running": 2}, {**WORKER, "worker_id": 2, "concurrency": 1, "running": 1}]
    busy_with = [{"task_name": "sms:send_notification", "running": 2}]
    assert texts(waiting(), Facts(workers=workers, busy_with=busy_with)) == [
        "Every worker slot is busy: the 2 workers serving its queue run 3 jobs in their 3"
        " slots: 2 jobs of sms:send_notification, others."
    ]


def test_a_free_slot_is_no_reason():
    assert kinds(waiting(), Facts(workers=[{**WORKER, "running": 1}])) == ["none"]


@pytest.mark.parametrize(
    ("ahead", "words"),
    [
        ({"ahead": 1, "more": False}, "1 job"),
        ({"ahead": 2_500, "more": False}, "2,500 jobs"),
        ({"ahead": 10_000, "more": True}, "at least 10,000 jobs"),
    ],
)
def test_jobs_ahead_are_counted(ahead, words):
    assert texts(waiting(), Facts(workers=[WORKER], ahead=ahead)) == [
        f"It waits behind {words} of higher priority, or of the same priority and deferred"
        " earlier, in the queue “sms-notifications”."
    ]


def test_every_reason_that_holds_is_given():
    facts = Facts(
        settings={"paused_at": NOW, "paused_by": "ann"},
        lock_holder={"id": 7, "status": "doing", "scheduled_at": None},
        workers=[],
        ahead={"ahead": 3, "more": False},
    )
    job = waiting(lock="x")
    assert kinds(job, facts) == ["paused", "lock", "no_worker", "behind"]


# Each fact, from the database


@pytest.fixture
def diagnose(app, conn):
    """The reasons the page gives for a job, read from the test database."""

    def run(job_id: int, reader_organization: int | None = None) -> list[diagnosis.Reason]:
        with app.app_context():
            job = job_store.get_job(db.get_conn(), job_id, None)
            facts = diagnosis.gather(db.get_conn(), job, 30, reader_organization)
            return diagnosis.reasons(job, facts, datetime.datetime.now(datetime.UTC))

    return run


def kinds_of(reasons) -> list[str]:
    return [reason.kind for reason in reasons]


@pytest.fixture
def worker(conn, orgs):
    return add_worker(conn, queues=[QUEUE], concurrency=4)


@pytest.mark.usefixtures("worker")
def test_db_nothing_holds_it_back(diagnose, conn):
    assert kinds_of(diagnose(add_job(conn))) == ["none"]


@pytest.mark.usefixtures("worker")
def test_db_scheduled(diagnose, conn):
    job_id = add_job(conn, scheduled="2999-01-01T00:00:00Z")
    assert kinds_of(diagnose(job_id)) == ["scheduled"]


@pytest.mark.usefixtures("worker")
def test_db_paused(diagnose, conn):
    conn.execute(
        "INSERT INTO queue_settings (queue_name, paused_at, paused_by)"
        " VALUES (%s, now(), 'ann@example.com')",
        (QUEUE,),
    )
    (reason,) = diagnose(add_job(conn))
    assert reason.kind == "paused" and "by ann@example.com" in reason.text


@pytest.mark.usefixtures("worker")
def test_db_lock_held_by_a_running_job(diagnose, conn):
    holder = add_job(conn, lock="L", status="doing")
    job_id = add_job(conn, lock="L")
    reasons = diagnose(job_id)
    assert [(r.kind, r.job_id) for r in reasons if r.kind == "lock"] == [("lock", holder)]
    assert reasons[0].after == ", which is running."


@pytest.mark.usefixtures("worker")
def test_db_lock_held_by_a_job_waiting_ahead_even_later(diagnose, conn):
    first = add_job(conn, lock="L", scheduled="2999-01-01T00:00:00Z")
    job_id = add_job(conn, lock="L")
    reasons = diagnose(job_id)
    assert [(r.kind, r.job_id) for r in reasons] == [("lock", first)]
    # The first job waits for no lock: the later one is behind it.
    assert "lock" not in kinds_of(diagnose(first))


@pytest.mark.usefixtures("worker")
def test_db_lock_of_a_finished_job_is_no_reason(diagnose, conn):
    add_job(conn, lock="L", status="succeeded")
    assert kinds_of(diagnose(add_job(conn, lock="L"))) == ["none"]


def test_db_no_live_worker(diagnose, conn, orgs):
    add_worker(conn, "silent", queues=[QUEUE], silent=True)
    add_worker(conn, "elsewhere", queues=["email-digests"])
    stopped = add_worker(conn, "stopped", queues=None)
    conn.execute("UPDATE worker_registry SET stopped_at = now() WHERE worker_id = %s", (stopped,))
    assert kinds_of(diagnose(add_job(conn))) == ["no_worker"]


def test_db_a_worker_of_every_queue_serves_it(diagnose, conn, orgs):
    add_worker(conn, "all", queues=None)
    assert kinds_of(diagnose(add_job(conn))) == ["none"]


@pytest.mark.usefixtures("worker")
def test_db_caps(diagnose, conn):
    conn.execute(
        "INSERT INTO queue_settings (queue_name, max_running, organization_max_running)"
        " VALUES (%s, 3, 1)",
        (QUEUE,),
    )
    add_job(conn, status="doing")
    job_id = add_job(conn)
    assert kinds_of(diagnose(job_id)) == ["organization_cap"]
    add_job(conn, organization_id=2, status="doing")
    add_job(conn, organization_id=2, status="doing")
    assert kinds_of(diagnose(job_id)) == ["queue_cap", "organization_cap"]


def test_db_every_slot_busy(diagnose, conn, orgs):
    worker_id = add_worker(conn, queues=None, concurrency=2)
    add_job(conn, status="doing", worker_id=worker_id)
    other_queue = add_job(conn, queue="email-digests", task="email:send_digest", status="doing")
    conn.execute(
        "UPDATE procrastinate_jobs SET worker_id = %s WHERE id = %s", (worker_id, other_queue)
    )
    (reason,) = diagnose(add_job(conn))
    assert reason.kind == "busy"
    assert "1 job of email:send_digest, 1 job of sms:send_notification." in reason.text


def test_db_a_tenant_is_not_told_what_other_tenants_run(diagnose, conn, orgs):
    worker_id = add_worker(conn, queues=None, concurrency=2)
    theirs = add_job(
        conn, organization_id=2, queue="email-digests", task="email:send_digest", status="doing"
    )
    conn.execute("UPDATE procrastinate_jobs SET worker_id = %s WHERE id = %s", (worker_id, theirs))
    add_job(conn, status="doing", worker_id=worker_id)
    (reason,) = diagnose(add_job(conn), reader_organization=1)
    assert "1 job of sms:send_notification, others." in reason.text
    assert "email:send_digest" not in reason.text


@pytest.mark.usefixtures("worker")
def test_db_jobs_ahead(diagnose, conn):
    add_job(conn, priority=5)  # higher priority
    add_job(conn, priority=5, scheduled="2999-01-01T00:00:00Z")  # not due: not ahead
    add_job(conn, priority=0)  # same priority, deferred first
    add_job(conn, priority=9, queue="default", task="diagnostics:noop")  # another queue
    job_id = add_job(conn, priority=0)
    add_job(conn, priority=0)  # behind it
    add_job(conn, priority=-1)  # behind it
    (reason,) = diagnose(job_id)
    assert reason.kind == "behind"
    assert reason.text.startswith("It waits behind 2 jobs of higher priority")


@pytest.mark.usefixtures("worker")
def test_db_jobs_ahead_are_counted_to_a_bound(diagnose, conn, monkeypatch):
    monkeypatch.setattr(diagnosis, "AHEAD_LIMIT", 3)
    for _ in range(5):
        add_job(conn, priority=1)
    (reason,) = diagnose(add_job(conn))
    assert "at least 3 jobs" in reason.text


def test_db_the_page_links_the_lock_holder(sign_in, conn, orgs):
    holder = add_job(conn, lock="L", status="doing")
    job_id = add_job(conn, lock="L")
    page = sign_in("operator").client.get(f"/admin/queues/jobs/{job_id}").get_data(as_text=True)
    assert (
        f'It waits for the lock “L” held by <a href="/admin/queues/jobs/{holder}">job {holder}</a>'
        ", which is running." in page
    )
