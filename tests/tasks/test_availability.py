"""One line when the database goes, one when it is back, whatever the parts report."""

import asyncio
import logging

import psycopg_pool

from tasks.worker.availability import Availability, BackoffTimer


def outage_lines(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "tasks.worker"]


async def fail(availability, part, began=None):
    """A try of ``part`` that fails for want of a pooled connection."""
    async with availability.trying(part, BackoffTimer(first=0.001, cap=0.001)):
        if began is not None:
            await began.wait()
        raise psycopg_pool.PoolTimeout("couldn't get a connection after 5.00 sec")


async def succeed(availability, part):
    async with availability.trying(part, BackoffTimer()):
        pass


def test_a_try_begun_in_the_outage_that_fails_after_it_is_not_a_new_outage(caplog):
    caplog.set_level(logging.DEBUG, logger="tasks.worker")
    availability = Availability()

    async def scenario():
        await fail(availability, "listen/heartbeat")
        back = asyncio.Event()
        waiting = asyncio.create_task(fail(availability, "housekeeping fetch", back))
        await asyncio.sleep(0)  # the fetch began waiting during the outage
        await succeed(availability, "listen/heartbeat")
        back.set()
        await waiting  # ... and times out after the database came back
        await fail(availability, "fetch")  # a try begun after it: a new outage

    asyncio.run(scenario())
    lines = [line.split(":")[0] for line in outage_lines(caplog) if "database" in line]
    assert lines == [
        "database unavailable (listen/heartbeat)",
        "database available again after 0.0 s",
        "database unavailable (fetch)",
    ]
    assert availability.up is False
