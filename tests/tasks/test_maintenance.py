"""Housekeeping on a real PostgreSQL: stalled-job recovery, worker pruning and purging."""

import asyncio
import subprocess
import sys
import time
import types

import psycopg
import psycopg_pool
import pytest

from tasks import maintenance
from tests import processes
from webapp.store import maintenance as store

SILENCE = 1.0  # seconds since a job without a worker row started, before it is recovered
TICK = 0.2  # seconds between the tests' recovery runs
MISSED = 2  # ticks a worker must miss in a row to count as dead


def run_task(db_url, task, monkeypatch, **environ) -> dict:
    """Run a housekeeping task's function as any worker would, settings from the environment."""
    for name, value in environ.items():
        monkeypatch.setenv(name, str(value))

    async def go():
        async with psycopg_pool.AsyncConnectionPool(db_url, min_size=1, open=False) as pool:
            context = types.SimpleNamespace(
                app=types.SimpleNamespace(connector=types.SimpleNamespace(pool=pool))
            )
            return await task.func(context, timestamp=0)

    return asyncio.run(go())


async def arun(db_url, statement, *args):
    async with await psycopg.AsyncConnection.connect(db_url, autocommit=True) as aconn:
        return await statement(aconn, *args)


@pytest.fixture
def worker(conn):
    """Register a worker named ``name``; ``silent`` ages its heartbeat by an hour."""

    def make(name: str, silent: bool) -> int:
        worker_id = conn.execute("SELECT procrastinate_register_worker_v1()").fetchone()[0]
        conn.execute(
            "INSERT INTO worker_registry (worker_id, name, concurrency) VALUES (%s, %s, 1)",
            (worker_id, name),
        )
        if silent:
            conn.execute(
                "UPDATE procrastinate_workers SET last_heartbeat = now() - interval '1 hour'"
                " WHERE id = %s",
                (worker_id,),
            )
        return worker_id

    return make


@pytest.fixture
def running_job(conn):
    """A job running on ``worker_id`` (attempts as given), optionally with an abort request."""

    def make(worker_id: int | None, attempts: int = 0, abort: bool = False) -> int:
        job_id = conn.execute(
            "INSERT INTO procrastinate_jobs (queue_name, task_name, args)"
            " VALUES ('default', 'diagnostics:noop', '{\"organization_id\": 1}') RETURNING id"
        ).fetchone()[0]
        conn.execute(
            "UPDATE procrastinate_jobs SET status = 'doing', worker_id = %s, attempts = %s,"
            " abort_requested = %s WHERE id = %s",
            (worker_id, attempts, abort, job_id),
        )
        return job_id

    return make


def record(conn, job_id, attempt, outcome, retry_at=None):
    conn.execute(
        "INSERT INTO job_attempts (job_id, attempt, worker_name, outcome, started_at,"
        " finished_at, retry_at) VALUES (%s, %s, 'w-old', %s, now(), now(), %s)",
        (job_id, attempt, outcome, retry_at),
    )


def state(conn, job_id):
    return conn.execute(
        "SELECT status::text, attempts, abort_requested FROM procrastinate_jobs WHERE id = %s",
        (job_id,),
    ).fetchone()


def outcomes(conn, job_id):
    return conn.execute(
        "SELECT attempt, worker_name, outcome FROM job_attempts WHERE job_id = %s ORDER BY 1",
        (job_id,),
    ).fetchall()


def recover(db_url, conn, max_lost=5, live=()):
    """Run recovery for three ticks, the ``live`` workers beating between them; what the
    runs did. The silent workers miss two ticks in a row, enough to count as dead."""
    done = []
    for _ in range(3):
        for worker_id in live:
            conn.execute("SELECT procrastinate_update_heartbeat_v1(%s)", (worker_id,))
        time.sleep(TICK)
        done += asyncio.run(
            arun(db_url, store.recover_stalled_jobs, MISSED, SILENCE, max_lost, TICK)
        )
    return done


