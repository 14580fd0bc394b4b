"""Each organization's SMS send slots (webapp.store.sms.reserve_send_slot) on PostgreSQL."""

import asyncio
import itertools
import time

import psycopg
import psycopg_pool
import pytest

from tasks import registry, sms
from tests.tasks.conftest import with_pool
from webapp.store import sms as store


def set_rate(conn, organization_id: int, per_second: int) -> None:
    conn.execute(
        "UPDATE organizations SET sms_per_second = %s WHERE id = %s", (per_second, organization_id)
    )


def reserve(db_url, organization_id: int, times: int, max_wait: float = 60.0) -> list:
    """Reserve ``times`` slots one after the other; the waits returned."""

    async def go(pool):
        async with pool.connection() as conn:
            return [
                await store.reserve_send_slot(conn, organization_id, max_wait) for _ in range(times)
            ]

    return with_pool(db_url, go)


def test_slots_follow_the_organizations_rate(orgs, conn, db_url):
    set_rate(conn, orgs.a, 5)
    waits = reserve(db_url, orgs.a, 6)
    assert waits[0] == pytest.approx(0, abs=0.05)  # an idle organization sends at once
    gaps = [later - earlier for earlier, later in itertools.pairwise(waits)]
    assert gaps == pytest.approx([0.2] * 5, abs=0.05)


def test_organizations_have_slots_of_their_own(orgs, conn, db_url):
    set_rate(conn, orgs.a, 1)
    assert reserve(db_url, orgs.a, 3)[-1] == pytest.approx(2, abs=0.1)
    assert reserve(db_url, orgs.b, 1) == [pytest.approx(0, abs=0.05)]


def test_a_slot_further_than_max_wait_is_not_taken(orgs, conn, db_url):
    set_rate(conn, orgs.a, 2)
    waits = reserve(db_url, orgs.a, 5, max_wait=1.0)
    assert waits[:3] == [pytest.approx(w, abs=0.05) for w in (0, 0.5, 1.0)]
    assert waits[3:] == [None, None]  # none taken: the next free slot is still 1.5 s ahead
    ahead = conn.execute(
        "SELECT extract(epoch FROM next_at - clock_timestamp()) FROM sms_send_slots"
    ).fetchone()[0]
    assert 1.3 < ahead <= 1.5


def test_concurrent_reservations_get_distinct_slots(orgs, conn, db_url):
    set_rate(conn, orgs.a, 10)

    async def go():
        pool = psycopg_pool.AsyncConnectionPool(
            db_url, min_size=4, max_size=4, kwargs={"autocommit": True}, open=False
        )
        async with pool:

            async def one():
                async with pool.connection() as own:
                    return await store.reserve_send_slot(own, orgs.a, 60.0)

            return await asyncio.gather(*(one() for _ in range(20)))

    started = conn.execute("SELECT clock_timestamp()").fetchone()[0]
    clock = time.monotonic()
    waits = asyncio.run(go())
    elapsed = time.monotonic() - clock
    next_at = conn.execute("SELECT next_at FROM sms_send_slots").fetchone()[0]
    # Twenty slots 0.1 s apart, handed out one at a time from the first: a lost update (two
    # sends on one slot) would leave next_at short of 2 s after the start.
    assert 2.0 <= (next_at - started).total_seconds() <= 2.0 + elapsed
    assert max(waits) == pytest.approx(1.9, abs=elapsed)


def test_slots_taken_too_far_ahead_send_the_job_back_later(orgs, conn, db_url):
    set_rate(conn, orgs.a, 1)
    reserve(db_url, orgs.a, 10)  # the next free slot is 10 s away

    async def go(pool):
        with pytest.raises(sms.SendSlotsTaken) as caught:
            await sms.wait_for_slot(pool, orgs.a, max_wait=4.0)
        return caught.value

    taken = with_pool(db_url, go)
    assert 5 < taken.retry_after <= 6  # back when the slot is within reach
    decision = sms.send_notification.retry_strategy.get_retry_decision(
        exception=taken, job=type("J", (), {"attempts": 99})()
    )
    assert decision is not None  # delayed, never dropped, whatever its retries
    assert isinstance(taken, registry.TryLater)


def test_the_rate_stays_within_its_bounds(orgs, conn):
    for rate in (0, 1001):
        with pytest.raises(psycopg.errors.CheckViolation):
            set_rate(conn, orgs.a, rate)
