"""Bulk actions from the job list: preview, small ones at once, large ones in batches."""

import asyncio
import re
import time
import types

import psycopg
import psycopg_pool
import pytest

from tasks import bulk as bulk_task
from tests import processes
from tests.admin.bulk_rows import add_jobs, status_of
from tests.admin.conftest import csrf_of
from tests.conftest import TEST_SECRET
from webapp import bulk

JOBS = "/admin/queues/jobs"
PREVIEW = "/admin/queues/bulk/preview"
APPLY = "/admin/queues/bulk"


def preview(actions, action, target="matching", ids=(), **filters):
    page = actions.client.get(JOBS).get_data(as_text=True)
    data = {"action": action, "target": target, "job_id": list(ids), **filters}
    response = actions.client.post(PREVIEW, data={**data, "csrf_token": csrf_of(page)})
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_data(as_text=True)


def confirm(actions, page):
    """Submit the preview's confirmation form as it is."""
    form = re.search(r'<form method="post" action="/admin/queues/bulk[^"]*".*?</form>', page, re.S)
    fields = re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', form.group(0))
    data: dict[str, list[str]] = {}
    for name, value in fields:
        data.setdefault(name, []).append(value)
    return actions.client.post(APPLY, data=data)


def audit_rows(conn, action):
    return conn.execute(
        "SELECT actor_label, organization_id, details FROM audit_log WHERE action = %s", (action,)
    ).fetchall()


@pytest.fixture
def acme(conn, orgs):
    """Acme's jobs, a few in each state."""
    return {
        "waiting": add_jobs(conn, 3),
        "scheduled": add_jobs(conn, 1, state="scheduled"),
        "running": add_jobs(conn, 2, state="running"),
        "succeeded": add_jobs(conn, 2, state="succeeded"),
        "failed": add_jobs(conn, 2, state="failed"),
        "cancelled": add_jobs(conn, 1, state="cancelled"),
    }


def test_the_preview_counts_what_will_be_done_and_why_not(sign_in, acme, conn):
    add_jobs(conn, 4, organization=2)  # another tenant's, never counted
    page = preview(sign_in("operator"), "cancel")
    assert "11 jobs match these filters" in page
    assert "<strong>6</strong> will be acted on; 5 will be left as they are." in page
    assert "3 are waiting and will be cancelled." in page
    assert "1 are scheduled and will be cancelled." in page
    assert "2 are running: they will be asked to abort" in page
    assert "2 have succeeded and cannot be cancelled (left as they are)." in page
    assert page.count('href="/admin/queues/jobs/') == 11  # the sample
    assert 'href="/admin/queues/jobs"' in page  # the way back


def test_the_delete_preview_says_running_jobs_cannot_go(sign_in, acme):
    page = preview(sign_in("operator"), "delete", state="running")
    assert "2 jobs match these filters" in page
    assert "2 are running and cannot be deleted (left as they are)." in page
    assert "Delete 0 jobs" in page


def test_the_retry_preview_leaves_platform_tasks_to_admins(sign_in, conn, orgs):
    add_jobs(conn, 2, state="failed", queue="default", task="diagnostics:noop")
    add_jobs(conn, 1, state="failed")
    page = preview(sign_in("operator"), "retry", state="failed")
    assert "1 have failed and will go back to their queue." in page
    assert "2 run platform tasks, which only platform admins may retry" in page
    assert "3 have failed and will go back" in preview(sign_in("admin"), "retry", state="failed")


def test_a_preview_with_nothing_ticked_or_a_bad_action_is_a_400(sign_in, acme):
    operator = sign_in("operator")
    token = csrf_of(operator.client.get(JOBS).get_data(as_text=True))
    for data in (
        {"action": "cancel", "target": "selected"},
        {"action": "explode", "target": "matching"},
        {"action": "cancel", "target": "everything"},
        {"action": "cancel", "target": "selected", "job_id": "x"},
        {"action": "cancel", "target": "matching", "state": "todo"},
    ):
        assert operator.client.post(PREVIEW, data={**data, "csrf_token": token}).status_code == 400


