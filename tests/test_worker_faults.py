"""Worker processes against a PostgreSQL server the test restarts, stops, cuts and locks.

After each fault every job ends exactly once (one end event, one attempt record), no
job is left ``doing``, and every worker process is alive and takes jobs again.
"""

import json
import re
import signal
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest

from tests import processes
from tests.conftest import bearer
from webapp import accounts
from webapp.store import accounts as account_store

# These tests stop, restart and starve PostgreSQL and run many processes each; make test
# runs a file's tests on one xdist worker (--dist loadfile), so they run one after
# another and their timings are not also each other's load.
pytestmark = pytest.mark.e2e

NOOP = '{"organization_id": 1}'


class Cluster:
    """Worker processes on a migrated database of the test's own server."""

    def __init__(self, server, logs):
        self.server, self.logs = server, logs
        self.url = server.migrated_database()
        self.workers: list = []

    def connect(self) -> psycopg.Connection:
        return psycopg.connect(self.url, autocommit=True)

    def start_worker(self, *args: str, **settings: str):
        defaults = {"WORKER_STALLED_AFTER": "15", "WORKER_SHUTDOWN_TIMEOUT": "5"}
        defaults["ORG_MAX_RUNNING"] = "0"  # no cap unless a test sets one
        env = processes.process_env(DATABASE_URL=self.url, **{**defaults, **settings})
        name = f"worker{len(self.workers)}"
        process = processes.start_worker(env, self.logs / f"{name}.log", "--name", name, *args)
        self.workers.append(process)
        with self.connect() as conn:
            wait_until(
                lambda: conn.execute(
                    "SELECT count(*) FROM worker_registry WHERE name = %s", (name,)
                ).fetchone()[0],
                30,
                f"{name} to register",
            )
        return process

    def add_jobs(self, count: int, task="diagnostics:noop", args=NOOP, priority=0, queue="default"):
        """Insert ``count`` jobs directly, as any program writing to the queue could."""
        with self.connect() as conn:
            rows = conn.execute(
                "INSERT INTO procrastinate_jobs (queue_name, task_name, priority, args)"
                " SELECT %s, %s, %s, %s::jsonb FROM generate_series(1, %s) RETURNING id",
                (queue, task, priority, args, count),
            ).fetchall()
        return [row[0] for row in rows]

    def count(self, ids, status="succeeded") -> int:
        with self.connect() as conn:
            return conn.execute(
                "SELECT count(*) FROM procrastinate_jobs WHERE id = ANY(%s) AND status = %s",
                (ids, status),
            ).fetchone()[0]

    def wait_done(self, ids, timeout=120, status="succeeded"):
        wait_until(lambda: self.count(ids, status) == len(ids), timeout, f"{len(ids)} jobs")

    def log(self, index: int) -> str:
        return (self.logs / f"worker{index}.log").read_text()

    def stop(self):
        codes = [processes.stop(worker, timeout=60) for worker in self.workers]
        self.workers = []
        return codes


