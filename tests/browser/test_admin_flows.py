"""Operators' flows through the admin pages in a real browser, with a real worker, with
JavaScript on and off: every action is a plain form, so both must work the same."""

import re
import time

import pytest
import requests

pytestmark = pytest.mark.e2e

FLAKY = '{"organization_id": 1, "failures": 1}'


def reload_until(page, text, timeout=15.0):
    """Reload the page until it shows ``text`` (what an operator does without the script)."""
    deadline = time.monotonic() + timeout
    while text not in page.content():
        assert time.monotonic() < deadline, f"the page never showed {text!r}"
        time.sleep(0.3)
        page.reload()


def job_status(conn, job_id):
    return conn.execute(
        "SELECT status::text FROM procrastinate_jobs WHERE id = %s", (job_id,)
    ).fetchone()[0]


def insert_job(conn, queue="default", task="diagnostics:noop", args='{"organization_id": 1}'):
    return conn.execute(
        "INSERT INTO procrastinate_jobs (queue_name, task_name, args) VALUES (%s, %s, %s)"
        " RETURNING id",
        (queue, task, args),
    ).fetchone()[0]


def test_pause_a_queue_see_a_job_wait_resume_and_see_it_run(browse, make_user, conn, worker, orgs):
    page = browse(make_user("admin@example.com", 1, "admin"))
    page.goto("/admin/queues")
    row = page.locator("tr", has=page.locator("th", has_text=re.compile(r"^\s*default")))
    row.get_by_role("button", name="Pause").click()
    page.wait_for_url("**/admin/queues")
    assert page.locator(".badge-paused").count() == 1

    job_id = insert_job(conn)
    page.goto(f"/admin/queues/jobs/{job_id}")
    assert "“default” is paused" in page.locator("main").inner_text()
    time.sleep(2)
    assert job_status(conn, job_id) == "todo"

    page.goto("/admin/queues")
    row.get_by_role("button", name="Resume").click()
    page.wait_for_url("**/admin/queues")
    page.goto(f"/admin/queues/jobs/{job_id}")
    reload_until(page, "succeeded")
    assert job_status(conn, job_id) == "succeeded"
    assert page.console_errors == []


def test_find_a_failed_job_open_it_retry_it_and_see_it_succeed(
    browse, make_user, conn, worker, orgs
):
    job_id = insert_job(conn, task="diagnostics:fail_then_succeed", args=FLAKY)
    conn.execute(
        "UPDATE procrastinate_jobs SET status = 'failed', attempts = 1 WHERE id = %s", (job_id,)
    )
    for _ in range(3):  # jobs that did not fail, which the filter must leave out
        done = insert_job(conn)
        conn.execute("UPDATE procrastinate_jobs SET status = 'succeeded' WHERE id = %s", (done,))
    page = browse(make_user("admin@example.com", 1, "admin"))
    page.goto("/admin/queues")
    page.locator("nav.admin-nav").get_by_role("link", name="Jobs").click()
    page.get_by_label("State").select_option("failed")
    page.get_by_role("button", name="Filter", exact=True).click()
    page.wait_for_url("**state=failed**")
    listed = page.locator('input[name="job_id"]')
    assert [listed.nth(i).get_attribute("value") for i in range(listed.count())] == [str(job_id)]
    page.get_by_role("link", name=str(job_id), exact=True).click()
    page.wait_for_url(f"**/admin/queues/jobs/{job_id}")
    assert page.locator(".badge-failed").first.is_visible()
    page.get_by_role("button", name="Retry", exact=True).click()
    reload_until(page, "succeeded")
    assert job_status(conn, job_id) == "succeeded"
    entry = conn.execute("SELECT action FROM audit_log WHERE target_id = %s", (str(job_id),))
    assert entry.fetchone()[0] == "job.retry"


def test_bulk_cancel_shows_a_preview_first(browse, make_user, conn, orgs):
    waiting = [insert_job(conn) for _ in range(4)]
    running = insert_job(conn)
    conn.execute("UPDATE procrastinate_jobs SET status = 'doing' WHERE id = %s", (running,))
    other = insert_job(conn, args='{"organization_id": 2}')
    page = browse(make_user("op@example.com", 1, "operator"))
    page.goto("/admin/queues/jobs?state=waiting")
    page.get_by_label("Bulk action").select_option("cancel")
    page.get_by_role("button", name="Act on every job matching these filters").click()
    summary = page.locator(".bulk-summary").inner_text()
    assert "4 jobs match these filters" in summary
    assert all(job_status(conn, job_id) == "todo" for job_id in waiting)  # nothing yet
    page.get_by_role("button", name="Cancel 4 jobs").click()
    assert [job_status(conn, job_id) for job_id in waiting] == ["cancelled"] * 4
    assert job_status(conn, running) == "doing" and job_status(conn, other) == "todo"
    assert page.console_errors == []


def test_a_viewer_sees_no_button_and_a_forged_post_is_refused(
    browse, make_user, conn, live_server, orgs
):
    job_id = insert_job(conn)
    conn.execute("UPDATE procrastinate_jobs SET status = 'failed' WHERE id = %s", (job_id,))
    page = browse(make_user("viewer@example.com", 1, "viewer"))
    for path in ("/admin/queues", f"/admin/queues/jobs/{job_id}"):
        page.goto(path)
        assert page.locator("main form[method=post] button").count() == 0, path
    # A forged POST: the viewer's own session and a valid CSRF token (the sign-out
    # form's), aimed at action routes the page did not offer.
    cookies = {c["name"]: c["value"] for c in page.context.cookies()}
    html = requests.get(f"{live_server}/admin/queues", cookies=cookies, timeout=5).text
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html).group(1)
    for action in ("retry", "delete"):
        forged = requests.post(
            f"{live_server}/admin/queues/jobs/{job_id}/{action}",
            data={"csrf_token": token},
            cookies=cookies,
            headers={"Referer": f"{live_server}/admin/queues"},
            timeout=5,
        )
        assert forged.status_code == 403, action
    assert job_status(conn, job_id) == "failed"
