"""The database health page: platform admins only, and never stuck behind a lock."""

import contextlib
import re
import threading
import time

import psycopg
import pytest

PAGE = "/admin/queues/database"


def test_only_platform_admins_open_it(sign_in, orgs):
    operator = sign_in("operator").client
    assert operator.get(PAGE).status_code == 403
    assert sign_in("viewer").client.get(PAGE).status_code == 403
    page = operator.get("/admin/queues/workers").get_data(as_text=True)
    assert ">Database</a>" not in page


def test_admins_see_tables_notify_usage_connections_and_no_waits(sign_in, orgs):
    response = sign_in("admin").client.get(PAGE)
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    for table in ("procrastinate_jobs", "procrastinate_events", "job_attempts", "audit_log"):
        assert f'<th scope="row">{table}</th>' in page
    # The NOTIFY queue is the server's, which other test workers' databases share: its
    # usage is small, not always nil.
    usage = re.search(r'<dd class="notify-usage">(\d+\.\d{4}) %</dd>', page)
    assert usage and float(usage.group(1)) < 1
    assert '<th scope="row">howdah-web</th>' in page
    assert "No backend waits for a lock on our tables." in page
    assert re.findall(r"unavailable</span> (.*?) could not", page) == []
    assert 'id="db-locks" data-refresh' in page


@contextlib.contextmanager
def lock_wait(db_url: str, mode: str, waiting_sql: str):
    """Hold a lock on procrastinate_jobs in one connection while another waits for it in a
    thread; yields (holder pid, waiter pid), and lets both go at the end."""
    holder = psycopg.connect(db_url, application_name="lock-holder")
    waiter = psycopg.connect(db_url, autocommit=True, application_name="lock-waiter")
    watcher = psycopg.connect(db_url, autocommit=True)
    thread = threading.Thread(target=lambda: waiter.execute(waiting_sql), daemon=True)
    try:
        holder.execute(f"LOCK TABLE procrastinate_jobs IN {mode} MODE")
        thread.start()
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            waiting = watcher.execute(
                "SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = %s",
                (waiter.info.backend_pid,),
            ).fetchone()
            if waiting and waiting[0]:
                break
            time.sleep(0.05)
        else:
            pytest.fail("the second connection never waited for the lock")
        yield holder.info.backend_pid, waiter.info.backend_pid
    finally:
        holder.rollback()
        thread.join(timeout=5)
        for conn in (holder, waiter, watcher):
            conn.close()
    assert not thread.is_alive()


def test_a_blocked_job_query_names_who_waits_and_who_blocks(sign_in, db_url, orgs):
    admin = sign_in("admin")
    update = "UPDATE procrastinate_jobs SET priority = priority WHERE id = -1"
    with lock_wait(db_url, "SHARE", update) as (holder, waiter):
        page = admin.client.get(PAGE).get_data(as_text=True)
    locks = page[page.index('id="db-locks"') : page.index('id="db-transactions"')]
    assert f"pid {waiter} <span" in locks and "lock-waiter" in locks
    assert "RowExclusiveLock" in locks and "procrastinate_jobs" in locks
    assert update in locks
    assert f"pid {holder} <span" in locks and "lock-holder" in locks
    assert "LOCK TABLE procrastinate_jobs IN SHARE MODE" in locks
    oldest = page[page.index('id="db-transactions"') : page.index('id="db-tables"')]
    assert f"pid {holder} <span" in oldest
    # A SHARE lock lets the sizes be read.
    assert '<th scope="row">procrastinate_jobs</th>' in page


def test_a_part_that_meets_a_lock_is_unavailable_not_the_page(sign_in, db_url, orgs):
    admin = sign_in("admin")
    read = "SELECT count(*) FROM procrastinate_jobs"
    with lock_wait(db_url, "ACCESS EXCLUSIVE", read) as (holder, waiter):
        started = time.monotonic()
        response = admin.client.get(PAGE)
        elapsed = time.monotonic() - started
    assert response.status_code == 200
    assert elapsed < 5  # the lock is held until the end: only the timeouts let the page answer
    page = response.get_data(as_text=True)
    tables = page[page.index('id="db-tables"') :]
    assert "unavailable" in tables and "procrastinate_jobs</th>" not in tables
    locks = page[page.index('id="db-locks"') : page.index('id="db-transactions"')]
    assert f"pid {waiter} <span" in locks and f"pid {holder} <span" in locks
    assert "AccessShareLock" in locks
