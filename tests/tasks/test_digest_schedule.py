"""The digest scheduler: one digest per subscription and period, at the right instant,
however many schedulers run at once and whatever the clocks do."""

import asyncio
import datetime
import logging
import zoneinfo

import psycopg
import pytest

import tasks.app  # the digest task gets its namespace from the App
from tasks import digest_schedule, digests
from tests.tasks import digest_rows

UTC = datetime.UTC


def utc(*fields) -> datetime.datetime:
    return datetime.datetime(*fields, tzinfo=UTC)


@pytest.mark.parametrize(
    ("zone", "day", "hour", "due"),
    [
        # New York springs forward at 02:00 on 8 March 2026: 02:00 never shows; 03:00 EDT does.
        ("America/New_York", datetime.date(2026, 3, 7), 2, utc(2026, 3, 7, 7)),
        ("America/New_York", datetime.date(2026, 3, 8), 2, utc(2026, 3, 8, 7)),
        ("America/New_York", datetime.date(2026, 3, 9), 2, utc(2026, 3, 9, 6)),
        # It falls back at 02:00 EDT on 1 November: 01:00 shows twice, first in EDT.
        ("America/New_York", datetime.date(2026, 11, 1), 1, utc(2026, 11, 1, 5)),
        ("America/New_York", datetime.date(2026, 11, 2), 1, utc(2026, 11, 2, 6)),
        # Berlin: 02:00 is skipped on 29 March and repeated on 25 October.
        ("Europe/Berlin", datetime.date(2026, 3, 29), 2, utc(2026, 3, 29, 1)),
        ("Europe/Berlin", datetime.date(2026, 10, 25), 2, utc(2026, 10, 25, 0)),
        ("Europe/Berlin", datetime.date(2026, 10, 26), 2, utc(2026, 10, 26, 1)),
        # Lord Howe Island moves by half an hour: 02:00 (+10:30) becomes 02:30 (+11).
        ("Australia/Lord_Howe", datetime.date(2026, 10, 4), 2, utc(2026, 10, 3, 15, 30)),
        # Samoa skipped 30 December 2011 whole: its 09:00 is the first instant of the 31st.
        ("Pacific/Apia", datetime.date(2011, 12, 30), 9, utc(2011, 12, 30, 10)),
        ("Asia/Kolkata", datetime.date(2026, 3, 8), 9, utc(2026, 3, 8, 3, 30)),
    ],
)
def test_a_period_falls_due_at_one_instant(zone, day, hour, due):
    assert digest_schedule.wall_clock_instant(day, hour, zoneinfo.ZoneInfo(zone)) == due


# Subscriptions around the 2026 daylight-saving changes of New York and Berlin: hours in
# the skipped hour, in the repeated hour, and weekly ones on the Sundays of the changes.
SUBSCRIPTIONS = [
    {"time_zone": "America/New_York", "hour": 2},
    {"time_zone": "America/New_York", "hour": 1},
    {"time_zone": "America/New_York", "hour": 2, "frequency": "weekly", "weekday": 7},
    {"time_zone": "Europe/Berlin", "hour": 2},
    {"time_zone": "Europe/Berlin", "hour": 0},
    {"time_zone": "Europe/Berlin", "hour": 2, "frequency": "weekly", "weekday": 7},
    {"time_zone": "Asia/Kolkata", "hour": 9},
]
# The instants known by hand (see the test above), for the days the clocks change.
KNOWN = {
    (0, datetime.date(2026, 3, 8)): utc(2026, 3, 8, 7),
    (2, datetime.date(2026, 3, 8)): utc(2026, 3, 8, 7),
    (1, datetime.date(2026, 11, 1)): utc(2026, 11, 1, 5),
    (3, datetime.date(2026, 3, 29)): utc(2026, 3, 29, 1),
    (5, datetime.date(2026, 3, 29)): utc(2026, 3, 29, 1),
    (3, datetime.date(2026, 10, 25)): utc(2026, 10, 25, 0),
    (5, datetime.date(2026, 10, 25)): utc(2026, 10, 25, 0),
}


