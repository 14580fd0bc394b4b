"""The pools' cheap check: a round trip only when a connection's socket may be dead."""

import os
import resource
import time

import psycopg
import pytest

from webapp import connections

MANY = 1100  # past 1023, the highest descriptor select.select accepts


@pytest.fixture
def many_open_files():
    """Hold ``MANY`` descriptors open, so that the next connection's number is past them."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < MANY + 100:
        pytest.skip(f"the hard limit on open files ({hard}) is too low")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, MANY + 100), hard))
    held = [os.open(os.devnull, os.O_RDONLY) for _ in range(MANY)]
    yield
    for fd in held:
        os.close(fd)
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_an_idle_connection_needs_no_round_trip_and_a_closed_one_does(db_url):
    with psycopg.connect(db_url, autocommit=True) as conn, psycopg.connect(db_url) as killer:
        assert not connections.may_be_closed(conn)
        killer.execute("SELECT pg_terminate_backend(%s)", (conn.info.backend_pid,))
        killer.commit()
        deadline = time.monotonic() + 5  # for the server's goodbye to arrive
        while not connections.may_be_closed(conn):
            assert time.monotonic() < deadline, "a terminated connection looked idle"
            time.sleep(0.01)


def test_a_connection_numbered_past_1023_is_checked_too(db_url, many_open_files):
    with psycopg.connect(db_url, autocommit=True) as conn:
        assert conn.fileno() >= 1024
        assert not connections.may_be_closed(conn)
