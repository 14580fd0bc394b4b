"""The periodic tasks page: schedules, last runs and their outcome, next runs."""

import datetime
import re

import pytest

from webapp.admin import periodic

PAGE = "/admin/queues/periodic"
RECOVERY = "maintenance:retry_stalled_jobs"
PURGE = "maintenance:purge_finished_jobs"


def row_of(page: str, task_name: str) -> str:
    start = page.index(f'<th scope="row">{task_name}')
    return page[start : page.index("</tr>", start)]


def next_run(row: str) -> datetime.datetime:
    """The next run a row shows (the last time in it)."""
    shown = re.findall(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", row)[-1]
    return datetime.datetime.fromisoformat(shown).replace(tzinfo=datetime.UTC)


@pytest.fixture
def last_purge(conn):
    """A purge deferred five minutes ago, whose job failed; returns the job id."""
    job_id = conn.execute(
        "INSERT INTO procrastinate_jobs (queue_name, task_name, args, status)"
        " VALUES ('housekeeping', %s, '{}', 'failed') RETURNING id",
        (PURGE,),
    ).fetchone()[0]
    conn.execute(
        "INSERT INTO procrastinate_periodic_defers"
        " (task_name, periodic_id, defer_timestamp, job_id)"
        " VALUES (%(task)s, '', extract(epoch FROM now())::bigint - 3000, NULL),"
        " (%(task)s, '', floor(extract(epoch FROM now()))::bigint - 300, %(job)s)",
        {"task": PURGE, "job": job_id},
    )
    return job_id


def test_housekeeping_tasks_are_listed_with_schedule_and_next_run(sign_in, orgs):
    response = sign_in("viewer").client.get(PAGE)
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert 'id="periodic" data-refresh' in page
    now = datetime.datetime.now(datetime.UTC)
    recovery = row_of(page, RECOVERY)
    assert "<code>* * * * * */10</code>" in recovery and "every 10 seconds" in recovery
    assert "housekeeping" in recovery and "never" in recovery
    assert (
        now - datetime.timedelta(seconds=1)
        < next_run(recovery)
        <= now + datetime.timedelta(seconds=11)
    )
    purge = row_of(page, PURGE)
    assert "<code>*/10 * * * *</code>" in purge and "every 10 minutes" in purge
    assert now < next_run(purge) <= now + datetime.timedelta(minutes=10)
    assert next_run(purge).minute % 10 == 0


def test_the_last_run_and_its_outcome_are_shown_to_everyone(sign_in, last_purge):
    page = sign_in("operator").client.get(PAGE).get_data(as_text=True)
    purge = row_of(page, PURGE)
    assert '<span class="badge badge-failed">failed</span>' in purge
    assert re.search(r"\(5 min( [0-9]+ s)? ago\)", purge)
    # The job belongs to no organization: no link for people of one.
    assert f"#{last_purge}" not in page and "/admin/queues/jobs/" not in page


def test_admins_get_a_link_to_the_last_job(sign_in, last_purge):
    page = sign_in("admin").client.get(PAGE).get_data(as_text=True)
    purge = row_of(page, PURGE)
    assert f'<a href="/admin/queues/jobs/{last_purge}">job #{last_purge}</a>' in purge


def test_a_purged_job_leaves_its_last_run(sign_in, conn, orgs):
    conn.execute(
        "INSERT INTO procrastinate_periodic_defers (task_name, periodic_id, defer_timestamp)"
        " VALUES (%s, '', extract(epoch FROM now())::bigint - 20)",
        (RECOVERY,),
    )
    page = sign_in("admin").client.get(PAGE).get_data(as_text=True)
    recovery = row_of(page, RECOVERY)
    assert "job purged" in recovery and "never" not in recovery


@pytest.mark.parametrize(
    ("cron", "words"),
    [
        ("* * * * * */10", "every 10 seconds"),
        ("* * * * * *", "every second"),
        ("* * * * *", "every minute"),
        ("*/10 * * * *", "every 10 minutes"),
        ("*/1 * * * *", "every minute"),
        ("15 * * * *", "every hour at minute 15"),
        ("30 4 * * *", "every day at 04:30 UTC"),
        ("0 0 * * 1", None),
        ("*/5 1-3 * * *", None),
        ("0 */2 * * *", None),
        ("not a cron", None),
    ],
)
def test_schedules_in_words(cron, words):
    assert periodic.describe(cron) == words
