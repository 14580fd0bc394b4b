"""The job list: filters, keyset pages, tenancy, housekeeping, jumping to a job."""

import re

import pytest

from tests.admin.bulk_rows import add_jobs, listed_ids
from tests.admin.conftest import csrf_of

JOBS = "/admin/queues/jobs"


@pytest.fixture
def jobs(conn, orgs):
    """Jobs of Acme (1) in every state, two of Globex (2), and a housekeeping run."""
    made = {
        state: add_jobs(conn, 1, state=state)
        for state in ("waiting", "scheduled", "running", "succeeded", "failed", "cancelled")
    }
    made["aborted"] = add_jobs(conn, 1, state="aborted", queue="email-digests")
    made["globex"] = add_jobs(conn, 2, organization=2)
    made["housekeeping"] = add_jobs(
        conn, 1, organization=None, queue="housekeeping", task="maintenance:purge_finished_jobs"
    )
    return made


def page_of(actions, query=""):
    response = actions.client.get(f"{JOBS}{query}")
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_data(as_text=True)


def acme(jobs):
    return [
        i for state, ids in jobs.items() if state not in ("globex", "housekeeping") for i in ids
    ]


def test_an_operator_sees_their_jobs_newest_first(sign_in, jobs):
    page = page_of(sign_in("operator"))
    assert listed_ids(page) == sorted(acme(jobs), reverse=True)
    assert 'id="job-table" data-refresh' in page
    row = re.search(rf'/jobs/{jobs["succeeded"][0]}".*?</tr>', page, re.S).group(0)
    assert "sms:send_notification" in row and "Acme" in row
    assert '<span class="badge badge-succeeded">succeeded</span>' in row
    assert re.search(r'<td class="num">1</td>', row)  # one run


@pytest.mark.parametrize("state", ["waiting", "scheduled", "running", "succeeded", "failed"])
def test_the_state_filter(sign_in, jobs, state):
    page = page_of(sign_in("operator"), f"?state={state}")
    assert listed_ids(page) == jobs[state]
    assert f'<option value="{state}" selected>' in page


def test_the_queue_and_task_filters(sign_in, jobs):
    operator = sign_in("operator")
    assert listed_ids(page_of(operator, "?queue=email-digests")) == jobs["aborted"]
    assert listed_ids(page_of(operator, "?task=email:send_digest")) == jobs["aborted"]
    assert listed_ids(page_of(operator, "?queue=default")) == []
    assert "No job matches these filters." in page_of(operator, "?queue=default")


def test_the_time_range_filter(sign_in, jobs, conn):
    """Jobs are placed in time by their 'deferred' event, an hour apart, oldest first."""
    ids = sorted(acme(jobs) + jobs["globex"] + jobs["housekeeping"])
    for hours, job_id in enumerate(ids):
        conn.execute(
            "UPDATE procrastinate_events SET at = timestamptz '2026-01-01 00:00Z' + %s * interval"
            " '1 hour' WHERE job_id = %s AND type = 'deferred'",
            (hours, job_id),
        )
    operator = sign_in("operator")
    page = page_of(operator, "?since=2026-01-01T02:00&until=2026-01-01T05:00")
    assert listed_ids(page) == [i for i in sorted(acme(jobs), reverse=True) if i in ids[2:5]]
    assert listed_ids(page_of(operator, "?since=2026-01-01T06:00:00%2B01:00")) == [
        i for i in sorted(acme(jobs), reverse=True) if i in ids[5:]
    ]
    assert listed_ids(page_of(operator, "?since=2027-01-01T00:00")) == []


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("?state=stuck", "The state filter must be one of"),
        ("?state=todo", "The state filter must be one of"),
        ("?queue=nope", "The queue filter must be one of"),
        ("?queue=housekeeping", "The queue filter must be one of"),  # not for operators
        ("?task=maintenance:purge_finished_jobs", "The task filter must be one of"),
        ("?since=yesterday", "The since filter must be a time"),
        ("?until=0000-01-01", "The until filter must be a time"),
        ("?since=0001-01-01T00:00", "between 1970 and 9998"),
        ("?since=2026-02-01&until=2026-01-01", "must end after it starts"),
        ("?before=abc", "The before value must be a job id"),
        ("?before=0", "The before value must be a job id"),
        ("?before=99999999999999999999", "The before value must be a job id"),
        ("?q=" + "x" * 201, "at most 200 characters"),
        ("?q=a%00b", "at most 200 characters"),
    ],
)
def test_bad_filter_values_are_a_400_page(sign_in, orgs, query, message):
    response = sign_in("operator").client.get(f"{JOBS}{query}")
    assert response.status_code == 400
    assert message in response.get_data(as_text=True)