def test_a_recorded_success_is_applied_even_when_an_abort_was_requested(
    db_url, conn, worker, running_job
):
    job_id = running_job(worker("w-old", silent=True), abort=True)
    record(conn, job_id, 1, "succeeded")
    assert recover(db_url, conn) == [
        {"job_id": job_id, "worker_name": "w-old", "action": "applied recorded succeeded"}
    ]
    assert state(conn, job_id) == ("succeeded", 1, False)
    assert outcomes(conn, job_id) == [(1, "w-old", "succeeded")]


def test_a_recorded_failure_with_a_retry_goes_back_to_wait_for_it(
    db_url, conn, worker, running_job
):
    job_id = running_job(worker("w-old", silent=True), attempts=2)
    when = conn.execute("SELECT now() + interval '1 minute'").fetchone()[0]
    record(conn, job_id, 3, "failed", retry_at=when)
    assert recover(db_url, conn)[0]["action"] == "applied recorded retry"
    assert state(conn, job_id) == ("todo", 3, False)
    scheduled = conn.execute(
        "SELECT scheduled_at FROM procrastinate_jobs WHERE id = %s", (job_id,)
    ).fetchone()[0]
    assert scheduled == when


def test_an_unrecorded_run_is_lost_and_retried_naming_its_worker(db_url, conn, worker, running_job):
    job_id = running_job(worker("billing-worker-7", silent=True))
    assert recover(db_url, conn) == [
        {"job_id": job_id, "worker_name": "billing-worker-7", "action": "retried"}
    ]
    assert state(conn, job_id) == ("todo", 1, False)
    assert outcomes(conn, job_id) == [(1, "billing-worker-7", "lost")]


def test_an_unrecorded_run_with_an_abort_request_ends_aborted(db_url, conn, worker, running_job):
    job_id = running_job(worker("w", silent=True), abort=True)
    assert recover(db_url, conn)[0]["action"] == "aborted"
    assert state(conn, job_id) == ("aborted", 1, False)


def test_a_job_that_lost_too_many_runs_fails(db_url, conn, worker, running_job):
    job_id = running_job(worker("w", silent=True), attempts=1)
    record(conn, job_id, 1, "lost")
    assert recover(db_url, conn, max_lost=2)[0]["action"] == "failed"
    assert state(conn, job_id)[0] == "failed"
    assert [o for _, _, o in outcomes(conn, job_id)] == ["lost", "lost"]


def test_live_workers_keep_their_jobs_and_orphans_are_recovered(db_url, conn, worker, running_job):
    live_worker = worker("live", silent=False)
    live = running_job(live_worker)
    orphan = running_job(None)
    just_started = running_job(None)  # its worker may still re-claim it
    conn.execute(
        "UPDATE procrastinate_events SET at = now() - interval '1 hour' WHERE job_id = %s",
        (orphan,),
    )
    assert recover(db_url, conn, live=[live_worker]) == [
        {"job_id": orphan, "worker_name": "an unknown worker", "action": "retried"}
    ]
    assert state(conn, live)[0] == state(conn, just_started)[0] == "doing"


def test_silence_while_the_database_was_away_proves_nothing(db_url, conn, worker, running_job):
    # Every heartbeat is an hour old, as after a long outage; but the watch had no tick
    # in that hour, so the first tick after it counts once, and the workers beat again.
    silent = worker("back-after-the-outage", silent=True)
    job_id = running_job(silent)
    asyncio.run(arun(db_url, store.recover_stalled_jobs, MISSED, SILENCE, 5, TICK))
    conn.execute(
        "UPDATE recovery_ticks SET last_tick_at = now() - interval '1 hour';"
        " UPDATE worker_watch SET missed_ticks = 0"
    )
    time.sleep(TICK)
    assert asyncio.run(arun(db_url, store.recover_stalled_jobs, MISSED, SILENCE, 5, TICK)) == []
    conn.execute("SELECT procrastinate_update_heartbeat_v1(%s)", (silent,))
    assert recover(db_url, conn, live=[silent]) == []
    assert state(conn, job_id)[0] == "doing"


