"""When a subscription's digest falls due, and deferring it once per period.

A period is named by a local date in the subscription's time zone: the day, for daily
digests; the day of the week's ``weekday``, for weekly ones. It falls due when that
date's wall clock shows ``hour``:00. An hour the clock skips (spring forward) falls due
at the first instant after the skip; an hour it shows twice (fall back), at the first
time. So every period has exactly one due instant, and a period is one date whatever
the clock does.

Only the latest period that has fallen due is ever deferred: after downtime the digest
goes out late, once, and the periods missed before it are not sent. A subscription
starts with the first period that falls due after it was created.
"""

import datetime
import logging
import zoneinfo
from collections.abc import Awaitable, Callable

import psycopg
import pydantic

from tasks.payloads import DigestPayload
from webapp.store import digest_schedule as store

log = logging.getLogger(__name__)

UTC = datetime.UTC
BATCH = 500  # subscriptions read per statement

Defer = Callable[[psycopg.AsyncConnection, DigestPayload], Awaitable[int]]


def local_time(moment: datetime.datetime, zone: zoneinfo.ZoneInfo) -> datetime.datetime:
    """What the wall clock in ``zone`` shows at ``moment``, without its offset."""
    return moment.astimezone(zone).replace(tzinfo=None)


def wall_clock_instant(day: datetime.date, hour: int, zone: zoneinfo.ZoneInfo) -> datetime.datetime:
    """The first instant (UTC) at which ``zone``'s clock shows ``hour``:00 on ``day``, or
    a later time of that day if the clock skips it (the first instant after the skip)."""
    wanted = datetime.datetime.combine(day, datetime.time(hour))
    first = wanted.replace(tzinfo=zone).astimezone(UTC)  # fold=0: the earlier of two
    if local_time(first, zone) == wanted:
        return first
    # In a gap: the two readings of ``wanted`` fall on either side of the jump. Find the
    # jump, the first instant the clock shows ``wanted`` or later, to the second.
    low, high = sorted((first, wanted.replace(tzinfo=zone, fold=1).astimezone(UTC)))
    while high - low > datetime.timedelta(seconds=1):
        middle = low + datetime.timedelta(seconds=(high - low).total_seconds() // 2)
        if local_time(middle, zone) >= wanted:
            high = middle
        else:
            low = middle
    return high


def latest_period(row: dict, now: datetime.datetime) -> tuple[datetime.date, datetime.datetime]:
    """The subscription's latest period due by ``now``: its date and due instant (UTC)."""
    zone = zoneinfo.ZoneInfo(row["time_zone"])
    today = now.astimezone(zone).date()
    step = datetime.timedelta(days=1)
    if row["frequency"] == "weekly":
        today -= datetime.timedelta(days=(today.isoweekday() - row["weekday"]) % 7)
        step = datetime.timedelta(days=7)
    for day in (today, today - step, today - 2 * step):
        due = wall_clock_instant(day, row["hour"], zone)
        if due <= now:
            return day, due
    raise AssertionError(f"no period of subscription {row['id']} is due by {now}")


def schedule_of(
    row: dict, now: datetime.datetime
) -> tuple[datetime.date, datetime.datetime] | None:
    """``latest_period``, or None for a time zone this machine does not know."""
    try:
        return latest_period(row, now)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        log.warning(
            "digest subscription %s: unknown time zone, no digest",
            row["id"],
            extra={"action": "digest_bad_time_zone"},
        )
        return None


def due_period(row: dict, now: datetime.datetime) -> tuple[datetime.date, datetime.datetime] | None:
    """The period to defer now, if any: the latest one due, unless it was deferred already
    or fell due before the subscription existed."""
    if (latest := schedule_of(row, now)) is None:
        return None
    period, due = latest
    if row["last_period"] is not None and row["last_period"] >= period:
        return None
    if due < row["created_at"]:
        return None
    return period, due


def payload_for(row: dict, due: datetime.datetime) -> DigestPayload | None:
    """The digest job's payload for a subscription's period; None if the row holds
    recipients the payload refuses."""
    try:
        return DigestPayload(
            organization_id=row["organization_id"],
            period=row["frequency"],
            recipients=row["recipients"],
            subscription_id=row["id"],
            until=due,
        )
    except pydantic.ValidationError as exc:
        log.warning(
            "digest subscription %s: %d invalid value(s), period skipped",
            row["id"],
            exc.error_count(),
            extra={"action": "digest_bad_subscription"},
        )
        return None


async def claim_and_defer(
    conn: psycopg.AsyncConnection, row: dict, now: datetime.datetime, defer: Defer
) -> int | None:
    """Claim the row's due period and defer its digest in one transaction; the job's id,
    or None if another run claimed it first (or the schedule changed meanwhile)."""
    period, due = due_period(row, now) or (None, None)
    if period is None:
        return None
    job_id = None
    async with conn.transaction():
        claimed = await store.claim_period(conn, row["id"], period)
        if claimed is None:
            return None
        if schedule_of(claimed, now) != (period, due):  # edited since it was read
            raise psycopg.Rollback()
        payload = payload_for(claimed, due)
        if payload is not None:  # a bad row keeps its claim: no warning every minute
            job_id = await defer(conn, payload)
            await store.set_last_job(conn, claimed["id"], job_id)
    return job_id


async def defer_due_digests(
    conn: psycopg.AsyncConnection, now: datetime.datetime, defer: Defer
) -> list[int]:
    """Defer the digest of every subscription due at ``now``; the new jobs' ids."""
    jobs, after = [], 0
    while True:
        rows = await store.list_subscriptions(conn, after, BATCH)
        for row in rows:
            job_id = await claim_and_defer(conn, row, now, defer)
            if job_id is not None:
                jobs.append(job_id)
        if len(rows) < BATCH:
            return jobs
        after = rows[-1]["id"]
