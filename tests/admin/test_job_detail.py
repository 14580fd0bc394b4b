"""The job's page: payload, state, attempts, events, and who may see it."""

import json

import pytest

from tests.admin.job_rows import add_attempt, add_job, sms_args

PAGE = "/admin/queues/jobs/{}"


def page_of(person, job_id: int, query: str = ""):
    response = person.client.get(PAGE.format(job_id) + query)
    return response, response.get_data(as_text=True)


def test_the_page_shows_the_job(sign_in, conn):
    job_id = add_job(conn, priority=7, lock="report-7")
    response, page = page_of(sign_in("operator"), job_id)
    assert response.status_code == 200
    assert f"<h1>Job {job_id} " in page
    assert '<span class="badge badge-waiting">waiting</span>' in page
    assert "<dd>sms-notifications</dd>" in page
    assert "<dd>7</dd>" in page
    assert "<dd>report-7</dd>" in page
    assert '<pre class="payload"' in page
    assert "&#34;+14155550123&#34;" in page or '"+14155550123"' in page
    assert 'id="job-live" data-refresh' in page
    assert "deferred" in page  # the timeline


def test_a_scheduled_job_is_shown_as_scheduled(sign_in, conn):
    job_id = add_job(conn, scheduled="2999-01-01T00:00:00Z")
    _, page = page_of(sign_in("operator"), job_id)
    assert '<span class="badge badge-scheduled">scheduled</span>' in page
    assert "2999-01-01 00:00:00" in page


def test_attempts_show_errors_and_tracebacks_to_admins_only(sign_in, conn):
    job_id = add_job(conn, status="failed")
    add_attempt(conn, job_id)
    _, page = page_of(sign_in("operator"), job_id)
    assert "ProviderDown" in page and "the SMS provider is down" in page
    assert "worker-a" in page
    assert '<span class="badge badge-failed">failed</span>' in page
    assert "/srv/secret/path.py" not in page
    _, page = page_of(sign_in("admin"), job_id)
    assert "<summary>Traceback</summary>" in page
    assert "/srv/secret/path.py" in page


def test_the_timeline_runs_oldest_first(sign_in, conn):
    job_id = add_job(conn, status="succeeded")
    _, page = page_of(sign_in("operator"), job_id)
    timeline = page[page.index('class="timeline"') :]
    assert timeline.index("deferred") < timeline.index("started") < timeline.index("succeeded")


def test_retry_links_go_both_ways(sign_in, conn):
    original, copy = add_job(conn, status="cancelled"), add_job(conn)
    conn.execute("INSERT INTO job_retries (job_id, retry_job_id) VALUES (%s, %s)", (original, copy))
    person = sign_in("operator")
    assert f'href="/admin/queues/jobs/{copy}">job {copy}</a>' in page_of(person, original)[1]
    assert f'href="/admin/queues/jobs/{original}">job {original}</a>' in page_of(person, copy)[1]


def test_a_big_payload_is_cut_with_a_link_to_the_whole(sign_in, conn):
    body = "x" * 40_000
    job_id = add_job(conn, args=sms_args(body=body))
    person = sign_in("operator")
    _, page = page_of(person, job_id)
    assert body not in page
    assert "x" * 10_000 in page
    assert f'href="/admin/queues/jobs/{job_id}/payload"' in page
    whole = person.client.get(f"/admin/queues/jobs/{job_id}/payload")
    assert whole.status_code == 200
    assert whole.mimetype == "application/json"
    assert json.loads(whole.get_data(as_text=True))["body"] == body


def test_a_small_payload_has_no_cut_note(sign_in, conn):
    _, page = page_of(sign_in("operator"), add_job(conn))
    assert "/payload" not in page


@pytest.mark.parametrize("path", ["", "/payload"])
def test_another_organizations_job_is_a_404(sign_in, conn, path):
    job_id = add_job(conn, organization_id=2)
    assert sign_in("operator").client.get(PAGE.format(job_id) + path).status_code == 404
    assert sign_in("viewer").client.get(PAGE.format(job_id) + path).status_code == 404
    assert sign_in("admin").client.get(PAGE.format(job_id) + path).status_code == 200


def test_an_admin_filtered_to_another_organization_gets_a_404(sign_in, conn):
    job_id = add_job(conn, organization_id=2)
    assert page_of(sign_in("admin"), job_id, "?org=1")[0].status_code == 404
    assert page_of(sign_in("admin", email="a2@example.com"), job_id, "?org=2")[0].status_code == 200


