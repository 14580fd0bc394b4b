"""The failures page: failed runs grouped by task and normalised error, scoped, and fast."""

import asyncio
import datetime
import re

import psycopg
import pytest

from tasks import queues
from tests.admin.jobrows import DIGEST_TASK, SMS_TASK, add_attempt, add_job
from webapp.store import attempts as attempts_store

PAGE = "/admin/queues/failures"
HOUSEKEEPING_TASK = "maintenance:purge_finished_jobs"
MINUTES = datetime.timedelta(minutes=1)
HOURS = datetime.timedelta(hours=1)


def pattern(conn, message):
    return conn.execute("SELECT howdah_error_pattern(%s)", (message,)).fetchone()[0]


def key(conn, error_class, message):
    return conn.execute("SELECT howdah_error_key(%s, %s)", (error_class, message)).fetchone()[0]


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("timeout after 31 s for +14155550123", "timeout after <n> s for <phone>"),
        (
            "Twilio error 21211: The 'To' number +1 (415) 555-0199 is not a valid phone number.",
            "Twilio error <n>: The <str> number <phone> is not a valid phone number.",
        ),
        (
            "SMTP 550 5.1.1 <bob.smith@example.co.uk>: Recipient address rejected",
            "SMTP <n> <n>.<n> <<email>>: Recipient address rejected",
        ),
        ("KeyError: 'organization_id'", "KeyError: <str>"),
        (
            'digest "weekly" for organization 42: 3 of 12 recipients bounced',
            "digest <str> for organization <n>: <n> of <n> recipients bounced",
        ),
        (
            "provider answered 503 for message 3f2a9c1e-1b2c-4d5e-8f90-123456789abc",
            "provider answered <n> for message <uuid>",
        ),
        ("lock held by 0x7f3a2b1c9d, session deadbeef1234", "lock held by <hex>, session <hex>"),
        ("connection to 10.0.3.7:587 refused", "connection to <n>.<n>:<n> refused"),
        ("  spaces\n\tand  lines  ", "spaces and lines"),
        ("can't reach the provider", "can't reach the provider"),
        (None, ""),
    ],
)
def test_messages_are_normalised(conn, message, expected):
    assert pattern(conn, message) == expected


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("timeout after 31 s for +14155550123", "timeout after 29 s for +14155550199"),
        ("mailbox full: ann@example.com", "mailbox full: bo.b+tag@mail.example.org"),
        ("no such job 'a1'", "no such job 'zz-top'"),
        (
            "request 3f2a9c1e-1b2c-4d5e-8f90-123456789abc failed",
            "request 00000000-0000-0000-0000-000000000000 failed",
        ),
    ],
)
def test_messages_that_differ_only_in_values_share_a_key(conn, first, second):
    assert key(conn, "ProviderError", first) == key(conn, "ProviderError", second)


def test_the_class_and_the_words_tell_errors_apart(conn):
    timeout = key(conn, "TimeoutError", "timeout after 31 s")
    assert key(conn, "ProviderError", "timeout after 31 s") != timeout
    assert key(conn, "TimeoutError", "connection refused after 31 s") != timeout
    assert len(timeout) == 16


def test_failed_attempts_are_grouped_and_keyed(conn, orgs):
    first, second, other = (add_job(conn, orgs.a) for _ in range(3))
    add_attempt(conn, first, message="timeout after 31 s for +14155550123")
    add_attempt(conn, second, message="timeout after 29 s for +14155550199")
    add_attempt(conn, other, error_class="SmtpError", message="SMTP 550 for a@example.com")
    add_attempt(conn, other, outcome="succeeded")
    rows = conn.execute(
        "SELECT a.organization_id, a.error_key, g.task_name, g.pattern FROM job_attempts a"
        " LEFT JOIN failure_groups g ON g.id = a.failure_group_id ORDER BY a.job_id, a.attempt"
    ).fetchall()
    assert rows[0] == (
        orgs.a,
        key(conn, "TimeoutError", "timeout after 1 s for +1555555555"),
        SMS_TASK,
        "timeout after <n> s for <phone>",
    )
    assert rows[1] == rows[0]
    assert rows[2][3] == "SMTP <n> for <email>"
    assert rows[3] == (orgs.a, None, None, None)  # a success is in no group
    assert conn.execute("SELECT count(*) FROM failure_groups").fetchone()[0] == 2


