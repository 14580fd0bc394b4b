"""The overview: counts by state per queue, the last hour, pauses, workers, scope."""

import re

import pytest

from webapp.admin import sparkline

OVERVIEW = "/admin/queues"


@pytest.fixture
def jobs(conn, orgs):
    """Insert jobs in a state: ``jobs(n, status, org=1, queue='default', later=False)``."""

    def add(count, status="todo", org=1, queue="default", later=False):
        args = "{}" if org is None else f'{{"organization_id": {org}}}'
        ids = [
            row[0]
            for row in conn.execute(
                "INSERT INTO procrastinate_jobs (queue_name, task_name, args, scheduled_at)"
                " SELECT %s, 'diagnostics:noop', %s::jsonb,"
                " CASE WHEN %s THEN now() + interval '1 hour' END"
                " FROM generate_series(1, %s) RETURNING id",
                (queue, args, later, count),
            )
        ]
        if status != "todo":
            conn.execute(
                "UPDATE procrastinate_jobs SET status = %s::procrastinate_job_status"
                " WHERE id = ANY(%s)",
                (status, ids),
            )
        return ids

    return add


def text(html: str) -> list[str]:
    return re.sub(r"<[^>]+>", " ", html).split()


def row_of(page: str, queue: str) -> list[list[str]]:
    """The words of each cell of a queue's row (after its name)."""
    for row in re.findall(r"<tr>(.*?)</tr>", page, re.S):
        name = re.search(r'<th scope="row"[^>]*>(.*?)</th>', row, re.S)
        if name and text(name.group(1))[:1] == [queue]:
            return [text(cell) for cell in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)]
    raise AssertionError(f"no row for {queue}")


def count_finished(conn):
    """What the housekeeping task does every minute."""
    conn.execute(
        "INSERT INTO job_state_counts"
        " SELECT queue_name, coalesce(args ->> 'organization_id', ''), status::text, count(*),"
        " now() FROM procrastinate_jobs"
        " WHERE status IN ('succeeded', 'failed', 'cancelled', 'aborted') GROUP BY 1, 2, 3"
    )


def test_counts_by_state_per_queue(sign_in, jobs, conn):
    jobs(3)
    jobs(2, later=True)
    jobs(1, "doing")
    jobs(4, "succeeded")
    jobs(2, "failed")
    jobs(1, "cancelled")
    jobs(1, "aborted")
    jobs(5, queue="sms-notifications")
    count_finished(conn)
    page = sign_in("operator").client.get(OVERVIEW).get_data(as_text=True)
    cells = row_of(page, "default")
    assert cells[1:8] == [["3"], ["2"], ["1"], ["4"], ["2"], ["1"], ["1"]]
    assert row_of(page, "sms-notifications")[1] == ["5"]
    assert "Finished jobs were counted" in page


def test_tenants_see_their_own_counts_and_no_housekeeping(sign_in, jobs, conn):
    jobs(3, org=1)
    jobs(7, org=2)
    jobs(4, org=None, queue="housekeeping")
    jobs(2, "failed", org=2)
    count_finished(conn)
    page = sign_in("operator", 1).client.get(OVERVIEW).get_data(as_text=True)
    assert row_of(page, "default")[1] == ["3"]
    assert row_of(page, "default")[5] == ["0"]
    assert "Housekeeping" not in page and ">housekeeping<" not in page
    admin = sign_in("admin").client
    page = admin.get(OVERVIEW).get_data(as_text=True)
    assert row_of(page, "default")[1] == ["10"]
    assert row_of(page, "housekeeping")[1] == ["4"]
    assert row_of(page, "default")[5] == ["2"]
    page = admin.get(f"{OVERVIEW}?org=2").get_data(as_text=True)
    assert row_of(page, "default")[1] == ["7"]
    assert ">housekeeping<" not in page


def test_oldest_waiting_and_last_hour(sign_in, jobs, conn):
    (old,) = jobs(1)
    jobs(1)
    conn.execute(
        "UPDATE procrastinate_events SET at = now() - interval '10 minutes' WHERE job_id = %s",
        (old,),
    )
    conn.execute(
        "INSERT INTO job_minutes VALUES"
        " (date_trunc('minute', now()), 'default', '1', 30, 2),"
        " (date_trunc('minute', now()) - interval '5 minutes', 'default', '1', 12, 1),"
        " (date_trunc('minute', now()) - interval '2 hours', 'default', '1', 999, 999),"
        " (date_trunc('minute', now()), 'default', '2', 500, 0)"
    )
    page = sign_in("operator").client.get(OVERVIEW).get_data(as_text=True)
    cells = row_of(page, "default")
    assert " ".join(cells[8]).startswith("10 min")
    assert cells[9][-4:] == ["42", "ended,", "3", "failed"]
    assert "42 runs ended in the last hour, at most 30 in a minute" in page


def test_paused_queues_and_live_workers(sign_in, conn):
    conn.execute(
        "INSERT INTO queue_settings (queue_name, paused_at, paused_by)"
        " VALUES ('default', now() - interval '3 minutes', 'admin@example.com')"
    )
    worker_id = conn.execute("SELECT procrastinate_register_worker_v1()").fetchone()[0]
    conn.execute(
        "INSERT INTO worker_registry (worker_id, name, queues, concurrency)"
        " VALUES (%s, 'w', ARRAY['sms-notifications'], 4)",
        (worker_id,),
    )
    page = sign_in("viewer").client.get(OVERVIEW).get_data(as_text=True)
    assert "paused 3 min" in page
    assert row_of(page, "sms-notifications")[0] == ["1"]
    assert row_of(page, "default")[0] == ["none"]


def test_the_counts_refresh_without_the_rest_of_the_page(sign_in):
    page = sign_in("viewer").client.get(OVERVIEW).get_data(as_text=True)
    assert '<div id="overview" data-refresh>' in page
    assert "<script" not in page.split("</head>", 1)[1]  # no inline script


def test_the_sparkline_scales_to_the_busiest_minute():
    line = sparkline.draw({0: 10, 59: 5})
    points = [tuple(map(float, p.split(","))) for p in line.points.split()]
    assert len(points) == 60
    assert points[-1] == (120.0, 1.0)  # now, the peak, at the top
    assert points[0][1] == pytest.approx(12.0)  # an hour ago: half the peak
    assert line.total == 15 and line.peak == 10
    assert sparkline.draw({}).label == "0 runs ended in the last hour, at most 0 in a minute"