def wait_until(predicate, timeout: float, what: str, every: float = 0.1):
    deadline = time.monotonic() + timeout
    while not (result := predicate()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(every)
    return result


@pytest.fixture
def cluster(own_server, tmp_path):
    running = Cluster(own_server, tmp_path)
    yield running
    own_server.start()
    running.stop()


def assert_each_ended_once(cluster, ids, status="succeeded"):
    with cluster.connect() as conn:
        rows = conn.execute(
            """
            SELECT j.status::text,
                   (SELECT count(*) FROM job_attempts a WHERE a.job_id = j.id),
                   (SELECT count(*) FROM procrastinate_events e WHERE e.job_id = j.id
                     AND e.type IN ('succeeded', 'failed', 'aborted', 'cancelled'))
            FROM procrastinate_jobs j WHERE j.id = ANY(%s)
            """,
            (ids,),
        ).fetchall()
    assert len(rows) == len(ids)
    assert {row for row in rows} == {(status, 1, 1)}, "a job ran or ended more than once"
    assert_none_left_doing(cluster)


def assert_none_left_doing(cluster, timeout=30):
    """No job stays ``doing``: a housekeeping run that is under way may end first."""

    def running():
        with cluster.connect() as conn:
            return conn.execute(
                "SELECT id, task_name FROM procrastinate_jobs WHERE status = 'doing'"
            ).fetchall()

    deadline = time.monotonic() + timeout
    while left := running():
        assert time.monotonic() < deadline, f"jobs left doing: {left}"
        time.sleep(0.2)


def healthy(cluster, index: int) -> bool:
    """Whether a worker's log says the database is there (every outage it saw ended)."""
    log = cluster.log(index)
    return log.count("database unavailable") == log.count("database available again")


def assert_alive_and_working(cluster):
    """Every worker is alive, and once each says the database is back, each takes a share
    of a new batch of jobs."""
    assert [worker.poll() for worker in cluster.workers] == [None] * len(cluster.workers)
    for index in range(len(cluster.workers)):
        wait_until(lambda index=index: healthy(cluster, index), 30, f"worker{index} to recover")
    # Four rounds of short jobs for every slot: a worker the machine's load slows down
    # still has a few seconds to take its share before the others drain them all.
    slots = 10 * len(cluster.workers)
    ids = cluster.add_jobs(4 * slots, task="diagnostics:sleep", args=json.dumps(SLEEP_HALF_SECOND))
    cluster.wait_done(ids, timeout=60)
    with cluster.connect() as conn:
        names = conn.execute(
            "SELECT count(DISTINCT worker_name) FROM job_attempts WHERE job_id = ANY(%s)", (ids,)
        ).fetchone()[0]
    assert names == len(cluster.workers)


SLEEP_HALF_SECOND = {"organization_id": 1, "seconds": 0.5}


def assert_one_outage_reported(cluster, index):
    """One line when the database went away, one when it was back (every part is)."""
    wait_until(lambda: "database available again" in cluster.log(index), 15, "the back line")
    log = cluster.log(index)
    assert log.count("database unavailable") == 1, log
    assert log.count("database available again") == 1, log


def cpu_seconds(process) -> float:
    fields = Path(f"/proc/{process.pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / 100  # utime + stime, in clock ticks


def test_restart_while_two_workers_drain_two_thousand_jobs(cluster, own_server):
    for _ in range(2):
        cluster.start_worker()
    ids = cluster.add_jobs(2000)
    wait_until(lambda: cluster.count(ids) >= 200, 60, "the drain to start")
    own_server.restart()
    cluster.wait_done(ids)
    assert_each_ended_once(cluster, ids)
    assert_alive_and_working(cluster)
    for index in range(2):
        assert_one_outage_reported(cluster, index)
    assert cluster.stop() == [0, 0]


def test_a_sixty_second_outage_is_waited_out_without_spinning(cluster, own_server):
    for _ in range(2):
        cluster.start_worker()
    ids = cluster.add_jobs(1000)
    wait_until(lambda: cluster.count(ids) >= 100, 60, "the drain to start")
    own_server.stop()
    time.sleep(2)  # let every part notice
    cpu_before = [cpu_seconds(w) for w in cluster.workers]
    time.sleep(58)
    cpu_used = [
        cpu_seconds(w) - before for w, before in zip(cluster.workers, cpu_before, strict=True)
    ]
    assert max(cpu_used) < 3.0, f"workers used {cpu_used} s of CPU while waiting"
    own_server.start()
    cluster.wait_done(ids)
    assert_each_ended_once(cluster, ids)
    assert_alive_and_working(cluster)
    for index in range(2):
        assert_one_outage_reported(cluster, index)
        # The cause is in the line itself: the part, the error class and its message.
        assert re.search(r"database unavailable \(.+\): \w+: \S", cluster.log(index))
    assert cluster.stop() == [0, 0]


def test_connections_terminated_mid_drain(cluster):
    for _ in range(2):
        cluster.start_worker()
    ids = cluster.add_jobs(2000)
    wait_until(lambda: cluster.count(ids) >= 100, 60, "the drain to start")
    with cluster.connect() as conn:
        for _ in range(10):
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE application_name = 'howdah-worker'"
            )
            time.sleep(0.3)
    cluster.wait_done(ids)
    assert_each_ended_once(cluster, ids)
    assert_alive_and_working(cluster)
    assert cluster.stop() == [0, 0]


@contextmanager
def table_lock(cluster, seconds: float):
    """Hold an ACCESS EXCLUSIVE lock on procrastinate_jobs for ``seconds`` in the background."""
    locked = threading.Event()

    def hold():
        with cluster.connect() as conn, conn.transaction():
            conn.execute("LOCK TABLE procrastinate_jobs IN ACCESS EXCLUSIVE MODE")
            locked.set()
            time.sleep(seconds)

    holder = threading.Thread(target=hold)
    holder.start()
    locked.wait(10)
    try:
        yield
    finally:
        holder.join()


def test_a_forty_five_second_lock_on_the_jobs_table(cluster):
    for _ in range(2):
        cluster.start_worker()
    ids = cluster.add_jobs(1000)
    wait_until(lambda: cluster.count(ids) >= 100, 60, "the drain to start")
    with table_lock(cluster, 45), cluster.connect() as conn:
        for _ in range(4):
            time.sleep(10)
            ages = conn.execute(
                "SELECT max(extract(epoch FROM now() - last_heartbeat)) FROM procrastinate_workers"
            ).fetchone()[0]
            assert ages < 15, "a worker stopped beating while the jobs table was locked"
    cluster.wait_done(ids)
    assert_each_ended_once(cluster, ids)
    assert_alive_and_working(cluster)
    assert cluster.stop() == [0, 0]


def test_a_stop_during_a_lock_leaves_the_outcome_on_record_and_the_job_ends_once(cluster):
    worker = cluster.start_worker()
    (job_id,) = cluster.add_jobs(1, task="diagnostics:sleep", args=json.dumps(SLEEP_HALF_SECOND))
    wait_until(lambda: cluster.count([job_id], "doing"), 30, "the job to start")
    with table_lock(cluster, 25):
        time.sleep(1)  # the job ends; its status cannot be written
        with cluster.connect() as conn:
            recorded = conn.execute(
                "SELECT outcome FROM job_attempts WHERE job_id = %s", (job_id,)
            ).fetchall()
        assert recorded == [("succeeded",)]
        assert processes.stop(worker, timeout=30) == 0
        cluster.workers.remove(worker)
    cluster.start_worker()  # its housekeeping applies the outcome on record, or finds it done
    cluster.wait_done([job_id], timeout=90)
    assert_each_ended_once(cluster, [job_id])


def test_a_worker_killed_with_every_slot_full_and_statuses_unwritten(cluster):
    """SIGKILL while a full fetch runs: half its jobs ended, their outcomes recorded but
    their statuses held back by a lock, the other half still running. Recovery applies
    the recorded outcomes (those jobs never run again) and runs the others once more."""
    doomed = cluster.start_worker("--concurrency", "8")
    quick_args = json.dumps({"organization_id": 1, "seconds": 2})
    quick = cluster.add_jobs(4, task="diagnostics:sleep", args=quick_args)
    slow_args = json.dumps({"organization_id": 1, "seconds": 8})
    slow = cluster.add_jobs(4, task="diagnostics:sleep", args=slow_args)
    wait_until(lambda: cluster.count(quick + slow, "doing") == 8, 30, "every slot to fill")
    waiting = cluster.add_jobs(20)  # behind the full slots: never taken by this worker
    with table_lock(cluster, 6), cluster.connect() as conn:

        def recorded():
            return conn.execute(
                "SELECT count(*) FROM job_attempts WHERE job_id = ANY(%s)", (quick,)
            ).fetchone()[0]

        wait_until(lambda: recorded() == 4, 10, "the quick jobs' outcomes to be recorded")
        doomed.send_signal(signal.SIGKILL)
        doomed.wait(10)
        cluster.workers.remove(doomed)
        # Its backends would still run the status write queued behind the lock, as they
        # do when a worker dies mid-statement; a host that vanished takes them along.
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE application_name = 'howdah-worker'"
        )
    assert cluster.count(quick + slow, "doing") == 8, "the statuses were written before the kill"
    cluster.start_worker()
    cluster.wait_done(quick + slow + waiting, timeout=120)
    assert_each_ended_once(cluster, quick + waiting)
    with cluster.connect() as conn:
        runs = conn.execute(
            "SELECT job_id, array_agg(outcome ORDER BY attempt) FROM job_attempts"
            " WHERE job_id = ANY(%s) GROUP BY job_id",
            (slow,),
        ).fetchall()
        ends = conn.execute(
            "SELECT count(*) FROM procrastinate_events WHERE job_id = ANY(%s)"
            " AND type IN ('succeeded', 'failed', 'aborted', 'cancelled')",
            (slow,),
        ).fetchone()[0]
    assert sorted(runs) == [(job_id, ["lost", "succeeded"]) for job_id in sorted(slow)]
    assert ends == len(slow)