def test_housekeeping_jobs_are_for_admins_only(sign_in, conn):
    job_id = add_job(conn, queue="housekeeping", task="housekeeping:prune", args={})
    assert page_of(sign_in("operator"), job_id)[0].status_code == 404
    assert page_of(sign_in("admin"), job_id)[0].status_code == 200


def test_an_unknown_job_is_a_404(sign_in):
    assert page_of(sign_in("admin"), 999_999)[0].status_code == 404


def test_viewers_see_no_action_button(sign_in, conn):
    job_ids = [add_job(conn, status=s) for s in ("todo", "doing", "failed", "succeeded")]
    person = sign_in("viewer")
    for job_id in job_ids:
        _, page = page_of(person, job_id)
        assert "<button" not in page.split('class="admin-nav"')[1]
        assert "/edit" not in page


@pytest.mark.parametrize(
    ("status", "shown", "hidden"),
    [
        ("todo", {"cancel"}, {"retry", "abort", "delete", "edit"}),
        ("doing", {"abort"}, {"retry", "cancel", "delete", "edit"}),
        ("failed", {"retry", "delete", "edit"}, {"cancel", "abort"}),
        ("cancelled", {"retry", "delete", "edit"}, {"cancel", "abort"}),
        ("aborted", {"retry", "delete", "edit"}, {"cancel", "abort"}),
        ("succeeded", {"delete"}, {"retry", "cancel", "abort", "edit"}),
    ],
)
def test_only_the_actions_that_apply_are_shown(sign_in, conn, status, shown, hidden):
    job_id = add_job(conn, status=status)
    _, page = page_of(sign_in("operator"), job_id)
    for action in shown:
        assert f"/admin/queues/jobs/{job_id}/{action}" in page
    for action in hidden:
        assert f"/admin/queues/jobs/{job_id}/{action}" not in page


def test_a_job_retried_before_offers_no_retry(sign_in, conn):
    original, copy = add_job(conn, status="cancelled"), add_job(conn)
    conn.execute("INSERT INTO job_retries (job_id, retry_job_id) VALUES (%s, %s)", (original, copy))
    _, page = page_of(sign_in("operator"), original)
    assert f"/jobs/{original}/retry" not in page and f"/jobs/{original}/edit" not in page


def test_a_platform_task_offers_no_retry_to_a_tenant(sign_in, conn):
    job_id = add_job(
        conn, task="diagnostics:noop", queue="default", status="failed", args={"organization_id": 1}
    )
    assert f"/jobs/{job_id}/retry" not in page_of(sign_in("operator"), job_id)[1]
    assert f"/jobs/{job_id}/retry" in page_of(sign_in("admin"), job_id)[1]


def test_the_waiting_job_says_why_it_waits(sign_in, conn):
    _, page = page_of(sign_in("operator"), add_job(conn))
    assert "Why is this job not running?" in page
    assert "No live worker serves the queue “sms-notifications”" in page


def test_a_finished_job_has_no_diagnosis(sign_in, conn):
    _, page = page_of(sign_in("operator"), add_job(conn, status="succeeded"))
    assert "Why is this job not running?" not in page


def test_arguments_python_cannot_use_do_not_break_the_page(sign_in, conn):
    job_id = add_job(conn, args={"organization_id": 1, "deep": [[[["</pre><script>"]]]]})
    response, page = page_of(sign_in("operator"), job_id)
    assert response.status_code == 200
    assert "</pre><script>" not in page


def test_an_sms_job_shows_its_message_and_delivery_status(sign_in, conn):
    job_id = add_job(conn, status="failed")
    conn.execute(
        "INSERT INTO sms_messages (organization_id, job_id, provider, to_number, segments,"
        " provider_message_id, status, error_code, error_message, accepted_at, status_at)"
        " VALUES (1, %s, 'telnyx', '+14155550123', 2, 'msg-40018', 'delivery_failed',"
        " '40008', 'Undeliverable', now(), now())",
        (job_id,),
    )
    _, page = page_of(sign_in("operator"), job_id)
    section = page[page.index('id="message-heading"') :]
    assert '<span class="badge badge-sms-delivery_failed">delivery failed</span>' in section
    assert "msg-40018" in section and "<dd>2</dd>" in section
    assert "40008 Undeliverable" in section


def test_a_job_without_a_message_has_no_message_section(sign_in, conn):
    _, page = page_of(sign_in("operator"), add_job(conn))
    assert 'id="message-heading"' not in page
