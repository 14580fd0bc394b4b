"""Pausing and resuming a queue, and retrying every failed job of one, from the admin pages."""

import json

import psycopg
import pytest

from tests.admin.conftest import csrf_of
from webapp.store import queues as queue_store

OVERVIEW = "/admin/queues"
QUEUE_AUDIT = "SELECT count(*) FROM audit_log WHERE action LIKE 'queue.%'"


def post(person, path, forged_csrf=None):
    """POST a queue action with the page's CSRF token (or a forged one)."""
    token = forged_csrf or csrf_of(person.client.get(OVERVIEW).get_data(as_text=True))
    return person.client.post(f"{OVERVIEW}/{path}", data={"csrf_token": token})


def flashed(person) -> str:
    """The page a person is sent to after an action, with its flash message."""
    return person.client.get(OVERVIEW).get_data(as_text=True)


def pause_row(conn, queue="default"):
    return conn.execute(
        "SELECT paused_at IS NOT NULL, paused_by FROM queue_settings WHERE queue_name = %s",
        (queue,),
    ).fetchone()


def audit_rows(conn, action):
    return conn.execute(
        "SELECT actor_label, target_type, target_id, organization_id, details FROM audit_log"
        " WHERE action = %s ORDER BY id",
        (action,),
    ).fetchall()


@pytest.fixture
def listener(db_url):
    """A connection listening on the channels the workers listen on."""
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute('LISTEN "procrastinate_any_queue_v1"')
        conn.execute('LISTEN "procrastinate_queue_v1#default"')
        yield conn


def notified(listener) -> list[tuple[str, dict]]:
    return [
        (n.channel, json.loads(n.payload)) for n in listener.notifies(timeout=0.5, stop_after=2)
    ]


# -- pause and resume ---------------------------------------------------------------


def test_an_admin_pauses_a_queue_with_an_audit_entry(sign_in, conn):
    admin = sign_in("admin")
    response = post(admin, "default/pause")
    assert response.status_code == 302
    assert response.headers["Location"] == OVERVIEW
    assert "Queue default is paused" in flashed(admin)
    assert pause_row(conn) == (True, "admin1@example.com")
    assert audit_rows(conn, "queue.paused") == [
        ("admin1@example.com", "queue", "default", None, {})
    ]


def test_a_pause_is_readable_for_the_pages_until_resumed(sign_in, conn):
    admin = sign_in("admin")
    assert queue_store.get_pause(conn, "default") is None
    post(admin, "default/pause")
    pause = queue_store.get_pause(conn, "default")
    assert (pause["queue_name"], pause["paused_by"]) == ("default", "admin1@example.com")
    listed = {row["queue_name"]: row for row in queue_store.list_queue_settings(conn)}
    assert listed["default"]["paused_at"] == pause["paused_at"]
    post(admin, "default/resume")
    assert queue_store.get_pause(conn, "default") is None


def test_pausing_twice_keeps_the_first_pause(sign_in, conn):
    admin = sign_in("admin")
    post(admin, "default/pause")
    first = conn.execute("SELECT paused_at FROM queue_settings").fetchone()
    assert post(admin, "default/pause").status_code == 302
    assert "Queue default was paused already." in flashed(admin)
    assert conn.execute("SELECT paused_at FROM queue_settings").fetchone() == first
    assert len(audit_rows(conn, "queue.paused")) == 1


def test_pausing_keeps_the_queue_caps(sign_in, conn):
    conn.execute(
        "INSERT INTO queue_settings (queue_name, max_running, organization_max_running)"
        " VALUES ('default', 3, 2)"
    )
    post(sign_in("admin"), "default/pause")
    row = conn.execute("SELECT max_running, organization_max_running FROM queue_settings")
    assert row.fetchone() == (3, 2)


def test_an_admin_resumes_a_queue_and_wakes_the_workers(sign_in, conn, listener):
    admin = sign_in("admin")
    post(admin, "default/pause")
    job_id = conn.execute(
        "INSERT INTO procrastinate_jobs (queue_name, task_name, args)"
        " VALUES ('default', 'diagnostics:noop', '{}') RETURNING id"
    ).fetchone()[0]
    notified(listener)  # the insert's own notifications
    response = post(admin, "default/resume")
    assert response.status_code == 302
    assert response.headers["Location"] == OVERVIEW
    assert "Queue default is resumed" in flashed(admin)
    assert pause_row(conn) == (False, None)
    payload = {"type": "job_inserted", "job_id": job_id}
    assert sorted(notified(listener)) == [
        ("procrastinate_any_queue_v1", payload),
        ("procrastinate_queue_v1#default", payload),
    ]
    ((actor, target_type, target, org, details),) = audit_rows(conn, "queue.resumed")
    assert (actor, target_type, target, org) == ("admin1@example.com", "queue", "default", None)
    assert details["paused_by"] == "admin1@example.com"