def test_rows_written_around_the_api_fail_alone(cluster, make_app):
    bad = {
        "bc": ("diagnostics:noop", NOOP, "0001-01-01T00:00:00+14:00"),
        "not_an_object": ("diagnostics:noop", '["a"]', None),
        "deep": ("diagnostics:noop", "[" * 3000 + "]" * 3000, None),
        "unknown_task": ("nope:nope", NOOP, None),
    }
    with cluster.connect() as conn:
        ids = {
            name: conn.execute(
                "INSERT INTO procrastinate_jobs (queue_name, task_name, args, scheduled_at)"
                " VALUES ('default', %s, %s, %s) RETURNING id",
                row,
            ).fetchone()[0]
            for name, row in bad.items()
        }
        far = conn.execute(
            "INSERT INTO procrastinate_jobs (queue_name, task_name, args, scheduled_at)"
            " VALUES ('default', 'diagnostics:noop', %s, '9999-12-31T23:59:59-14:00')"
            " RETURNING id",
            (NOOP,),
        ).fetchone()[0]
    for _ in range(2):
        cluster.start_worker()
    good = cluster.add_jobs(50)
    cluster.wait_done(good)
    cluster.wait_done([ids["bc"]])
    failing = [ids["not_an_object"], ids["deep"], ids["unknown_task"]]
    cluster.wait_done(failing, status="failed")
    assert_each_ended_once(cluster, failing, status="failed")
    assert_alive_and_working(cluster)

    # Every read path, for the tenant and the admin, survives these rows.
    app = make_app(cluster.url)
    with cluster.connect() as conn:
        account_store.insert_organization(conn, "Acme")
        admin = bearer(app.test_client(), accounts.new_token(conn, None, "admin", None)[0])
        tenant = bearer(app.test_client(), accounts.new_token(conn, 1, "tenant", None)[0])
    for client in (admin, tenant):
        listed = client.get("/api/v1/jobs?limit=500")
        assert listed.status_code == 200
        assert {ids["bc"], far} <= {job["id"] for job in listed.get_json()["jobs"]}
        for job_id in (ids["bc"], far):
            assert client.get(f"/api/v1/jobs/{job_id}").status_code == 200
            assert client.get(f"/api/v1/jobs/{job_id}/attempts").status_code == 200
    for job_id in ids.values():
        assert admin.get(f"/api/v1/jobs/{job_id}").status_code == 200
    assert admin.get(f"/api/v1/jobs/{far}").get_json()["scheduled_at"].startswith("9999-12-31")
    assert tenant.post(f"/api/v1/jobs/{far}/cancel").status_code == 200
    assert cluster.stop() == [0, 0]