def expected_periods(start, end) -> set[tuple[int, datetime.datetime]]:
    """(subscription index, due instant) of every period due in (start, end], plus the
    latest one due at ``start`` (the first run defers it)."""
    expected = set()
    for index, sub in enumerate(SUBSCRIPTIONS):
        zone = zoneinfo.ZoneInfo(sub["time_zone"])
        dues = []
        day = start.astimezone(zone).date() - datetime.timedelta(days=8)
        while day <= end.astimezone(zone).date():
            if sub.get("frequency") != "weekly" or day.isoweekday() == sub["weekday"]:
                plain = datetime.datetime.combine(day, datetime.time(sub["hour"]), zone)
                dues.append(KNOWN.get((index, day), plain.astimezone(UTC)))
            day += datetime.timedelta(days=1)
        expected |= {(index, due) for due in dues if start < due <= end}
        expected.add((index, max(due for due in dues if due <= start)))
    return expected


async def run_schedulers(db_url, start, end, step, workers=2) -> list[int]:
    """Step the clock from ``start`` to ``end``; at each step ``workers`` schedulers, each
    on its own connection, set off together. The ids of the jobs they deferred."""
    connections = [await psycopg.AsyncConnection.connect(db_url, autocommit=True)
                   for _ in range(workers)]  # fmt: skip
    barrier = asyncio.Barrier(workers)
    deferred = []

    async def scheduler(conn, now):
        await barrier.wait()
        return await digest_schedule.defer_due_digests(conn, now, digests.defer_digest)

    try:
        now = start
        while now <= end:
            runs = await asyncio.gather(*(scheduler(conn, now) for conn in connections))
            deferred += [job_id for run in runs for job_id in run]
            now += step
    finally:
        for conn in connections:
            await conn.close()
    return deferred


def digest_jobs(conn) -> list[dict]:
    """The digest jobs deferred, with their arguments."""
    return [
        row[0]
        for row in conn.execute(
            "SELECT jsonb_build_object('id', id, 'queue', queue_name, 'task', task_name)"
            " || args FROM procrastinate_jobs ORDER BY id"
        )
    ]


@pytest.mark.parametrize(
    ("start", "end"),
    [
        (utc(2026, 3, 6, 12), utc(2026, 3, 10)),  # New York springs forward
        (utc(2026, 3, 27, 12), utc(2026, 3, 31)),  # Berlin springs forward
        (utc(2026, 10, 23, 12), utc(2026, 10, 27)),  # Berlin falls back
        (utc(2026, 10, 30, 12), utc(2026, 11, 3)),  # New York falls back
    ],
)
def test_two_schedulers_defer_one_digest_per_period_across_a_clock_change(
    db_url, conn, orgs, start, end
):
    ids = [digest_rows.insert_subscription(conn, **sub) for sub in SUBSCRIPTIONS]
    step = datetime.timedelta(minutes=30)
    deferred = asyncio.run(run_schedulers(db_url, start, end, step))
    jobs = digest_jobs(conn)
    assert sorted(deferred) == [job["id"] for job in jobs]  # each job reported by one run
    got = [(ids.index(job["subscription_id"]), job["until"]) for job in jobs]
    assert len(got) == len(set(got))  # no period twice
    assert {(index, datetime.datetime.fromisoformat(until)) for index, until in got} == (
        expected_periods(start, end)
    )
    assert {(job["queue"], job["task"]) for job in jobs} == {("email-digests", "email:send_digest")}
    last = {job["subscription_id"]: job["id"] for job in jobs}
    assert dict(conn.execute("SELECT id, last_job_id FROM digest_subscriptions")) == last


def step_minutes(minutes: int) -> datetime.timedelta:
    return datetime.timedelta(minutes=minutes)


def run_at(db_url, now) -> list[int]:
    """Two schedulers at one instant."""
    return asyncio.run(run_schedulers(db_url, now, now, step_minutes(1)))


def test_a_digest_is_deferred_at_the_first_run_after_its_instant(db_url, conn, orgs):
    digest_rows.insert_subscription(conn, time_zone="America/New_York", hour=2)
    assert len(run_at(db_url, utc(2026, 3, 8, 6, 59, 59))) == 1  # 7 March's, at the first run
    assert len(run_at(db_url, utc(2026, 3, 8, 7))) == 1  # 8 March's, at 03:00 EDT
    assert run_at(db_url, utc(2026, 3, 9, 5, 59)) == []
    jobs = digest_jobs(conn)
    assert [job["until"] for job in jobs] == ["2026-03-07T07:00:00Z", "2026-03-08T07:00:00Z"]