def test_runs_queued_up_back_to_back_count_as_one_tick(db_url, conn, worker, running_job):
    job_id = running_job(worker("w", silent=True))
    for _ in range(5):
        asyncio.run(arun(db_url, store.recover_stalled_jobs, MISSED, SILENCE, 5, 60.0))
    missed = conn.execute("SELECT missed_ticks FROM worker_watch").fetchone()[0]
    assert missed == 0
    assert state(conn, job_id)[0] == "doing"


def test_silent_workers_are_pruned_once_their_jobs_are_recovered(db_url, conn, worker, running_job):
    silent, live = worker("silent", silent=True), worker("live", silent=False)
    running_job(silent)
    recover(db_url, conn, live=[live])  # ... and its job recovered
    assert asyncio.run(arun(db_url, store.prune_silent_workers, MISSED)) == 1
    left = [row[0] for row in conn.execute("SELECT id FROM procrastinate_workers")]
    assert left == [live]


def test_the_task_reads_its_settings_from_the_environment(
    db_url, conn, worker, running_job, monkeypatch
):
    job_id = running_job(worker("gone", silent=True))
    # As the watch stands after the worker missed three ticks.
    conn.execute(
        "INSERT INTO recovery_ticks VALUES (true, now() - interval '1 minute');"
        " INSERT INTO worker_watch SELECT id, last_heartbeat, 3 FROM procrastinate_workers"
    )
    result = run_task(
        db_url,
        maintenance.retry_stalled_jobs,
        monkeypatch,
        WORKER_STALLED_AFTER=30,
        LOST_JOB_MAX_ATTEMPTS=1,
    )
    assert result == {
        "recovered": [{"job_id": job_id, "worker_name": "gone", "action": "failed"}],
        "pruned_workers": 1,
    }


def test_a_worker_is_dead_after_missing_its_stalled_time_in_ticks():
    assert [maintenance.missed_ticks(s) for s in (15, 20, 30, 31, 600)] == [2, 2, 3, 4, 60]


@pytest.fixture
def finished_job(conn):
    """Insert a job in ``status`` whose events happened ``age`` ago, with an attempt record."""

    def make(status: str, age: str, queue: str = "default") -> int:
        job_id = conn.execute(
            "INSERT INTO procrastinate_jobs (queue_name, task_name, args)"
            " VALUES (%s, 'diagnostics:noop', '{\"organization_id\": 1}') RETURNING id",
            (queue,),
        ).fetchone()[0]
        conn.execute(
            "UPDATE procrastinate_jobs SET status = %s::procrastinate_job_status WHERE id = %s",
            (status, job_id),
        )
        conn.execute(
            "UPDATE procrastinate_events SET at = now() - %s::interval WHERE job_id = %s",
            (age, job_id),
        )
        record(conn, job_id, 1, "succeeded")
        return job_id

    return make


def test_purge_deletes_old_finished_jobs_their_attempts_and_old_housekeeping_runs(
    db_url, conn, finished_job, monkeypatch
):
    old_done = [finished_job(s, "8 days") for s in ("succeeded", "failed", "cancelled", "aborted")]
    recent = finished_job("succeeded", "1 day")
    old_waiting = finished_job("todo", "30 days")
    housekeeping_old = finished_job("succeeded", "25 hours", queue="housekeeping")
    housekeeping_new = finished_job("succeeded", "1 hour", queue="housekeeping")
    # The attempt counts of /metrics from hours ago are folded into their totals.
    conn.execute("UPDATE attempt_counts SET hour = hour - interval '2 hours'")
    hourly = conn.execute("SELECT count(*), sum(attempts) FROM attempt_counts").fetchone()
    assert hourly[0] > 0

    result = run_task(db_url, maintenance.purge_finished_jobs, monkeypatch, JOB_RETENTION_DAYS=7)

    assert conn.execute(
        "SELECT count(*) FILTER (WHERE hour = '-infinity'), sum(attempts) FROM attempt_counts"
    ).fetchone() == (conn.execute("SELECT count(*) FROM attempt_counts").fetchone()[0], hourly[1])
    assert result == {
        "deleted": 5,
        "attempt_counts_folded": hourly[0],
        "worker_records_deleted": 0,
        "sign_in_records_deleted": 0,
        "sms_records_deleted": 0,
    }
    left = {row[0] for row in conn.execute("SELECT id FROM procrastinate_jobs")}
    assert left == {recent, old_waiting, housekeeping_new}
    attempts = {row[0] for row in conn.execute("SELECT job_id FROM job_attempts")}
    assert attempts == left
    assert not {*old_done, housekeeping_old} & attempts


