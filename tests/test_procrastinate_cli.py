"""Procrastinate's own CLI on Howdah's App and database, with only DATABASE_URL set."""

import json
import subprocess

from tests import processes


def procrastinate(db_url: str, *args: str, stdin: str = "") -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(processes.BIN / "procrastinate"), "--app", "tasks.app.app", *args],
        input=stdin,
        env={"DATABASE_URL": db_url, "PATH": "/usr/bin:/bin"},
        cwd=processes.ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_healthchecks_find_the_database(db_url):
    run = procrastinate(db_url, "healthchecks")
    assert run.returncode == 0, run.stderr
    assert "DB connection: OK" in run.stdout
    assert "Found procrastinate_jobs table: OK" in run.stdout


def test_defer_writes_to_the_database(db_url, conn):
    payload = {"organization_id": 1, "to": "+14155550123", "body": "from the CLI"}
    run = procrastinate(db_url, "defer", "sms:send_notification", json.dumps(payload))
    assert run.returncode == 0, run.stderr
    task, args = conn.execute("SELECT task_name, args FROM procrastinate_jobs").fetchone()
    assert (task, args) == ("sms:send_notification", payload)
    shell = procrastinate(db_url, "shell", stdin="list_queues\nexit\n")
    assert shell.returncode == 0, shell.stderr
    assert "sms-notifications: 1 jobs" in shell.stdout