def test_jobs_found_by_id_or_key_are_acted_on_when_ticked_only(sign_in, conn, orgs):
    add_jobs(conn, 1, key="shared", state="failed")
    add_jobs(conn, 1, key="shared")
    add_jobs(conn, 5)
    operator = sign_in("operator")
    page = operator.client.get("/admin/queues/jobs?q=shared").get_data(as_text=True)
    assert 'value="matching"' not in page
    response = operator.client.post(
        "/admin/queues/bulk/preview",
        data={"action": "cancel", "target": "matching", "q": "shared", "csrf_token": csrf_of(page)},
    )
    assert response.status_code == 400
    assert "tick the ones to act on" in response.get_data(as_text=True)


def test_a_small_bulk_cancel_of_selected_jobs(sign_in, acme, conn):
    operator = sign_in("operator")
    ids = acme["waiting"][:2] + acme["running"][:1] + acme["succeeded"][:1]
    page = preview(operator, "cancel", target="selected", ids=ids)
    assert "4 selected jobs" in page
    response = confirm(operator, page)
    assert response.status_code == 302 and response.headers["Location"] == JOBS
    assert status_of(conn, ids) == {
        ids[0]: "cancelled",
        ids[1]: "cancelled",
        ids[2]: "doing",
        ids[3]: "succeeded",
    }
    assert conn.execute(
        "SELECT abort_requested FROM procrastinate_jobs WHERE id = %s", (ids[2],)
    ).fetchone()[0]
    assert status_of(conn, acme["waiting"][2:]) == {acme["waiting"][2]: "todo"}
    [(label, organization, details)] = audit_rows(conn, "jobs.bulk_cancel")
    assert (label, organization) == ("operator1@example.com", 1)
    assert details["job_ids"] == sorted(ids)
    assert (details["acted"], details["skipped"], details["abort_requested"]) == (3, 1, 1)
    listing = operator.client.get(JOBS).get_data(as_text=True)
    assert "Cancelled 3 jobs (1 running, asked to abort); 1 left as they were." in listing


def test_a_small_bulk_retry_of_matching_jobs(sign_in, acme, conn):
    aborted = add_jobs(conn, 1, state="aborted")
    operator = sign_in("operator")
    response = confirm(operator, preview(operator, "retry"))
    assert response.status_code == 302
    assert set(status_of(conn, acme["failed"]).values()) == {"todo"}
    copies = conn.execute("SELECT job_id FROM job_retries ORDER BY job_id").fetchall()
    assert [row[0] for row in copies] == acme["cancelled"] + aborted
    [(_, _, details)] = audit_rows(conn, "jobs.bulk_retry")
    assert details["filter"] == {} and (details["acted"], details["matched"]) == (4, 12)
    # Done again, nothing is retried twice.
    confirm(operator, preview(operator, "retry"))
    assert conn.execute("SELECT count(*) FROM job_retries").fetchone()[0] == 2


def test_a_small_bulk_delete_takes_attempts_along(sign_in, acme, conn):
    finished = acme["succeeded"] + acme["failed"] + acme["cancelled"]
    conn.execute(
        "INSERT INTO job_attempts (job_id, attempt, worker_name, outcome, started_at,"
        " finished_at) SELECT id, 1, 'w', 'succeeded', now(), now() FROM unnest(%s::bigint[]) id",
        (finished + acme["running"],),
    )
    operator = sign_in("operator")
    assert confirm(operator, preview(operator, "delete")).status_code == 302
    assert status_of(conn, finished) == {}
    assert set(status_of(conn, acme["running"] + acme["waiting"]).values()) == {"doing", "todo"}
    attempts = conn.execute("SELECT job_id FROM job_attempts ORDER BY job_id").fetchall()
    assert [row[0] for row in attempts] == acme["running"]
    [(_, _, details)] = audit_rows(conn, "jobs.bulk_delete")
    assert (details["acted"], details["skipped"]) == (5, 6)