def test_the_payload_is_the_subscriptions(db_url, conn, orgs):
    subscription = digest_rows.insert_subscription(
        conn, 2, recipients=["a@example.com", "b@example.com"], frequency="weekly", weekday=3
    )
    run_at(db_url, utc(2026, 3, 12))
    (job,) = digest_jobs(conn)
    assert {k: v for k, v in job.items() if k not in ("id", "queue", "task")} == {
        "organization_id": 2,
        "period": "weekly",
        "recipients": ["a@example.com", "b@example.com"],
        "subscription_id": subscription,
        "until": "2026-03-11T08:00:00Z",  # Wednesday 09:00 in Berlin
    }


def test_after_downtime_only_the_latest_period_goes_out(db_url, conn, orgs):
    digest_rows.insert_subscription(conn, last_period=datetime.date(2026, 3, 1))
    run_at(db_url, utc(2026, 3, 5, 12))
    assert [job["until"] for job in digest_jobs(conn)] == ["2026-03-05T08:00:00Z"]


def test_a_new_subscription_waits_for_its_first_period(db_url, conn, orgs):
    digest_rows.insert_subscription(conn, created_at=utc(2026, 3, 5, 8, 30))
    deferred = asyncio.run(
        run_schedulers(db_url, utc(2026, 3, 5, 9), utc(2026, 3, 6, 9), step_minutes(60))
    )
    assert len(deferred) == 1
    assert [job["until"] for job in digest_jobs(conn)] == ["2026-03-06T08:00:00Z"]


def test_a_subscription_in_an_unknown_time_zone_is_skipped(db_url, conn, orgs, caplog):
    digest_rows.insert_subscription(conn, time_zone="Mars/Olympus_Mons")
    digest_rows.insert_subscription(conn)
    run_at(db_url, utc(2026, 3, 5, 12))
    assert [job["subscription_id"] for job in digest_jobs(conn)] == [2]
    assert "digest subscription 1: unknown time zone" in caplog.text


class Crash(Exception):
    pass


def test_a_crash_between_claim_and_defer_loses_nothing_and_doubles_nothing(db_url, conn, orgs):
    digest_rows.insert_subscription(conn)

    async def defer_then_crash(db, payload):
        await digests.defer_digest(db, payload)
        raise Crash()

    async def scheduler(defer):
        async with await psycopg.AsyncConnection.connect(db_url, autocommit=True) as db:
            return await digest_schedule.defer_due_digests(db, utc(2026, 3, 5, 12), defer)

    with pytest.raises(Crash):
        asyncio.run(scheduler(defer_then_crash))
    assert digest_jobs(conn) == []
    assert conn.execute("SELECT last_period FROM digest_subscriptions").fetchone() == (None,)
    assert len(asyncio.run(scheduler(digests.defer_digest))) == 1
    assert len(asyncio.run(scheduler(digests.defer_digest))) == 0
    assert len(digest_jobs(conn)) == 1


def test_the_scheduler_is_periodic_on_the_housekeeping_queue():
    (periodic,) = [
        p
        for p in tasks.app.app.periodic_registry.periodic_tasks.values()
        if p.task.name == "email:schedule_digests"
    ]
    assert periodic.cron == "* * * * *"
    assert periodic.task.queue == "housekeeping"


def test_bad_recipients_keep_their_claim_and_defer_nothing(db_url, conn, orgs, caplog):
    caplog.set_level(logging.WARNING)
    digest_rows.insert_subscription(conn, recipients=["not an address"])
    asyncio.run(run_schedulers(db_url, utc(2026, 3, 5, 12), utc(2026, 3, 5, 13), step_minutes(60)))
    assert digest_jobs(conn) == []
    assert conn.execute("SELECT last_period FROM digest_subscriptions").fetchone() == (
        datetime.date(2026, 3, 5),
    )
    assert caplog.text.count("1 invalid value(s), period skipped") == 1
    assert "not an address" not in caplog.text