def test_pages_follow_the_id_cursor_without_overlap(sign_in, conn, orgs):
    ids = add_jobs(conn, 120, state="succeeded")
    operator = sign_in("operator")
    first = page_of(operator)
    assert listed_ids(first) == ids[::-1][:50]
    assert "Newest</a>" not in first
    older = re.search(r'href="(/admin/queues/jobs\?[^"]*before=(\d+)[^"]*)">Older', first)
    assert int(older.group(2)) == ids[::-1][49]
    second = operator.client.get(older.group(1).replace("&amp;", "&")).get_data(as_text=True)
    assert listed_ids(second) == ids[::-1][50:100]
    assert "Newest</a>" in second
    cursor = re.search(r"before=(\d+)[^\"]*\">Older", second).group(1)
    third = page_of(operator, f"?before={cursor}")
    assert listed_ids(third) == ids[::-1][100:]
    assert ">Older<" not in third


def test_the_cursor_keeps_the_filters(sign_in, conn, orgs):
    failed = add_jobs(conn, 60, state="failed")
    add_jobs(conn, 60, state="succeeded")
    page = page_of(sign_in("operator"), "?state=failed")
    link = re.search(r'href="([^"]*)">Older', page).group(1)
    assert "state=failed" in link and f"before={failed[::-1][49]}" in link


def test_an_operator_never_sees_another_organizations_jobs(sign_in, jobs):
    operator = sign_in("operator")
    assert not set(jobs["globex"]) & set(listed_ids(page_of(operator, "?org=2")))
    assert listed_ids(page_of(operator, "?org=2")) == sorted(acme(jobs), reverse=True)
    globex = sign_in("operator", 2)
    assert listed_ids(page_of(globex)) == sorted(jobs["globex"], reverse=True)


def test_admins_see_every_organization_or_the_one_they_filter(sign_in, jobs):
    admin = sign_in("admin")
    everyone = sorted(acme(jobs) + jobs["globex"], reverse=True)
    assert listed_ids(page_of(admin)) == everyone
    page = page_of(admin, "?org=2")
    assert listed_ids(page) == sorted(jobs["globex"], reverse=True)
    assert '<input type="hidden" name="org" value="2">' in page  # the filter form keeps it
    assert "Globex" in page


def test_housekeeping_runs_are_for_admins_who_ask_for_their_queue(sign_in, jobs):
    admin = sign_in("admin")
    assert not set(jobs["housekeeping"]) & set(listed_ids(page_of(admin)))
    assert listed_ids(page_of(admin, "?queue=housekeeping")) == jobs["housekeeping"]
    assert listed_ids(page_of(admin, "?task=maintenance:purge_finished_jobs")) == []


def test_jumping_to_a_job_by_id_or_idempotency_key(sign_in, conn, jobs):
    keyed = add_jobs(conn, 1, key="order-42")
    add_jobs(conn, 1, organization=2, key="order-43")
    operator = sign_in("operator")
    response = operator.client.get(f"{JOBS}?q={jobs['failed'][0]}")
    assert response.status_code == 302
    assert response.headers["Location"] == f"/admin/queues/jobs/{jobs['failed'][0]}"
    response = operator.client.get(f"{JOBS}?q=order-42")
    assert response.headers["Location"] == f"/admin/queues/jobs/{keyed[0]}"
    for other in (jobs["globex"][0], "order-43", "nothing"):
        page = page_of(operator, f"?q={other}")
        assert "No job matches" in page and listed_ids(page) == []


def test_an_admin_jumps_to_any_organizations_job_by_key(sign_in, conn, orgs):
    keyed = add_jobs(conn, 1, organization=2, key="order-43")
    response = sign_in("admin").client.get(f"{JOBS}?q=order-43")
    assert response.headers["Location"] == f"/admin/queues/jobs/{keyed[0]}"


def test_a_key_used_again_lists_its_jobs(sign_in, conn, orgs):
    first = add_jobs(conn, 1, state="succeeded", key="nightly")
    second = add_jobs(conn, 1, key="nightly")
    page = page_of(sign_in("operator"), "?q=nightly")
    assert "Several jobs match" in page
    assert listed_ids(page) == second + first


def test_writers_get_checkboxes_and_the_bulk_form(sign_in, jobs):
    page = page_of(sign_in("operator"))
    assert page.count('name="job_id"') == len(acme(jobs))
    assert 'form="bulk-form"' in page and 'id="bulk-form"' in page
    assert "Act on the selected jobs" in page and "Act on every job matching these filters" in page


def test_viewers_get_no_checkbox_and_may_not_post(sign_in, jobs):
    viewer = sign_in("viewer")
    page = page_of(viewer)
    assert 'name="job_id"' not in page and "bulk-form" not in page
    forged = {"action": "cancel", "target": "matching", "csrf_token": csrf_of(page)}
    response = viewer.client.post("/admin/queues/bulk/preview", data=forged)
    assert response.status_code == 403


def test_the_task_choices_are_the_readers_own(sign_in, orgs):
    admin = page_of(sign_in("admin"))
    assert '<option value="maintenance:purge_finished_jobs">' in admin
    assert "builtin" not in admin
    operator = page_of(sign_in("operator"))
    assert '<option value="sms:send_notification">' in operator
    assert "diagnostics:noop" not in operator and "maintenance:" not in operator