def test_resuming_a_queue_that_is_not_paused_changes_nothing(sign_in, conn, listener):
    admin = sign_in("admin")
    assert post(admin, "default/resume").status_code == 302
    assert "Queue default was not paused." in flashed(admin)
    assert audit_rows(conn, "queue.resumed") == []
    assert notified(listener) == []


@pytest.mark.parametrize("action", ["pause", "resume"])
@pytest.mark.parametrize("role", ["operator", "viewer"])
def test_only_platform_admins_pause_and_resume(sign_in, conn, role, action):
    conn.execute(
        "INSERT INTO queue_settings (queue_name, paused_at, paused_by)"
        " VALUES ('default', CASE WHEN %s = 'resume' THEN now() END, 'someone')",
        (action,),
    )
    assert post(sign_in(role), f"default/{action}").status_code == 403
    assert pause_row(conn) == (action == "resume", "someone")
    assert conn.execute(QUEUE_AUDIT).fetchone()[0] == 0


@pytest.mark.parametrize("action", ["pause", "resume", "retry-failed"])
def test_queue_actions_need_the_csrf_token(sign_in, conn, action):
    assert post(sign_in("admin"), f"default/{action}", forged_csrf="forged").status_code == 400
    assert conn.execute(QUEUE_AUDIT).fetchone()[0] == 0


@pytest.mark.parametrize("action", ["pause", "resume", "retry-failed"])
def test_an_unknown_queue_is_a_404(sign_in, conn, action):
    assert post(sign_in("admin"), f"no-such-queue/{action}").status_code == 404
    assert conn.execute("SELECT count(*) FROM queue_settings").fetchone()[0] == 0


def test_queue_actions_are_posts_only(sign_in):
    assert sign_in("admin").client.get(f"{OVERVIEW}/default/pause").status_code == 405


# -- retry all failed ---------------------------------------------------------------


@pytest.fixture
def failed(conn):
    """Insert a failed job; returns its id."""

    def make(org=1, queue="default", task="sms:send_notification", **columns):
        names = ", ".join(["queue_name", "task_name", "args", "status", *columns])
        marks = ", ".join(["%s"] * (4 + len(columns)))
        args = json.dumps({} if org is None else {"organization_id": org})
        values = (queue, task, args, "failed", *columns.values())
        return conn.execute(
            f"INSERT INTO procrastinate_jobs ({names}) VALUES ({marks}) RETURNING id", values
        ).fetchone()[0]

    return make


def statuses(conn, ids) -> dict[int, str]:
    rows = conn.execute(
        "SELECT id, status::text FROM procrastinate_jobs WHERE id = ANY(%s)", (ids,)
    ).fetchall()
    return dict(rows)


def test_an_operator_retries_their_organizations_failed_jobs(sign_in, conn, failed, listener):
    mine = [failed(), failed(abort_requested=True)]
    platform = failed(task="diagnostics:noop")
    others = [failed(org=2), failed(queue="sms-notifications"), failed(org=None)]
    response = post(sign_in("operator"), "default/retry-failed")
    assert response.status_code == 302
    assert response.headers["Location"] == OVERVIEW
    assert statuses(conn, mine) == dict.fromkeys(mine, "todo")
    assert statuses(conn, [platform, *others]) == dict.fromkeys([platform, *others], "failed")
    aborts = "SELECT count(*) FROM procrastinate_jobs WHERE abort_requested"
    assert conn.execute(aborts).fetchone()[0] == 0
    assert [payload["job_id"] for _, payload in notified(listener)] == [mine[0], mine[0]]
    ((actor, target_type, target, org, details),) = audit_rows(conn, "queue.retried_failed")
    assert (actor, target_type, target, org) == ("operator1@example.com", "queue", "default", 1)
    assert details == {"retried": 2, "skipped": {"platform_only": 1}}