def test_purge_deletes_old_failed_sign_ins_and_ended_sessions(db_url, conn, monkeypatch):
    conn.execute(
        "INSERT INTO audit_log (actor_type, action, target_id, at) VALUES"
        " ('anonymous', 'login.failed', 'old@x.example', now() - interval '31 days'),"
        " ('anonymous', 'login.failed', 'new@x.example', now() - interval '29 days'),"
        " ('cli', 'user.create', 'old@x.example', now() - interval '400 days')"
    )
    conn.execute("INSERT INTO users (email, password_hash) VALUES ('a@x.example', 'x')")
    conn.execute(
        "INSERT INTO user_sessions (id_hash, user_id, expires_at, revoked_at)"
        " SELECT h, (SELECT id FROM users), e, r FROM (VALUES"
        "  ('expired', now() - interval '31 days', NULL::timestamptz),"
        "  ('revoked', now() + interval '1 day', now() - interval '31 days'),"
        "  ('live', now() + interval '1 day', NULL),"
        "  ('lately', now() - interval '1 day', NULL)) AS s(h, e, r)"
    )
    result = run_task(
        db_url, maintenance.purge_finished_jobs, monkeypatch, SIGN_IN_RETENTION_DAYS=30
    )
    assert result["sign_in_records_deleted"] == 3
    left = conn.execute("SELECT action, target_id FROM audit_log ORDER BY id").fetchall()
    assert left == [("login.failed", "new@x.example"), ("user.create", "old@x.example")]
    sessions = {row[0] for row in conn.execute("SELECT id_hash FROM user_sessions")}
    assert sessions == {"live", "lately"}


def test_purge_forgets_run_counts_older_than_a_week(db_url, conn, monkeypatch):
    conn.execute(
        "INSERT INTO job_minutes (minute, queue_name, organization, finished, failed) VALUES"
        " (date_trunc('minute', now() - interval '8 days'), 'default', '1', 5, 1),"
        " (date_trunc('minute', now() - interval '6 days'), 'default', '1', 7, 0)"
    )
    run_task(db_url, maintenance.purge_finished_jobs, monkeypatch, JOB_RETENTION_DAYS=7)
    assert conn.execute("SELECT finished FROM job_minutes").fetchall() == [(7,)]


def test_finished_jobs_are_counted_by_queue_organization_and_state(
    db_url, conn, finished_job, monkeypatch
):
    for status in ("succeeded", "succeeded", "failed", "cancelled"):
        finished_job(status, "1 hour")
    finished_job("succeeded", "1 hour", queue="housekeeping")
    finished_job("todo", "1 hour")  # waiting jobs are counted live, not here
    conn.execute(  # a state no job is in any more is dropped
        "INSERT INTO job_state_counts"
        " VALUES ('default', '1', 'aborted', 3, now() - interval '1 minute')"
    )
    run_task(db_url, maintenance.count_finished_jobs, monkeypatch)
    rows = conn.execute(
        "SELECT queue_name, organization, status, jobs FROM job_state_counts ORDER BY 1, 3"
    ).fetchall()
    assert rows == [
        ("default", "1", "cancelled", 1),
        ("default", "1", "failed", 1),
        ("default", "1", "succeeded", 2),
        ("housekeeping", "1", "succeeded", 1),
    ]


def test_purge_keeps_a_job_with_any_recent_event(db_url, conn, finished_job, monkeypatch):
    job_id = finished_job("failed", "10 days")
    conn.execute(
        "INSERT INTO procrastinate_events (job_id, type) VALUES (%s, 'retried')", (job_id,)
    )
    result = run_task(db_url, maintenance.purge_finished_jobs, monkeypatch, JOB_RETENTION_DAYS=7)
    assert result["deleted"] == 0