def test_a_bulk_action_and_its_audit_entry_commit_together(sign_in, acme, conn):
    operator = sign_in("operator")
    page = preview(operator, "cancel")
    conn.execute(
        """
        CREATE FUNCTION refuse_audit_entries() RETURNS trigger
        LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'audit log refused'; END $$;
        CREATE TRIGGER refuse_audit_entries BEFORE INSERT ON audit_log
            FOR EACH ROW EXECUTE FUNCTION refuse_audit_entries();
        """
    )
    try:
        assert confirm(operator, page).status_code == 500
    finally:
        conn.execute(
            "DROP TRIGGER refuse_audit_entries ON audit_log; DROP FUNCTION refuse_audit_entries()"
        )
    assert set(status_of(conn, acme["waiting"]).values()) == {"todo"}


def test_a_bulk_action_leaves_jobs_deferred_after_its_preview(sign_in, acme, conn):
    operator = sign_in("operator")
    page = preview(operator, "cancel", state="waiting")
    later = add_jobs(conn, 1)
    confirm(operator, page)
    assert status_of(conn, later) == {later[0]: "todo"}


def test_an_operator_cannot_act_on_another_organizations_jobs(sign_in, acme, conn):
    theirs = add_jobs(conn, 2, organization=2)
    operator = sign_in("operator")
    page = preview(operator, "cancel", target="selected", ids=theirs + acme["waiting"][:1])
    assert "1 selected jobs" in page
    confirm(operator, page)
    assert set(status_of(conn, theirs).values()) == {"todo"}


def run_task(db_url, bulk_id):
    """Run the background task's function as a worker would."""

    async def go():
        async with psycopg_pool.AsyncConnectionPool(db_url, min_size=1, open=False) as pool:
            context = types.SimpleNamespace(
                app=types.SimpleNamespace(connector=types.SimpleNamespace(pool=pool)),
                job=types.SimpleNamespace(attempts=0),
            )
            return await bulk_task.apply_bulk_action.func(context, bulk_id=bulk_id)

    return asyncio.run(go())


def one_batch(db_url, bulk_id) -> bool:
    """One batch and no more (its deadline has passed when it ends)."""

    async def go():
        async with await psycopg.AsyncConnection.connect(db_url, autocommit=True) as conn:
            return await bulk_task.run_batches(conn, bulk_id, time.monotonic())

    return asyncio.run(go())


def bulk_row(conn, bulk_id):
    return conn.execute(
        "SELECT status, total, done, skipped, organization_id, finished_at IS NOT NULL"
        " FROM bulk_actions WHERE id = %s",
        (bulk_id,),
    ).fetchone()


def start_large(operator, **filters) -> int:
    response = confirm(operator, preview(operator, "cancel", **filters))
    assert response.status_code == 302
    match = re.fullmatch(r"/admin/queues/bulk/(\d+)", response.headers["Location"])
    return int(match.group(1))


def test_a_large_bulk_cancel_runs_in_batches_and_only_on_the_operators_jobs(
    sign_in, conn, orgs, db_url
):
    ours = add_jobs(conn, 2400)
    theirs = add_jobs(conn, 300, organization=2)
    operator = sign_in("operator")
    page = preview(operator, "cancel")
    assert "2,400 jobs match these filters" in page and "in the background" in page
    bulk_id = start_large(operator)
    assert bulk_row(conn, bulk_id) == ("running", 2400, 0, 0, 1, False)
    # Its run is deferred with the row and the audit entry, on the housekeeping queue.
    deferred = conn.execute(
        "SELECT task_name, queue_name, lock, args FROM procrastinate_jobs"
        " WHERE task_name = 'admin:apply_bulk_action'"
    ).fetchall()
    assert deferred == [
        ("admin:apply_bulk_action", "housekeeping", f"bulk:{bulk_id}", {"bulk_id": bulk_id})
    ]
    [(_, organization, details)] = audit_rows(conn, "jobs.bulk_cancel")
    assert organization == 1 and details["background"] and details["matched"] == 2400
    assert run_task(db_url, bulk_id) == {"bulk_id": bulk_id, "finished": True}
    assert bulk_row(conn, bulk_id) == ("succeeded", 2400, 2400, 0, 1, True)
    assert set(status_of(conn, ours).values()) == {"cancelled"}
    assert set(status_of(conn, theirs).values()) == {"todo"}
    page = operator.client.get(f"/admin/queues/bulk/{bulk_id}").get_data(as_text=True)
    assert '<progress id="bulk-progress-bar" max="2400" value="2400">' in page
    assert "2,400 of 2,400 jobs gone through" in page and "Stop it" not in page
    assert "every job, up to job" in page


