"""``howdah_fetch_jobs``: Procrastinate's rules, Howdah's caps, several jobs per call."""

import asyncio

import psycopg
import pytest

from webapp.store import loaders
from webapp.store import worker as store


@pytest.fixture
def add(conn):
    """Insert a waiting job; returns its id."""

    def make(org=1, priority=0, queue="default", lock=None, scheduled=None, args=None):
        return conn.execute(
            "INSERT INTO procrastinate_jobs (queue_name, task_name, priority, lock, args,"
            " scheduled_at) VALUES (%s, 'diagnostics:noop', %s, %s, %s, %s) RETURNING id",
            (queue, priority, lock, args or f'{{"organization_id": {org}}}', scheduled),
        ).fetchone()[0]

    return make


@pytest.fixture
def workers(conn):
    return [conn.execute("SELECT procrastinate_register_worker_v1()").fetchone()[0] for _ in "ab"]


def fetch(db_url, worker_id, limit, queues=None, org_cap=None) -> list[dict]:
    async def go():
        async with await psycopg.AsyncConnection.connect(db_url, autocommit=True) as conn:
            loaders.register(conn)
            return await store.fetch_jobs(conn, worker_id, queues, limit, org_cap)

    return asyncio.run(go())


def ids(rows) -> list[int]:
    return [row["id"] for row in sorted(rows, key=lambda r: (-r["priority"], r["id"]))]


def test_a_batch_takes_the_jobs_procrastinate_would_take_one_by_one(conn, add, workers):
    # Priorities, FIFO ties, a lock group (one runs at a time, the first in order), a job
    # scheduled for later, one for long ago, and another queue; each job of its own
    # organization, so that a cap of one job per organization leaves the set unchanged.
    for org, (priority, lock, scheduled, queue) in enumerate(
        [
            (0, None, None, "default"),
            (5, "L", None, "default"),
            (4, None, None, "default"),
            (5, None, None, "default"),
            (9, "L", None, "default"),
            (-3, None, None, "default"),
            (7, None, "2999-01-01T00:00:00Z", "default"),
            (1, None, "2000-01-01T00:00:00Z", "default"),
            (2, None, None, "other"),
            (2, "M", "2999-01-01T00:00:00Z", "default"),
            (3, "M", None, "default"),  # held back by the later, same-lock job ahead of it
        ],
        start=1,
    ):
        add(org=org, priority=priority, lock=lock, scheduled=scheduled, queue=queue)

    # Organization 99 at its cap makes the fetch walk (queue, organization) groups;
    # without a cap it scans in priority order. Both must give Procrastinate's order.
    conn.execute(
        "INSERT INTO procrastinate_jobs (queue_name, task_name, args, status)"
        " VALUES ('default', 'diagnostics:noop', '{\"organization_id\": 99}', 'doing')"
    )
    for queues, cap in ((None, None), (["default"], None), (None, 1), (["default"], 1)):
        with conn.transaction(force_rollback=True):
            theirs = []
            while (
                job_id := conn.execute(
                    "SELECT id FROM procrastinate_fetch_job_v2(%s::varchar[], %s)",
                    (queues, workers[0]),
                ).fetchone()[0]
            ) is not None:
                theirs.append(job_id)
        with conn.transaction(force_rollback=True):
            rows = conn.execute(
                "SELECT id, priority FROM howdah_fetch_jobs(%s::varchar[], %s, 100, %s)",
                (queues, workers[0], cap),
            ).fetchall()
            ours = [job_id for job_id, _ in sorted(rows, key=lambda r: (-r[1], r[0]))]
        assert ours == theirs, (queues, cap)


def test_rows_become_doing_for_the_worker_and_come_back_readable(db_url, conn, add, workers):
    old = add(priority=1, scheduled="0001-01-01T00:00:00+14:00")  # a BC timestamp
    odd = add(args='["not", "an", "object"]')
    rows = fetch(db_url, workers[0], 10)
    assert ids(rows) == [old, odd]
    assert {row["id"]: row["args"] for row in rows}[odd] == '["not", "an", "object"]'
    assert {row["scheduled_at"].year for row in rows if row["scheduled_at"]} == {1}
    status = conn.execute(
        "SELECT DISTINCT status::text, worker_id FROM procrastinate_jobs"
    ).fetchall()
    assert status == [("doing", workers[0])]
    started = conn.execute(
        "SELECT count(*) FROM procrastinate_events WHERE type = 'started'"
    ).fetchone()[0]
    assert started == 2