def test_a_noisy_tenant_cannot_hold_every_slot(cluster):
    with cluster.connect() as conn:  # an SMS is sent for an organization that exists
        for name in ("Acme", "Globex"):
            account_store.insert_organization(conn, name)
    for _ in range(2):
        cluster.start_worker(ORG_MAX_RUNNING="5")
    flood = json.dumps({"organization_id": 1, "seconds": 60})
    cluster.add_jobs(40, task="diagnostics:sleep", args=flood, priority=100)
    time.sleep(2)
    sms = json.dumps({"organization_id": 2, "to": "+14155550123", "body": "hi"})
    started = time.monotonic()
    (job_id,) = cluster.add_jobs(
        1, task="sms:send_notification", args=sms, queue="sms-notifications"
    )
    cluster.wait_done([job_id], timeout=10)
    assert time.monotonic() - started < 3
    with cluster.connect() as conn:
        running = conn.execute(
            "SELECT count(*) FROM procrastinate_jobs WHERE status = 'doing'"
            " AND args ->> 'organization_id' = '1'"
        ).fetchone()[0]
    assert running == 5
    assert [w.poll() for w in cluster.workers] == [None, None]


def test_housekeeping_keeps_its_schedule_while_every_slot_is_busy(cluster):
    doomed = cluster.start_worker("--concurrency", "1")
    victim_args = json.dumps({"organization_id": 2, "seconds": 60})
    (victim,) = cluster.add_jobs(1, task="diagnostics:sleep", args=victim_args)
    wait_until(lambda: cluster.count([victim], "doing"), 30, "the victim to start")
    doomed.send_signal(signal.SIGKILL)
    doomed.wait(10)
    cluster.workers.remove(doomed)
    for _ in range(2):
        cluster.start_worker()
    flood = json.dumps({"organization_id": 1, "seconds": 120})
    cluster.add_jobs(40, task="diagnostics:sleep", args=flood, priority=100)
    # 20 slots, all held by the flood; recovery still runs on the housekeeping slot.
    wait_until(lambda: cluster.count([victim], "doing") == 0, 60, "recovery of the lost job")
    with cluster.connect() as conn:
        busy = conn.execute(
            "SELECT count(*) FROM procrastinate_jobs WHERE status = 'doing'"
            " AND queue_name <> 'housekeeping'"
        ).fetchone()[0]
        lost = conn.execute(
            "SELECT worker_name, outcome FROM job_attempts WHERE job_id = %s", (victim,)
        ).fetchall()
    assert busy == 20
    assert lost == [("worker0", "lost")]