def test_a_large_bulk_action_keeps_every_filter_of_its_preview(sign_in, conn, orgs, db_url):
    """The failures page links to the job list with an error key: a background run over
    those jobs must act on them alone, as its preview said, not on every failed job."""
    timeouts = add_jobs(conn, 1100, state="failed")
    others = add_jobs(conn, 20, state="failed")
    conn.execute(
        "INSERT INTO job_attempts (job_id, attempt, worker_name, outcome, started_at,"
        " finished_at, error_class, error_message, task_name, queue_name, organization_id)"
        " SELECT id, 1, 'w', 'failed', now(), now(), 'TimeoutError', 'timeout after 3 s',"
        " task_name, queue_name, 1 FROM procrastinate_jobs WHERE id = ANY(%s)",
        (timeouts,),
    )
    error = conn.execute("SELECT howdah_error_key('TimeoutError', 'timeout after 9 s')").fetchone()[
        0
    ]
    operator = sign_in("operator")
    page = preview(operator, "delete", state="failed", error=error)
    assert "1,100 jobs match these filters" in page
    response = confirm(operator, page)
    bulk_id = int(response.headers["Location"].rsplit("/", 1)[1])
    assert run_task(db_url, bulk_id) == {"bulk_id": bulk_id, "finished": True}
    assert bulk_row(conn, bulk_id)[:4] == ("succeeded", 1100, 1100, 0)
    assert status_of(conn, timeouts) == {}
    assert set(status_of(conn, others).values()) == {"failed"}
    detail = operator.client.get(f"/admin/queues/bulk/{bulk_id}").get_data(as_text=True)
    assert f"error = {error}" in detail


def test_a_large_bulk_action_stops_between_batches(sign_in, conn, orgs, db_url):
    ids = add_jobs(conn, 1600)
    operator = sign_in("operator")
    bulk_id = start_large(operator)
    assert one_batch(db_url, bulk_id) is False
    assert bulk_row(conn, bulk_id)[:4] == ("running", 1600, 500, 0)
    page = operator.client.get(f"/admin/queues/bulk/{bulk_id}").get_data(as_text=True)
    assert 'id="bulk-progress" data-refresh' in page and "500 of 1,600" in page
    response = operator.client.post(
        f"/admin/queues/bulk/{bulk_id}/cancel", data={"csrf_token": csrf_of(page)}
    )
    assert response.status_code == 302
    assert run_task(db_url, bulk_id)["finished"]
    assert bulk_row(conn, bulk_id) == ("cancelled", 1600, 500, 0, 1, True)
    assert list(status_of(conn, ids).values()).count("cancelled") == 500
    assert audit_rows(conn, "jobs.bulk_action_cancelled")


def test_a_batch_done_again_acts_on_nothing_twice(sign_in, conn, orgs, db_url):
    """As after a worker died after a batch committed: the cursor and the re-check in
    each batch's WHERE keep every job acted on once."""
    add_jobs(conn, 1200, state="failed")
    operator = sign_in("operator")
    response = confirm(operator, preview(operator, "retry", state="failed"))
    bulk_id = int(response.headers["Location"].rsplit("/", 1)[1])
    one_batch(db_url, bulk_id)
    conn.execute("UPDATE bulk_actions SET cursor = max_id + 1 WHERE id = %s", (bulk_id,))
    assert run_task(db_url, bulk_id)["finished"]
    assert bulk_row(conn, bulk_id)[:4] == ("succeeded", 1200, 1200, 0)
    retried = conn.execute(
        "SELECT count(DISTINCT job_id), count(*) FROM procrastinate_events WHERE type = 'retried'"
    )
    assert retried.fetchone() == (1200, 1200)  # each job went back once
    assert (
        conn.execute(
            "SELECT count(*) FROM procrastinate_jobs WHERE status = 'todo'"
            " AND task_name <> 'admin:apply_bulk_action'"
        ).fetchone()[0]
        == 1200
    )


