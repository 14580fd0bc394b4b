"""Debian's PgBouncer in transaction mode in front of the test PostgreSQL, for tests."""

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import psycopg.conninfo
import pytest
from psycopg.rows import dict_row

from tests import processes

# Debian installs it in /usr/sbin, which is not on a normal user's PATH.
SEARCH_PATH = os.pathsep.join(["/usr/sbin", "/usr/local/sbin", "/usr/bin", "/usr/local/bin"])
MISSING = (
    "PgBouncer is not installed: install Debian's pgbouncer (apt-get install pgbouncer;"
    " .ci/run does it when it runs as root with apt-get)"
)
# Few server connections for many clients: transactions of every client really share
# them, so state one transaction left on its session would meet another client.
POOL_SIZE = 2


def binary() -> str:
    """The pgbouncer executable; the test fails (never skips) without one."""
    found = shutil.which("pgbouncer") or shutil.which("pgbouncer", path=SEARCH_PATH)
    if found is None:
        pytest.fail(MISSING, pytrace=False)
    return found


@dataclass(frozen=True)
class PgBouncer:
    """A running PgBouncer: its port, and the user it lets in without a password."""

    port: int
    user: str

    def url(self, database: str) -> str:
        """A URL to ``database`` on the test server, through PgBouncer."""
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{database}"

    def show(self, what: str) -> list[dict]:
        """``SHOW <what>`` on PgBouncer's admin console (its rows, by column name)."""
        with (
            psycopg.connect(self.url("pgbouncer"), autocommit=True) as conn,
            psycopg.ClientCursor(conn, row_factory=dict_row) as cursor,
        ):
            # The console speaks the simple query protocol only, as a ClientCursor does.
            return cursor.execute(f"SHOW {what}").fetchall()


def config_text(
    server_url: str,
    port: int,
    directory: Path,
    connect_query: str | None,
    pool_size: int = POOL_SIZE,
) -> str:
    """A pgbouncer.ini sending every database name to the test server, in transaction mode."""
    server = psycopg.conninfo.conninfo_to_dict(server_url)
    target = f"host={server.get('host', 'localhost')} port={server.get('port', 5432)}"
    if server.get("password"):
        target += f" password={server['password']}"
    if connect_query:
        target += f" connect_query='{connect_query}'"
    return "\n".join(
        [
            "[databases]",
            f"* = {target}",
            "[pgbouncer]",
            "listen_addr = 127.0.0.1",
            f"listen_port = {port}",
            "unix_socket_dir =",
            "auth_type = trust",
            f"auth_file = {directory / 'userlist.txt'}",
            f"admin_users = {server.get('user', 'postgres')}",
            "pool_mode = transaction",
            f"default_pool_size = {pool_size}",
            "max_client_conn = 200",
            "",
        ]
    )


def wait_for_port(port: int, process: subprocess.Popen, timeout: float = 10.0) -> None:
    """Wait until PgBouncer accepts connections; fail if it exits or takes too long."""
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
            return
        assert process.poll() is None, f"pgbouncer exited with {process.returncode}"
        assert time.monotonic() < deadline, f"pgbouncer did not listen on {port} in {timeout}s"
        time.sleep(0.05)


def run_as(server_url: str) -> list[str]:
    """PgBouncer's ``-u`` option: as root, the owner of the server's socket folder (an
    embedded server's is private to its user), or nobody for a server over TCP."""
    if os.geteuid() != 0:
        return []
    host = psycopg.conninfo.conninfo_to_dict(server_url).get("host", "")
    if host.startswith("/"):
        return ["-u", pwd.getpwuid(os.stat(host).st_uid).pw_name]
    return ["-u", "nobody"]


@contextlib.contextmanager
def run(
    server_url: str,
    log_path: Path,
    connect_query: str | None = None,
    pool_size: int = POOL_SIZE,
) -> Iterator[PgBouncer]:
    """Start PgBouncer in front of ``server_url``'s server; stop it afterwards.

    ``connect_query`` runs on each server connection it opens (the timeouts, in production);
    ``pool_size`` is its ``default_pool_size``.
    """
    executable = binary()
    port = processes.free_port()
    user = psycopg.conninfo.conninfo_to_dict(server_url).get("user", "postgres")
    # PgBouncer refuses to run as root; as root it is told to become nobody, who must
    # read its files, so they live in a folder of their own rather than pytest's (0700).
    with tempfile.TemporaryDirectory(prefix="howdah-pgbouncer-") as folder:
        directory = Path(folder)
        directory.chmod(0o755)
        (directory / "userlist.txt").write_text(f'"{user}" ""\n')
        ini = directory / "pgbouncer.ini"
        ini.write_text(config_text(server_url, port, directory, connect_query, pool_size))
        for path in directory.iterdir():
            path.chmod(0o644)
        command = [executable, *run_as(server_url), str(ini)]
        process = processes.start(command, processes.process_env(), log_path)
        try:
            wait_for_port(port, process)
            yield PgBouncer(port, user)
        finally:
            processes.stop(process, timeout=10)