def worker_ids(cluster, name: str) -> list[int]:
    with cluster.connect() as conn:
        rows = conn.execute(
            "SELECT worker_id FROM worker_registry WHERE name = %s ORDER BY worker_id", (name,)
        ).fetchall()
    return [row[0] for row in rows]


def test_jobs_taken_by_a_fetch_whose_reply_was_lost_are_handed_back(cluster):
    cluster.start_worker()
    (worker_id,) = worker_ids(cluster, "worker0")
    with cluster.connect() as conn:  # what such a fetch leaves: doing, on a live worker
        ids = [
            conn.execute(
                "INSERT INTO procrastinate_jobs (queue_name, task_name, args, status, worker_id)"
                " VALUES ('default', 'diagnostics:noop', %s, 'doing', %s) RETURNING id",
                (NOOP, worker_id),
            ).fetchone()[0]
            for _ in range(3)
        ]
    cluster.wait_done(ids, timeout=30)
    assert_each_ended_once(cluster, ids)
    assert "handed back 3 jobs taken by a fetch whose reply was lost" in cluster.log(0)
    assert cluster.stop() == [0]


def test_a_worker_whose_row_was_pruned_registers_again_and_keeps_its_job(cluster):
    cluster.start_worker()
    (first,) = worker_ids(cluster, "worker0")
    (job_id,) = cluster.add_jobs(1, task="diagnostics:sleep", args=json.dumps(SLEEP_TWENTY_SECONDS))
    wait_until(lambda: cluster.count([job_id], "doing"), 30, "the job to start")
    with cluster.connect() as conn:  # as a worker's start-up prune does to a silent worker
        conn.execute("DELETE FROM procrastinate_workers WHERE id = %s", (first,))
    wait_until(lambda: len(worker_ids(cluster, "worker0")) == 2, 20, "a new registration")
    with cluster.connect() as conn:
        owner = conn.execute(
            "SELECT worker_id FROM procrastinate_jobs WHERE id = %s", (job_id,)
        ).fetchone()[0]
    assert owner == worker_ids(cluster, "worker0")[1]
    cluster.wait_done([job_id], timeout=40)
    assert_each_ended_once(cluster, [job_id])
    assert_alive_and_working(cluster)
    assert cluster.stop() == [0]