def test_limit_bounds_the_batch(db_url, add, workers):
    for _ in range(5):
        add()
    assert len(fetch(db_url, workers[0], 3)) == 3
    assert len(fetch(db_url, workers[1], 0)) == 0
    assert len(fetch(db_url, workers[1], 10)) == 2


def test_an_organization_cap_holds_across_workers_and_within_a_batch(db_url, add, workers):
    flood = [add(org=1, priority=100) for _ in range(6)]
    other = add(org=2, priority=0)
    first = fetch(db_url, workers[0], 10, org_cap=2)
    assert ids(first) == [*flood[:2], other]
    assert fetch(db_url, workers[1], 10, org_cap=2) == []  # organization 1 is at its cap


def test_a_queue_cap_and_a_per_queue_organization_cap(db_url, conn, add, workers):
    conn.execute(
        "INSERT INTO queue_settings (queue_name, max_running, organization_max_running)"
        " VALUES ('default', 3, NULL), ('sms-notifications', NULL, 1)"
    )
    default = [add(org=n % 2 + 1) for n in range(5)]
    sms = [add(org=1, queue="sms-notifications") for _ in range(2)]
    sms_other = add(org=2, queue="sms-notifications")
    rows = fetch(db_url, workers[0], 10)
    assert sorted(ids(rows)) == sorted([*default[:3], sms[0], sms_other])
    assert fetch(db_url, workers[1], 10) == []


def test_the_cap_excludes_an_organization_without_scanning_its_backlog_again(db_url, add, workers):
    # Organization 1's backlog outranks everything; once it is capped, the batch is
    # filled from the other organizations in priority order.
    [add(org=1, priority=50) for _ in range(50)]
    rest = [add(org=org, priority=10 - org) for org in (2, 3, 4)]
    rows = fetch(db_url, workers[0], 10, org_cap=1)
    assert len(rows) == 4
    assert ids(rows)[1:] == rest


def test_jobs_without_an_organization_are_not_capped(db_url, add, workers):
    system = [add(args='{"timestamp": 1}') for _ in range(3)]
    assert ids(fetch(db_url, workers[0], 10, org_cap=1)) == system


@pytest.mark.parametrize("held_back", [5, 10_001], ids=["few-due", "many-due"])
def test_a_capped_walk_finds_due_jobs_past_groups_that_wait_for_later(
    db_url, conn, add, workers, held_back
):
    # Organization 1 is at its cap with due jobs held back: a few, or more than the
    # fetch reads one by one, which makes it walk the groups with scheduled jobs instead.
    # Fifty organizations have only jobs for later; one due job, one job without a time
    # and one job in another queue belong to three others.
    conn.execute(
        "INSERT INTO procrastinate_jobs (queue_name, task_name, args, status)"
        " VALUES ('default', 'diagnostics:noop', '{\"organization_id\": 1}', 'doing')"
    )
    conn.execute(
        "INSERT INTO procrastinate_jobs (queue_name, task_name, args, scheduled_at)"
        " SELECT 'default', 'diagnostics:noop', '{\"organization_id\": 1}',"
        " now() - interval '1 minute' FROM generate_series(1, %s)",
        (held_back,),
    )
    for org in range(100, 150):
        add(org=org, priority=100, scheduled="2999-01-01T00:00:00Z")
    due = add(org=2, scheduled="2000-01-01T00:00:00Z")
    waiting = add(org=3, priority=-1)
    elsewhere = add(org=4, queue="sms-notifications")
    with conn.transaction(force_rollback=True):
        rows = conn.execute(
            "SELECT id, priority FROM howdah_fetch_jobs(NULL, %s, 10, 1)", (workers[0],)
        ).fetchall()
    assert sorted(job_id for job_id, _ in rows) == [due, waiting, elsewhere]
    rows = fetch(db_url, workers[0], 10, queues=["default"], org_cap=1)
    assert ids(rows) == [due, waiting]


def pause(conn, *queues_):
    for queue in queues_:
        conn.execute(
            "INSERT INTO queue_settings (queue_name, paused_at, paused_by) VALUES (%s, now(), 't')",
            (queue,),
        )


@pytest.mark.parametrize("queues", [None, ["default", "sms-notifications"]], ids=["all", "some"])
def test_a_paused_queue_gives_no_job_and_the_others_go_on(db_url, conn, add, workers, queues):
    pause(conn, "default")
    held = [add(priority=100) for _ in range(3)]
    sms = [add(org=org, queue="sms-notifications") for org in (1, 2)]
    due = add(queue="sms-notifications", scheduled="2000-01-01T00:00:00Z")
    assert ids(fetch(db_url, workers[0], 10, queues=queues)) == [*sms, due]
    status = "SELECT status::text FROM procrastinate_jobs WHERE id = ANY(%s)"
    assert {s for (s,) in conn.execute(status, (held,))} == {"todo"}
    conn.execute("UPDATE queue_settings SET paused_at = NULL")
    assert ids(fetch(db_url, workers[1], 10, queues=queues)) == held