def test_housekeeping_runs_on_its_own_queue_above_every_client_priority():
    tasks = (
        maintenance.retry_stalled_jobs,
        maintenance.purge_finished_jobs,
        maintenance.count_finished_jobs,
    )
    for task in tasks:
        assert task.queue == "housekeeping"
        assert task.priority > 100


@pytest.mark.e2e
def test_procrastinate_s_own_worker_runs_housekeeping(db_url, conn):
    """No reliance on Howdah's worker: the tasks read everything they need themselves."""
    params = psycopg.conninfo.conninfo_to_dict(db_url)
    names = {"host": "PGHOST", "port": "PGPORT", "user": "PGUSER", "dbname": "PGDATABASE"}
    libpq = {names[key]: str(value) for key, value in params.items() if key in names}
    tasks = ("retry_stalled_jobs", "purge_finished_jobs", "count_finished_jobs")
    for task in [*(f"maintenance:{task}" for task in tasks), "email:schedule_digests"]:
        conn.execute(  # as the periodic deferrer does
            "INSERT INTO procrastinate_jobs (queue_name, task_name, args)"
            " VALUES ('housekeeping', %s, '{\"timestamp\": 0}')",
            (task,),
        )
    command = ["procrastinate", "--app", "tasks.app.app", "worker", "-q", "housekeeping"]
    result = subprocess.run(
        [sys.executable, "-m", *command, "--one-shot"],
        env=processes.process_env(**libpq),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    rows = conn.execute(
        "SELECT DISTINCT task_name, status::text FROM procrastinate_jobs ORDER BY task_name"
    ).fetchall()
    assert rows == [
        ("email:schedule_digests", "succeeded"),
        ("maintenance:count_finished_jobs", "succeeded"),
        ("maintenance:purge_finished_jobs", "succeeded"),
        ("maintenance:retry_stalled_jobs", "succeeded"),
    ]


def test_a_retry_whose_idempotency_key_is_taken_waits_without_it(db_url, conn, worker, running_job):
    job_id = running_job(worker("w", silent=True))
    conn.execute("UPDATE procrastinate_jobs SET queueing_lock = 'org:1:k' WHERE id = %s", (job_id,))
    newer = conn.execute(  # deferred with the same key while the first one ran
        "INSERT INTO procrastinate_jobs (queue_name, task_name, args, queueing_lock)"
        " VALUES ('default', 'diagnostics:noop', '{}', 'org:1:k') RETURNING id"
    ).fetchone()[0]
    assert recover(db_url, conn)[0]["action"] == "retried"
    locks = dict(conn.execute("SELECT id, queueing_lock FROM procrastinate_jobs").fetchall())
    assert locks == {job_id: None, newer: "org:1:k"}
    assert state(conn, job_id)[0] == "todo"


def test_a_job_that_cannot_be_recovered_does_not_hold_up_the_others(
    db_url, conn, worker, running_job
):
    silent = worker("w", silent=True)
    broken = running_job(silent, attempts=2**31 - 1)  # attempts + 1 is out of range
    fine = running_job(silent)
    actions = {row["job_id"]: row["action"] for row in recover(db_url, conn)}
    assert actions[fine] == "retried"
    assert actions[broken].startswith("failed: integer out of range")
    assert state(conn, broken)[0] == "failed"


def test_purge_deletes_sms_records_past_their_retention(db_url, conn, orgs, monkeypatch):
    conn.execute(
        "INSERT INTO sms_messages (organization_id, job_id, provider, to_number, segments,"
        " status, created_at) VALUES"
        " (1, 901, 'console', '+14155550123', 1, 'logged', now() - interval '31 days'),"
        " (1, 902, 'console', '+14155550123', 1, 'logged', now() - interval '29 days')"
    )
    result = run_task(db_url, maintenance.purge_finished_jobs, monkeypatch, SMS_RETENTION_DAYS=30)
    assert result["sms_records_deleted"] == 1
    assert conn.execute("SELECT job_id FROM sms_messages").fetchall() == [(902,)]