def test_an_admin_bulk_action_spans_organizations_but_not_housekeeping(sign_in, conn, orgs, db_url):
    ours, theirs = add_jobs(conn, 700), add_jobs(conn, 700, organization=2)
    admin = sign_in("admin")
    bulk_id = start_large(admin)
    assert bulk_row(conn, bulk_id)[4] is None
    run_task(db_url, bulk_id)
    assert set(status_of(conn, ours + theirs).values()) == {"cancelled"}
    runs = conn.execute(
        "SELECT status::text FROM procrastinate_jobs WHERE task_name = 'admin:apply_bulk_action'"
    ).fetchall()
    assert runs == [("todo",)]  # its own run is housekeeping, left alone


def test_another_organizations_bulk_action_is_not_found(sign_in, conn, orgs):
    add_jobs(conn, 1100)
    bulk_id = start_large(sign_in("operator"))
    globex = sign_in("operator", 2)
    assert globex.client.get(f"/admin/queues/bulk/{bulk_id}").status_code == 404
    assert globex.client.get("/admin/queues/bulk/99999999999999999999").status_code == 404
    viewer = sign_in("viewer")
    page = viewer.client.get(f"/admin/queues/bulk/{bulk_id}").get_data(as_text=True)
    assert "Stop it" not in page
    cancel = viewer.client.post(
        f"/admin/queues/bulk/{bulk_id}/cancel", data={"csrf_token": csrf_of(page)}
    )
    assert cancel.status_code == 403


def test_a_preview_counts_up_to_its_cap_and_the_run_counts_the_rest(
    sign_in, conn, orgs, db_url, monkeypatch
):
    monkeypatch.setattr(bulk, "PREVIEW_CAP", 1500)
    ids = add_jobs(conn, 2000)
    operator = sign_in("operator")
    page = preview(operator, "cancel")
    assert "More than 1,500 jobs match these filters" in page
    assert "The counts below are of the newest 1,500" in page
    bulk_id = start_large(operator)
    detail = operator.client.get(f"/admin/queues/bulk/{bulk_id}").get_data(as_text=True)
    assert "0 of at least 1,500 jobs gone through" in detail
    run_task(db_url, bulk_id)
    assert bulk_row(conn, bulk_id) == ("succeeded", 2000, 2000, 0, 1, True)
    assert set(status_of(conn, ids).values()) == {"cancelled"}


@pytest.mark.e2e
def test_a_real_worker_runs_a_large_bulk_action(sign_in, conn, orgs, db_url, tmp_path):
    """The task is registered, deferred to the housekeeping lane, and run to the end."""
    ids = add_jobs(conn, 1100)  # on the SMS queue, which this worker does not serve
    bulk_id = start_large(sign_in("operator"))
    env = processes.process_env(
        DATABASE_URL=db_url, SECRET_KEY=TEST_SECRET, WORKER_SHUTDOWN_TIMEOUT="3"
    )
    worker = processes.start_worker(env, tmp_path / "worker.log", "--queues", "default")
    try:
        deadline = time.monotonic() + 60
        while bulk_row(conn, bulk_id)[0] == "running" and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        processes.stop(worker)
    assert bulk_row(conn, bulk_id) == ("succeeded", 1100, 1100, 0, 1, True)
    assert set(status_of(conn, ids).values()) == {"cancelled"}
    run = conn.execute(
        "SELECT status::text FROM procrastinate_jobs WHERE task_name = 'admin:apply_bulk_action'"
    )
    assert run.fetchall() == [("succeeded",)]