def test_the_worker_s_rows_are_grouped_without_reading_the_job(db_url, conn, orgs):
    """The worker names the task, queue and organization: the job's row is not read (it
    may be locked, or gone)."""
    row = (
        404,
        1,
        "w1",
        "failed",
        now(),
        now(),
        "SmtpError",
        "550 for a@example.com",
        None,
        None,
        None,
        DIGEST_TASK,
        queues.EMAIL,
        orgs.b,
    )
    asyncio.run(insert_attempts(db_url, [row]))
    group = conn.execute(
        "SELECT g.organization_id, g.task_name, g.housekeeping, g.pattern FROM job_attempts a"
        " JOIN failure_groups g ON g.id = a.failure_group_id"
    ).fetchone()
    assert group == (orgs.b, DIGEST_TASK, False, "<n> for <email>")


def test_a_lost_run_whose_failure_arrives_later_joins_its_group(conn, orgs):
    job = add_job(conn, orgs.a)
    add_attempt(conn, job, outcome="lost", attempt=1)
    assert conn.execute("SELECT count(*) FROM failure_groups").fetchone()[0] == 0
    conn.execute(
        "UPDATE job_attempts SET outcome = 'failed', error_class = 'TimeoutError',"
        " error_message = 'timeout after 3 s' WHERE job_id = %s",
        (job,),
    )
    group = conn.execute("SELECT failure_group_id, error_key FROM job_attempts").fetchone()
    assert group[0] is not None
    assert group[1] == key(conn, "TimeoutError", "timeout after 9 s")


def test_the_page_shows_groups_with_their_windows(sign_in, conn, orgs):
    jobs = [add_job(conn, orgs.a) for _ in range(4)]
    for job, ago in zip(jobs, (30 * MINUTES, 3 * HOURS, 47 * HOURS, 30 * HOURS), strict=True):
        add_attempt(conn, job, ago=ago, message=f"timeout after {ago.seconds % 60} s")
    page = sign_in("operator").client.get(PAGE).get_data(as_text=True)
    row = one_row(page, "timeout after &lt;n&gt; s")
    # 30 min ago is in both windows; 3 h ago in the day's only; 30 h and 47 h in neither.
    assert cells(row)[2:4] == ["1", "2"]
    first_seen = conn.execute("SELECT min(finished_at) FROM job_attempts").fetchone()[0]
    last_seen = conn.execute("SELECT max(finished_at) FROM job_attempts").fetchone()[0]
    assert first_seen.strftime("%Y-%m-%d %H:%M:%S") in row
    assert f'datetime="{last_seen.isoformat()}"' in row
    assert ">30 min" in row


def test_first_seen_outlives_the_attempts_of_deleted_jobs(sign_in, conn, orgs):
    old, new = add_job(conn, orgs.a), add_job(conn, orgs.a)
    add_attempt(conn, old, ago=72 * HOURS)
    add_attempt(conn, new, ago=10 * MINUTES)
    first_seen = conn.execute("SELECT min(finished_at) FROM job_attempts").fetchone()[0]
    conn.execute("DELETE FROM job_attempts WHERE job_id = %s", (old,))
    conn.execute("DELETE FROM procrastinate_jobs WHERE id = %s", (old,))
    row = one_row(sign_in("operator").client.get(PAGE).get_data(as_text=True), "timeout after")
    assert first_seen.strftime("%Y-%m-%d %H:%M:%S") in row


def test_groups_are_per_task_and_most_recent_first(sign_in, conn, orgs):
    add_attempt(conn, add_job(conn, orgs.a), ago=2 * HOURS)
    add_attempt(conn, add_job(conn, orgs.a, DIGEST_TASK, queue=queues.EMAIL), ago=MINUTES)
    page = sign_in("operator").client.get(PAGE).get_data(as_text=True)
    assert page.index(DIGEST_TASK) < page.index(SMS_TASK)


def test_an_operator_sees_only_their_organization(sign_in, conn, orgs):
    add_attempt(conn, add_job(conn, orgs.a), message="Acme's own trouble")
    add_attempt(conn, add_job(conn, orgs.b), message="Globex trouble")
    page = sign_in("operator", orgs.a).client.get(f"{PAGE}?org={orgs.b}").get_data(as_text=True)
    assert "Acme&#39;s own trouble" in page
    assert "Globex trouble" not in page
    viewer = sign_in("viewer", orgs.b).client.get(PAGE).get_data(as_text=True)
    assert "Globex trouble" in viewer
    assert "Acme&#39;s own trouble" not in viewer