SLEEP_TWENTY_SECONDS = {"organization_id": 1, "seconds": 20}


def test_notifications_of_any_shape_only_wake_the_worker(cluster):
    cluster.start_worker()
    with cluster.connect() as conn:  # anyone who may connect may send these
        for payload in ("[1]", "not json", '{"type": "abort_job_requested", "job_id": [1]}', "7"):
            conn.execute("SELECT pg_notify('procrastinate_any_queue_v1', %s)", (payload,))
    ids = cluster.add_jobs(5)
    cluster.wait_done(ids, timeout=30)
    assert cluster.workers[0].poll() is None
    assert cluster.stop() == [0]


def test_a_job_handed_back_whose_key_is_taken_waits_without_it(cluster):
    cluster.start_worker()
    (worker_id,) = worker_ids(cluster, "worker0")
    with cluster.connect() as conn:
        # What a lost fetch reply leaves, while a newer job with the same key waits.
        orphan = conn.execute(
            "INSERT INTO procrastinate_jobs (queue_name, task_name, args, status, worker_id,"
            " queueing_lock) VALUES ('default', 'diagnostics:noop', %s, 'doing', %s, 'org:1:k')"
            " RETURNING id",
            (NOOP, worker_id),
        ).fetchone()[0]
        newer = conn.execute(
            "INSERT INTO procrastinate_jobs (queue_name, task_name, args, queueing_lock,"
            " scheduled_at) VALUES ('default', 'diagnostics:noop', %s, 'org:1:k',"
            " now() + interval '1 day') RETURNING id",
            (NOOP,),
        ).fetchone()[0]
    cluster.wait_done([orphan], timeout=30)
    with cluster.connect() as conn:
        waiting = conn.execute(
            "SELECT status::text, queueing_lock FROM procrastinate_jobs WHERE id = %s", (newer,)
        ).fetchone()
    assert waiting == ("todo", "org:1:k")
    assert cluster.workers[0].poll() is None
    assert cluster.stop() == [0]


def test_an_outage_without_a_restart_runs_no_job_twice(cluster, own_server):
    """Connections refused for longer than WORKER_STALLED_AFTER, the server itself up: every
    heartbeat is old when they come back, and no worker may be taken for dead for it."""
    for _ in range(2):
        cluster.start_worker()
    slow = json.dumps({"organization_id": 1, "seconds": 40})
    ids = cluster.add_jobs(10, task="diagnostics:sleep", args=slow)
    wait_until(lambda: cluster.count(ids, "doing") == 10, 30, "every job to start")
    name = psycopg.conninfo.conninfo_to_dict(cluster.url)["dbname"]
    with psycopg.connect(own_server.admin_url(), autocommit=True) as admin:
        admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,)
        )
        time.sleep(25)
        admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
    cluster.wait_done(ids, timeout=90)
    assert_each_ended_once(cluster, ids)
    with cluster.connect() as conn:
        lost = conn.execute("SELECT count(*) FROM job_attempts WHERE outcome = 'lost'").fetchone()
    assert lost == (0,)
    for index in range(2):
        assert_one_outage_reported(cluster, index)
    assert cluster.stop() == [0, 0]