def test_the_message_says_how_many_went_back_and_why_some_did_not(sign_in, failed):
    operator = sign_in("operator")
    failed(), failed(task="diagnostics:noop")
    post(operator, "default/retry-failed")
    page = flashed(operator)
    assert "1 failed jobs of default are back in the queue." in page
    assert "Left failed: 1 of tasks for platform admins." in page


def test_an_admin_retries_every_organizations_in_batches(sign_in, conn, failed):
    conn.execute(
        "INSERT INTO procrastinate_jobs (queue_name, task_name, args, status)"
        " SELECT 'default', 'sms:send_notification',"
        " jsonb_build_object('organization_id', n % 2 + 1), 'failed'"
        " FROM generate_series(1, 2500) AS n"
    )
    platform = failed(task="diagnostics:noop", org=None)
    assert post(sign_in("admin"), "default/retry-failed").status_code == 302
    left = "SELECT count(*) FROM procrastinate_jobs WHERE status = 'failed'"
    assert conn.execute(left).fetchone()[0] == 0
    assert statuses(conn, [platform]) == {platform: "todo"}
    ((*_, org, details),) = audit_rows(conn, "queue.retried_failed")
    assert (org, details) == (None, {"retried": 2501, "skipped": {}})


def test_an_admin_may_retry_one_organizations_only(sign_in, conn, failed):
    acme, globex = failed(org=1), failed(org=2)
    admin = sign_in("admin")
    token = csrf_of(admin.client.get(OVERVIEW).get_data(as_text=True))
    response = admin.client.post(
        f"{OVERVIEW}/default/retry-failed?org=2", data={"csrf_token": token}
    )
    assert response.headers["Location"] == f"{OVERVIEW}?org=2"
    assert statuses(conn, [acme, globex]) == {acme: "failed", globex: "todo"}
    assert audit_rows(conn, "queue.retried_failed")[0][3] == 2


def test_jobs_retried_before_or_whose_key_is_taken_stay_failed(sign_in, conn, failed):
    copied = failed()
    copy = failed()
    conn.execute("INSERT INTO job_retries (job_id, retry_job_id) VALUES (%s, %s)", (copied, copy))
    conn.execute(
        "INSERT INTO procrastinate_jobs (queue_name, task_name, args, queueing_lock)"
        " VALUES ('default', 'sms:send_notification', '{\"organization_id\": 1}', 'org:1:k')"
    )
    taken = failed(queueing_lock="org:1:k")
    twins = [failed(queueing_lock="org:1:twin") for _ in range(2)]
    assert post(sign_in("operator"), "default/retry-failed").status_code == 302
    assert statuses(conn, [copied, copy, taken, *twins]) == {
        copied: "failed",
        copy: "todo",
        taken: "failed",
        twins[0]: "todo",
        twins[1]: "failed",
    }
    details = audit_rows(conn, "queue.retried_failed")[0][4]
    assert details == {"retried": 2, "skipped": {"copied": 1, "key_taken": 2}}


def test_more_than_ten_thousand_failed_jobs_are_refused(sign_in, conn):
    conn.execute(
        "INSERT INTO procrastinate_jobs (queue_name, task_name, args, status)"
        " SELECT 'default', 'sms:send_notification', '{\"organization_id\": 1}', 'failed'"
        " FROM generate_series(1, 10001)"
    )
    operator = sign_in("operator")
    assert post(operator, "default/retry-failed").status_code == 302
    page = flashed(operator)
    assert "more than 10,000 failed jobs" in page
    assert "bulk action on the job list" in page
    todo = "SELECT count(*) FROM procrastinate_jobs WHERE status = 'todo'"
    assert conn.execute(todo).fetchone()[0] == 0
    assert audit_rows(conn, "queue.retried_failed") == []


def test_a_viewer_cannot_retry_failed_jobs(sign_in, conn, failed):
    job = failed()
    assert post(sign_in("viewer"), "default/retry-failed").status_code == 403
    assert statuses(conn, [job]) == {job: "failed"}


def test_the_housekeeping_queue_is_for_admins_only(sign_in, conn, failed):
    job = failed(queue="housekeeping", org=None, task="maintenance:recover")
    assert post(sign_in("operator"), "housekeeping/retry-failed").status_code == 404
    assert post(sign_in("admin"), "housekeeping/retry-failed").status_code == 302
    assert statuses(conn, [job]) == {job: "todo"}