def test_a_worker_of_paused_queues_only_takes_nothing(db_url, conn, add, workers):
    pause(conn, "default", "sms-notifications")
    add()
    add(queue="sms-notifications", scheduled="2000-01-01T00:00:00Z")
    elsewhere = add(queue="email-digests")
    assert fetch(db_url, workers[0], 10, queues=["default", "sms-notifications"]) == []
    assert ids(fetch(db_url, workers[0], 10)) == [elsewhere]


def test_a_pause_holds_beside_caps(db_url, conn, add, workers):
    # A capped queue, a paused one with a per-organization cap, and the worker-wide cap.
    conn.execute(
        "INSERT INTO queue_settings (queue_name, max_running, organization_max_running,"
        " paused_at) VALUES ('default', 2, NULL, NULL), ('sms-notifications', NULL, 5, now())"
    )
    default = [add(org=n % 2 + 1) for n in range(4)]
    [add(org=1, queue="sms-notifications", priority=50) for _ in range(3)]
    digest = [add(org=org, queue="email-digests") for org in (1, 1, 3)]
    rows = fetch(db_url, workers[0], 10, org_cap=2)
    # default: its cap of 2; email-digests: organization 1 reaches the cap of 2 with the
    # one running in default; sms-notifications: none, paused.
    assert sorted(ids(rows)) == sorted([*default[:2], digest[0], digest[2]])
    assert {row["queue_name"] for row in rows} == {"default", "email-digests"}


CAP_LOCK = 29395956153804801  # the advisory lock a capped fetch takes (migration 0016)


def test_a_pause_that_commits_during_a_fetch_holds_for_jobs_deferred_after_it(
    db_url, conn, add, workers
):
    # A capped fetch reads the pauses, then waits for the cap lock: held here, so that a
    # pause and a job deferred after it both commit while the fetch is under way.
    other = psycopg.connect(db_url, autocommit=True)
    other.execute("SELECT pg_advisory_lock(%s)", (CAP_LOCK,))

    async def fetch_during_the_pause():
        async with await psycopg.AsyncConnection.connect(db_url, autocommit=True) as fetching:
            loaders.register(fetching)
            call = asyncio.ensure_future(store.fetch_jobs(fetching, workers[0], None, 10, 5))
            waiting = "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
            while conn.execute(waiting).fetchone()[0] == 0:  # the fetch read the pauses
                await asyncio.sleep(0.01)
            pause(conn, "default")
            held = add()
            other.execute("SELECT pg_advisory_unlock(%s)", (CAP_LOCK,))
            return held, await call

    try:
        held, rows = asyncio.run(fetch_during_the_pause())
    finally:
        other.close()
    assert rows == []
    status = conn.execute("SELECT status::text FROM procrastinate_jobs WHERE id = %s", (held,))
    assert status.fetchone()[0] == "todo"


def rows_read(conn) -> int:
    """Rows of procrastinate_jobs read so far, by any scan (statistics flushed first)."""
    conn.execute("SELECT pg_stat_force_next_flush()")
    return conn.execute(
        "SELECT seq_tup_read + coalesce(idx_tup_fetch, 0) FROM pg_stat_user_tables"
        " WHERE relname = 'procrastinate_jobs'"
    ).fetchone()[0]


def test_a_paused_backlog_is_not_read(conn, add, workers):
    # A paused backlog that outranks everything costs the fetch nothing: its rows are not
    # read (the fetch passes over its groups, as over a queue at its cap), where a filter
    # on the jobs read in priority order would walk past all of them.
    pause(conn, "default")
    conn.execute(
        "INSERT INTO procrastinate_jobs (queue_name, task_name, priority, args)"
        " SELECT 'default', 'diagnostics:noop', 100, '{\"organization_id\": 1}'"
        " FROM generate_series(1, 20000)"
    )
    other = add(queue="sms-notifications")
    conn.execute("ANALYZE procrastinate_jobs")
    before = rows_read(conn)
    with conn.transaction(force_rollback=True):
        rows = conn.execute(
            "SELECT id FROM howdah_fetch_jobs(NULL, %s, 10, NULL)", (workers[0],)
        ).fetchall()
    assert rows == [(other,)]
    assert rows_read(conn) - before < 100