def test_an_admin_sees_every_organization_or_the_one_chosen(sign_in, conn, orgs):
    add_attempt(conn, add_job(conn, orgs.a), message="Acme trouble")
    add_attempt(conn, add_job(conn, orgs.b), message="Globex trouble")
    admin = sign_in("admin").client
    page = admin.get(PAGE).get_data(as_text=True)
    assert "Acme trouble" in page and "Globex trouble" in page
    assert "<td>Globex</td>" in page  # the organization column, when all are shown
    chosen = admin.get(f"{PAGE}?org={orgs.b}").get_data(as_text=True)
    assert "Globex trouble" in chosen and "Acme trouble" not in chosen


def test_housekeeping_failures_are_apart_and_for_admins_only(sign_in, conn, orgs):
    housekeeping = add_job(conn, None, HOUSEKEEPING_TASK, queue=queues.HOUSEKEEPING)
    add_attempt(conn, housekeeping, error_class="OperationalError", message="lock timeout")
    add_attempt(conn, add_job(conn, orgs.a), message="tenant trouble")
    page = sign_in("admin").client.get(PAGE).get_data(as_text=True)
    tenants, apart = page.split('id="housekeeping-failure-groups"')
    assert "tenant trouble" in tenants and HOUSEKEEPING_TASK not in tenants
    assert HOUSEKEEPING_TASK in apart and "tenant trouble" not in apart
    # Housekeeping belongs to no organization: not shown once one is chosen.
    chosen = sign_in("admin", email="second@example.com").client.get(f"{PAGE}?org={orgs.a}")
    assert HOUSEKEEPING_TASK not in chosen.get_data(as_text=True)
    operator = sign_in("operator").client.get(PAGE).get_data(as_text=True)
    assert "housekeeping-failure-groups" not in operator
    assert HOUSEKEEPING_TASK not in operator


def test_each_group_links_to_its_failed_jobs(sign_in, conn, orgs):
    add_attempt(conn, add_job(conn, orgs.b), message="timeout after 3 s")
    add_attempt(conn, add_job(conn, None, HOUSEKEEPING_TASK, queue=queues.HOUSEKEEPING))
    error = key(conn, "TimeoutError", "timeout after 1 s")
    page = sign_in("admin").client.get(PAGE).get_data(as_text=True)
    assert (
        f'href="/admin/queues/jobs?state=failed&amp;task=sms:send_notification&amp;error={error}'
        f'&amp;org={orgs.b}"' in page
    )
    assert f"task={HOUSEKEEPING_TASK}&amp;error=" in page
    assert f"queue={queues.HOUSEKEEPING}" in page


def test_the_link_lists_the_jobs_of_that_failure_and_no_other(sign_in, conn, orgs):
    timeouts = [add_job(conn, orgs.a, status="failed") for _ in range(2)]
    for job_id, seconds in zip(timeouts, (31, 29), strict=True):
        add_attempt(conn, job_id, message=f"timeout after {seconds} s for +14155550123")
    refused = add_job(conn, orgs.a, status="failed")
    add_attempt(conn, refused, error_class="ProviderError", message="number refused")
    other_tenant = add_job(conn, orgs.b, status="failed")
    add_attempt(conn, other_tenant, message="timeout after 5 s for +14155550123")
    operator = sign_in("operator").client
    page = operator.get(PAGE).get_data(as_text=True)
    error = key(conn, "TimeoutError", "timeout after 1 s for +14155550123")
    link = re.search(rf'href="([^"]*error={error}[^"]*)"', page).group(1).replace("&amp;", "&")
    listed = operator.get(link).get_data(as_text=True)
    shown = {int(n) for n in re.findall(r'name="job_id" value="(\d+)"', listed)}
    assert shown == set(timeouts)


def test_the_tables_refresh(sign_in, conn, orgs):
    page = sign_in("admin").client.get(PAGE).get_data(as_text=True)
    assert 'id="failure-groups" data-refresh' in page
    assert 'id="housekeeping-failure-groups" data-refresh' in page
    assert "No failures recorded." in page


def now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


async def insert_attempts(url: str, rows: list[tuple]) -> None:
    """Write attempt rows as the worker does."""
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        await attempts_store.insert_attempts(conn, rows)


def one_row(page: str, text: str) -> str:
    """The one table row of the page that contains ``text``."""
    rows = [row for row in page.split("<tr>") if text in row]
    assert len(rows) == 1, rows
    return rows[0]


def cells(row: str) -> list[str]:
    """The text of a row's cells (without markup), in order."""
    return [
        re.sub(r"<[^>]+>", "", cell).strip()
        for cell in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)
    ]
