"""The workers page: heartbeats, staleness, queues and the jobs each worker runs."""

import json
import re

import pytest

PAGE = "/admin/queues/workers"


def add_worker(conn, name, *, heartbeat_age=0, queues=None, concurrency=4, registered=True):
    """A worker with a Procrastinate row whose heartbeat is ``heartbeat_age`` seconds old."""
    worker_id = conn.execute(
        "INSERT INTO procrastinate_workers (last_heartbeat)"
        " VALUES (now() - make_interval(secs => %s)) RETURNING id",
        (heartbeat_age,),
    ).fetchone()[0]
    if registered:
        conn.execute(
            "INSERT INTO worker_registry (worker_id, name, host, pid, queues, concurrency)"
            " VALUES (%s, %s, 'box-1', 4242, %s, %s)",
            (worker_id, name, queues, concurrency),
        )
    return worker_id


def run_job(conn, worker_id, organization_id, task="sms:send_notification", running_for=0):
    """A job running on the worker for ``running_for`` seconds; returns its id."""
    args = {} if organization_id is None else {"organization_id": organization_id}
    job_id = conn.execute(
        "INSERT INTO procrastinate_jobs (queue_name, task_name, args)"
        " VALUES ('default', %s, %s) RETURNING id",
        (task, json.dumps(args)),
    ).fetchone()[0]
    conn.execute(
        "UPDATE procrastinate_jobs SET status = 'doing', worker_id = %s WHERE id = %s",
        (worker_id, job_id),
    )
    conn.execute(
        "UPDATE procrastinate_events SET at = now() - make_interval(secs => %s)"
        " WHERE job_id = %s AND type = 'started'",
        (running_for, job_id),
    )
    return job_id


def row_of(page: str, name: str) -> str:
    """The table row of the worker called ``name``."""
    start = page.index(f"{name}\n")
    return page[page.rindex("<tr>", 0, start) : page.index("</tr>", start)]


@pytest.fixture
def fleet(conn, orgs):
    """A fresh worker on every queue, a stale one on two queues, and one pruned."""
    fresh = add_worker(conn, "fresh-worker", heartbeat_age=2)
    stale = add_worker(conn, "stale-worker", heartbeat_age=600, queues=["sms", "default"])
    pruned = add_worker(conn, "pruned-worker")
    conn.execute("DELETE FROM procrastinate_workers WHERE id = %s", (pruned,))
    return fresh, stale, pruned


def test_workers_show_where_they_run_what_they_serve_and_their_state(sign_in, fleet):
    response = sign_in("viewer").client.get(PAGE)
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert 'id="workers" data-refresh' in page
    fresh = row_of(page, "fresh-worker")
    assert "box-1, pid 4242" in fresh
    assert '<span class="badge badge-live">live</span>' in fresh
    assert "all queues" in fresh
    assert 2 <= float(re.search(r"\(([0-9.]+) s ago\)", fresh).group(1)) < 10
    assert '<td class="num">4</td>' in fresh
    stale = row_of(page, "stale-worker")
    assert '<span class="badge badge-stale">stale</span>' in stale
    assert "sms, default" in stale
    assert "(10 min" in stale
    pruned = row_of(page, "pruned-worker")
    assert '<span class="badge badge-stale">gone</span>' in pruned


def test_the_stale_threshold_is_the_setting(app, sign_in, fleet):
    app.config["WORKER_STALE_SECONDS"] = 900
    page = sign_in("operator").client.get(PAGE).get_data(as_text=True)
    assert "older than 15 min" in page
    assert '<span class="badge badge-live">live</span>' in row_of(page, "stale-worker")
    assert '<span class="badge badge-stale">gone</span>' in row_of(page, "pruned-worker")


def test_running_jobs_are_shown_in_scope_and_counted_otherwise(sign_in, conn, fleet):
    fresh, _, _ = fleet
    mine = run_job(conn, fresh, 1, running_for=185)
    run_job(conn, fresh, 2)
    run_job(conn, fresh, 2)
    run_job(conn, fresh, None, task="maintenance:purge_finished_jobs")
    page = sign_in("operator").client.get(PAGE).get_data(as_text=True)
    row = row_of(page, "fresh-worker")
    assert f'<a href="/admin/queues/jobs/{mine}">#{mine}</a> sms:send_notification' in row
    assert re.search(r"for 3 min [5-9] s<", row)
    assert "and 2 jobs of other organizations" in row
    assert "and 1 housekeeping job" in row
    assert row.count("<li>") == 1
    assert "maintenance:purge_finished_jobs" not in page


def test_a_worker_lists_twenty_running_jobs_and_counts_the_rest(sign_in, conn, fleet):
    fresh, _, _ = fleet
    ids = [run_job(conn, fresh, 1) for _ in range(23)]
    row = row_of(sign_in("operator").client.get(PAGE).get_data(as_text=True), "fresh-worker")
    assert row.count("<li>") == 20
    assert f"#{ids[19]}<" in row and f"#{ids[20]}<" not in row  # the longest running first
    assert "and 3 more running jobs" in row


def test_admins_see_every_running_job_or_one_organizations(sign_in, conn, fleet):
    fresh, stale, _ = fleet
    run_job(conn, fresh, 1)
    theirs = run_job(conn, stale, 2)
    housekeeping = run_job(conn, fresh, None, task="maintenance:purge_finished_jobs")
    admin = sign_in("admin")
    page = admin.client.get(PAGE).get_data(as_text=True)
    assert f">#{theirs}</a>" in page and f">#{housekeeping}</a>" in page
    assert "other organizations" not in page
    page = admin.client.get(f"{PAGE}?org=2").get_data(as_text=True)
    assert f'<a href="/admin/queues/jobs/{theirs}?org=2">#{theirs}</a>' in page
    assert "and 1 job of other organizations" in row_of(page, "fresh-worker")
    assert "and 1 housekeeping job" in row_of(page, "fresh-worker")


def test_idle_workers_say_so(sign_in, fleet):
    page = sign_in("operator").client.get(PAGE).get_data(as_text=True)
    assert '<span class="badge badge-idle">idle</span>' in row_of(page, "fresh-worker")


def test_a_worker_without_a_name_is_listed(sign_in, conn, orgs):
    worker_id = add_worker(conn, "", registered=False)
    page = sign_in("operator").client.get(PAGE).get_data(as_text=True)
    assert "(unnamed)\n" in page and f"id {worker_id}" in page


def test_workers_stopped_recently_are_listed_apart(sign_in, conn, orgs):
    recent = add_worker(conn, "stopped-recently")
    old = add_worker(conn, "stopped-long-ago")
    conn.execute("DELETE FROM procrastinate_workers WHERE id IN (%s, %s)", (recent, old))
    conn.execute(
        "UPDATE worker_registry SET stopped_at = now() - interval '1 hour' WHERE worker_id = %s",
        (recent,),
    )
    conn.execute(
        "UPDATE worker_registry SET stopped_at = now() - interval '2 days' WHERE worker_id = %s",
        (old,),
    )
    page = sign_in("operator").client.get(PAGE).get_data(as_text=True)
    assert "No worker is running." in page
    stopped = page[page.index("Stopped in the last 24 h") :]
    assert "stopped-recently" in stopped and "(1 h ago)" in stopped
    assert "stopped-long-ago" not in page


def test_no_worker(sign_in):
    page = sign_in("viewer").client.get(PAGE).get_data(as_text=True)
    assert "No worker is running." in page
    assert '<a href="/admin/queues/workers" aria-current="page">Workers</a>' in page
