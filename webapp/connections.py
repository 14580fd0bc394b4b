"""What the web and worker pools share about their connections (no Flask here)."""

import select

import psycopg


def may_be_closed(conn: psycopg.BaseConnection) -> bool:
    """Whether an idle connection's socket has something to read.

    It has nothing unless the server closed it (a restart, a terminated backend) or
    sent a notice; only then is the usual round-trip check worth its cost.
    """
    poller = select.poll()  # select.select refuses descriptors from 1024 up
    poller.register(conn.fileno(), select.POLLIN)
    return bool(poller.poll(0))
