"""One line when the database goes, one when it is back, whatever the parts report."""

import asyncio
import logging
import uuid
from urllib.parse import urlsplit, urlunsplit

import psycopg_pool

from tasks.worker.availability import Availability, BackoffTimer, connection_error


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


def test_parts_timing_out_together_share_one_probe_and_its_cause_is_said_once(caplog):
    caplog.set_level(logging.DEBUG, logger="tasks.worker")
    probes = []

    async def probe():
        probes.append(1)
        await asyncio.sleep(0.01)
        return 'OperationalError: FATAL: role "nobody" does not exist'

    availability = Availability(probe)

    async def scenario():
        await asyncio.gather(fail(availability, "register"), fail(availability, "fetch"))
        await succeed(availability, "register")
        await succeed(availability, "fetch")
        await fail(availability, "fetch")  # a new outage asks again

    asyncio.run(scenario())
    lines = [line for line in outage_lines(caplog) if "database unavailable" in line]
    cause = '(a new connection fails: OperationalError: FATAL: role "nobody" does not exist)'
    assert len(lines) == 2 and all(cause in line for line in lines), lines
    assert len(probes) == 2


def test_a_probe_answers_why_a_connection_fails_without_the_password(db_url):
    parts = urlsplit(db_url)
    host = f"{parts.hostname}:{parts.port or 5432}"
    # The server quotes the user it refuses (a role that does not exist, or a password
    # that does not match): here the user is the password as well.
    secret = f"secret{uuid.uuid4().hex}"
    refused = urlunsplit(parts._replace(netloc=f"{secret}:{secret}@{host}"))
    cause = asyncio.run(connection_error(refused, {"connect_timeout": 5}))
    assert cause.startswith("OperationalError: ")
    assert '"***"' in cause
    assert secret not in cause
    assert asyncio.run(connection_error(db_url, {"connect_timeout": 5})) is None
