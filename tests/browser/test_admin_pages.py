"""The admin pages in a real browser: every page, light and dark, desktop and phone."""

import os
import re
from pathlib import Path

import pytest

from tests.conftest import TEST_PASSWORD

VIEWPORTS = {"desktop": {"width": 1280, "height": 800}, "phone": {"width": 390, "height": 844}}


def shots_folder(tmp_path) -> Path:
    """SCREENSHOT_DIR when set (to look at the pages), else the test's own folder."""
    folder = Path(os.environ.get("SCREENSHOT_DIR") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
def busy_queues(conn, orgs):
    """Jobs in every state, an hour of throughput and a paused queue, as a page shows them."""
    conn.execute(
        "INSERT INTO procrastinate_jobs (queue_name, task_name, args, status, scheduled_at)"
        " SELECT q, 'sms:send_notification', jsonb_build_object('organization_id', 1 + i % 2,"
        " 'to', '+14155550123', 'body', 'hi'), s::procrastinate_job_status,"
        " CASE WHEN i % 5 = 0 AND s = 'todo' THEN now() + interval '1 hour' END"
        " FROM generate_series(1, 120) i,"
        " unnest(ARRAY['sms-notifications', 'email-digests', 'default']) q,"
        " LATERAL (SELECT (ARRAY['todo', 'succeeded', 'succeeded', 'failed', 'cancelled',"
        " 'aborted', 'doing'])[1 + i % 7] AS s) st"
    )
    conn.execute(
        "INSERT INTO job_minutes SELECT date_trunc('minute', now()) - m * interval '1 minute',"
        " q, '1', 20 + (m * 7) % 30, m % 4 FROM generate_series(0, 59) m,"
        " unnest(ARRAY['sms-notifications', 'email-digests']) q"
    )
    conn.execute(
        "INSERT INTO job_state_counts SELECT queue_name, args ->> 'organization_id',"
        " status::text, count(*), now() FROM procrastinate_jobs"
        " WHERE status IN ('succeeded', 'failed', 'cancelled', 'aborted') GROUP BY 1, 2, 3"
    )
    conn.execute(
        "INSERT INTO queue_settings (queue_name, paused_at, paused_by)"
        " VALUES ('email-digests', now() - interval '4 minutes', 'admin@example.com')"
    )
    failed = conn.execute(
        "SELECT id FROM procrastinate_jobs WHERE status = 'failed' ORDER BY id LIMIT 1"
    ).fetchone()[0]
    conn.execute(
        "INSERT INTO job_attempts (job_id, attempt, worker_name, outcome, started_at,"
        " finished_at, error_class, error_message, traceback) VALUES (%s, 1, 'worker-1',"
        " 'failed', now() - interval '3 seconds', now(), 'ProviderError',"
        " 'Telnyx answered 503 for +14155550123', 'Traceback (most recent call last):\n ...')",
        (failed,),
    )
    subscription = conn.execute(
        "INSERT INTO digest_subscriptions (organization_id, recipients, frequency, weekday,"
        " hour, time_zone, last_period) VALUES (1, %s, 'weekly', 1, 8, 'Europe/Paris',"
        " current_date - 3), (2, '{ops@globex.example}', 'daily', 1, 18, 'UTC', NULL)"
        " RETURNING id",
        ([f"person{n}@acme.example" for n in range(12)],),
    ).fetchone()[0]
    return {"failed": failed, "subscription": subscription}


def unlabelled(page) -> list[str]:
    """The form controls of a page that no label, aria-label or aria-labelledby names."""
    return page.evaluate(
        """() => [...document.querySelectorAll('input:not([type=hidden]), select, textarea')]
            .filter(el => !el.labels.length && !el.getAttribute('aria-label')
                          && !el.getAttribute('aria-labelledby'))
            .map(el => el.outerHTML)"""
    )


def sign_in(page, email):
    page.goto("/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(TEST_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/")


def test_every_admin_page_light_and_dark_on_desktop_and_phone(
    browser, live_server, make_user, busy_queues, tmp_path
):
    email = make_user("admin@example.com", 1, "admin")
    folder = shots_folder(tmp_path)
    for scheme in ("light", "dark"):
        for size, viewport in VIEWPORTS.items():
            context = browser.new_context(
                base_url=live_server, color_scheme=scheme, viewport=viewport
            )
            page = context.new_page()
            errors = []
            page.on("console", lambda m, errors=errors: m.type == "error" and errors.append(m.text))
            sign_in(page, email)
            page.goto("/admin/queues")
            links = page.locator("nav.admin-nav a")
            pages = [
                (links.nth(i).inner_text(), links.nth(i).get_attribute("href"))
                for i in range(links.count())
            ]
            assert pages[0][0] == "Queues"
            # Pages that no menu links to: a job, its edited retry, a bulk action's preview,
            # the job a form just deferred, and a digest subscription's forms.
            failed, subscription = busy_queues["failed"], busy_queues["subscription"]
            pages += [
                ("job", f"/admin/queues/jobs/{failed}"),
                ("job-edit", f"/admin/queues/jobs/{failed}/edit"),
                ("sms-sent", f"/admin/queues/sms?sent={failed}"),
                ("digest-new", "/admin/queues/subscriptions/new"),
                ("digest-edit", f"/admin/queues/subscriptions/{subscription}/edit"),
            ]
            for label, href in pages:
                response = page.goto(href)
                assert response.status == 200, (label, href)
                assert page.locator("h1").count() == 1
                assert unlabelled(page) == [], (label, href)
                name = re.sub(r"\W+", "-", label.lower()).strip("-")
                page.screenshot(
                    path=str(folder / f"admin-{name}-{scheme}-{size}.png"), full_page=True
                )
            page.goto("/admin/queues/jobs?state=failed")
            page.get_by_label("Bulk action").select_option("retry")
            page.get_by_role("button", name="Act on every job matching these filters").click()
            assert page.locator("h1").inner_text() == "Retry jobs: preview"
            page.screenshot(
                path=str(folder / f"admin-bulk-preview-{scheme}-{size}.png"), full_page=True
            )
            assert errors == [], errors  # no CSP refusal, no script error
            context.close()


def waiting_in_default(page) -> str:
    row = page.locator("tr", has=page.locator("th", has_text=re.compile(r"^\s*default")))
    return row.locator('td[data-label="Waiting"]').inner_text()


def shows_waiting(page, count: str, timeout: float) -> None:
    """Wait until the first queue's waiting count reads ``count``, the page left as it is."""
    cell = "document.querySelector('#overview td[data-label=Waiting]')"
    page.wait_for_function(f"() => {cell}.textContent.trim() === '{count}'", timeout=timeout)


def add_waiting(conn, count):
    conn.execute(
        "INSERT INTO procrastinate_jobs (queue_name, task_name, args)"
        " SELECT 'default', 'diagnostics:noop', '{\"organization_id\": 1}'"
        " FROM generate_series(1, %s)",
        (count,),
    )


def test_the_script_refreshes_counts_while_the_tab_is_visible_only(page, make_user, conn, orgs):
    sign_in(page, make_user("op@example.com", 1, "operator"))
    page.goto("/admin/queues")
    assert waiting_in_default(page) == "0"
    add_waiting(conn, 2)
    shows_waiting(page, "2", timeout=10_000)
    # Hidden (another tab in front): no more requests, so the count stays as it was.
    page.evaluate(
        "() => { Object.defineProperty(document, 'hidden', {value: true, configurable: true});"
        " document.dispatchEvent(new Event('visibilitychange')); }"
    )
    add_waiting(conn, 3)
    page.wait_for_timeout(7_000)
    assert waiting_in_default(page) == "2"
    # Visible again: it refreshes at once.
    page.evaluate(
        "() => { Object.defineProperty(document, 'hidden', {value: false, configurable: true});"
        " document.dispatchEvent(new Event('visibilitychange')); }"
    )
    shows_waiting(page, "5", timeout=3_000)
    assert page.console_errors == []
