"""gunicorn as webapp/gunicorn_conf.py sets it up: its limits, and the requests it refuses
itself, answered with the app's headers and error shape (webapp/gunicorn_worker.py)."""

import json
import re
import socket
import time
from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest
import requests

from tests import processes
from tests.conftest import TEST_SECRET
from webapp import security

pytestmark = pytest.mark.e2e

API = b"/api/v1/jobs"


@pytest.fixture(scope="module")
def web(migrated_url, tmp_path_factory):
    """One gunicorn for the module, started from a directory that holds none of Howdah:
    it finds its settings in the package. Yields its port and its log."""
    directory = tmp_path_factory.mktemp("elsewhere")
    port = processes.free_port()
    env = processes.process_env(
        DATABASE_URL=migrated_url, SECRET_KEY=TEST_SECRET, PORT=str(port), WEB_CONCURRENCY="1"
    )
    process = processes.outlive_the_test(
        processes.start_web(env, directory / "web.log", cwd=directory)
    )
    processes.wait_for(f"http://127.0.0.1:{port}/healthz")
    yield port, directory / "web.log"
    processes.stop(process)


def get(target: bytes, *fields: bytes) -> bytes:
    """A GET request for ``target`` with ``fields`` as header lines, as raw bytes."""
    return b"\r\n".join([b"GET " + target + b" HTTP/1.1", b"Host: x", *fields, b"", b""])


LONG_QUERY = b"?cursor=" + b"a" * 10_000
MANY_FIELDS = [b"X-Field-%d: 1" % n for n in range(60)]

REFUSED = [
    ("request line of 10 KB", get(API + LONG_QUERY), 414, "4094 bytes"),
    ("header field of 9 KB", get(API, b"X-Big: " + b"a" * 9_000), 431, "8190 bytes"),
    ("too many header fields", get(API, *MANY_FIELDS), 431, "50 header fields"),
    ("malformed request line", b"GET " + API + b" HTTP/1.1 and more\r\n\r\n", 400, "line"),
    ("method in lower case", b"get " + API + b" HTTP/1.1\r\n\r\n", 400, "request line"),
    ("header name with a space", get(API, b"Bad Name: x"), 400, "header field"),
    ("two Content-Lengths", get(API, b"Content-Length: 1", b"Content-Length: 2"), 400, "header"),
]


def assert_like_the_apps_own_errors(headers: dict):
    for name, value in security.HEADERS.items():
        assert headers[name.lower()] == value
    assert headers["cache-control"] == "no-store"
    assert headers["connection"] == "close"


@pytest.mark.parametrize(
    ("request_bytes", "status", "mentions"), [c[1:] for c in REFUSED], ids=[c[0] for c in REFUSED]
)
def test_a_refused_api_request_gets_the_apps_headers_and_json(web, request_bytes, status, mentions):
    port, log = web
    got, headers, body, rest = processes.exchange(port, request_bytes)
    assert got == status
    assert_like_the_apps_own_errors(headers)
    assert headers["content-type"] == "application/json"
    error = json.loads(body)
    assert set(error) == {"error", "message"}
    assert error["error"] in {
        "Bad Request",
        "Request URI Too Long",
        "Request Header Fields Too Large",
    }
    assert mentions in error["message"]
    assert rest == b""  # one answer, then the connection is closed
    assert "Traceback" not in log.read_text()


def test_elsewhere_the_refusal_is_plain_text_unless_json_is_accepted(web):
    port, log = web
    status, headers, body, _ = processes.exchange(port, get(b"/jobs" + LONG_QUERY))
    assert status == 414
    assert_like_the_apps_own_errors(headers)
    assert headers["content-type"] == "text/plain; charset=utf-8"
    assert body.startswith(b"414 Request URI Too Long: The request line is longer than")

    accepts = b"Accept: text/html;q=0.5, application/json"
    status, headers, body, _ = processes.exchange(port, get(b"/jobs", *MANY_FIELDS, accepts))
    assert status == 431
    assert headers["content-type"] == "application/json"
    assert json.loads(body)["error"] == "Request Header Fields Too Large"

    status, headers, body, _ = processes.exchange(port, b"\x16\x03\x01 not HTTP\r\n\r\n")
    assert status == 400
    assert_like_the_apps_own_errors(headers)
    assert body == b"400 Bad Request: The request line is malformed.\n"
    assert "Traceback" not in log.read_text()


def test_the_limits_are_where_the_readme_says(web):
    port, _ = web
    line = get(API + b"?cursor=" + b"a" * (4094 - len(b"GET /api/v1/jobs?cursor= HTTP/1.1")))
    assert processes.exchange(port, line)[0] == 401  # the app's answer: no token
    assert processes.exchange(port, line.replace(b"?", b"?a", 1))[0] == 414
    fields = [b"X-Field-%d: 1" % n for n in range(49)]  # and Host
    assert processes.exchange(port, get(API, *fields))[0] == 401
    assert processes.exchange(port, get(API, *fields, b"X-One-More: 1"))[0] == 431
    field = b"X-Big: " + b"a" * (8190 - len(b"X-Big: \r\n"))  # gunicorn counts the CRLF
    assert processes.exchange(port, get(API, field))[0] == 401
    assert processes.exchange(port, get(API, field + b"a"))[0] == 431


def chunked_post(path: bytes, content_type: bytes) -> bytes:
    """A POST whose chunked body has a chunk size that is not hexadecimal."""
    head = [b"POST " + path + b" HTTP/1.1", b"Host: x", b"Content-Type: " + content_type]
    return b"\r\n".join([*head, b"Transfer-Encoding: chunked", b"", b"zz", b"{}", b"0", b"", b""])


def test_a_malformed_body_is_one_400_or_one_answer_never_two(web):
    port, log = web
    # The app reads the form: gunicorn's error reaches it, and it answers 400.
    status, _, body, rest = processes.exchange(
        port, chunked_post(b"/login", b"application/x-www-form-urlencoded")
    )
    assert status == 400 and b"400" in body and rest == b""
    # The app answers 401 without reading the body; gunicorn's drain of it then fails,
    # and nothing more is written on that connection.
    status, _, body, rest = processes.exchange(port, chunked_post(API, b"application/json"))
    assert status == 401 and json.loads(body)["error"] == "Unauthorized"
    assert rest == b""
    assert "Traceback" not in log.read_text()


def test_liveness_is_answered_as_the_route_answers_it(web):
    port, _ = web
    base = f"http://127.0.0.1:{port}"
    sent = {"X-Request-ID": "probe-1"}  # echoed by both; each answer has its own otherwise
    on_the_main_loop = requests.get(f"{base}/healthz", headers=sent, timeout=5)
    by_the_app = requests.get(f"{base}/healthz?from=app", headers=sent, timeout=5)
    assert on_the_main_loop.status_code == by_the_app.status_code == 200
    assert on_the_main_loop.content == by_the_app.content == b'{"status":"ok"}\n'
    del on_the_main_loop.headers["Date"], by_the_app.headers["Date"]
    assert on_the_main_loop.headers == by_the_app.headers
    assert on_the_main_loop.headers["X-Request-ID"] == "probe-1"
    head = requests.head(f"{base}/healthz", timeout=5)
    assert head.status_code == 200 and head.content == b""
    assert re.fullmatch("[0-9a-f]{32}", head.headers["X-Request-ID"])
    assert head.headers["Content-Length"] == "16"


def test_liveness_keeps_http_framing(web):
    port, _ = web
    status, headers, body, rest = processes.exchange(port, b"GET /healthz HTTP/1.0\r\n\r\n")
    assert (status, headers["connection"], body, rest) == (200, "close", b'{"status":"ok"}\n', b"")
    # A probe and, behind it on the same connection, a request for the app.
    pipelined = get(b"/healthz") + get(b"/api/v1/jobs", b"Connection: close")
    status, headers, body, rest = processes.exchange(port, pipelined)
    assert (status, headers["connection"]) == (200, "keep-alive")
    assert rest.startswith(b"HTTP/1.1 401 UNAUTHORIZED\r\n")  # the app's, without a token


@pytest.fixture
def two_threads(db_url, tmp_path):
    """gunicorn with one process of two threads, whose requests wait up to a minute on a
    lock. Yields its base URL."""
    port = processes.free_port()
    env = processes.process_env(
        DATABASE_URL=db_url,
        SECRET_KEY=TEST_SECRET,
        PORT=str(port),
        WEB_CONCURRENCY="1",
        WEB_THREADS="2",
        DB_LOCK_TIMEOUT_MS="60000",
        DB_STATEMENT_TIMEOUT_MS="60000",
    )
    process = processes.start_web(env, tmp_path / "web.log")
    base = f"http://127.0.0.1:{port}"
    processes.wait_for(f"{base}/healthz")
    yield base
    processes.stop(process)


def waiting_on_locks(conn) -> int:
    return conn.execute(
        "SELECT count(*) FROM pg_stat_activity"
        " WHERE application_name = 'howdah-web' AND wait_event_type = 'Lock'"
        " AND datname = current_database()"
    ).fetchone()[0]


def test_liveness_answers_at_once_while_every_thread_waits_on_the_database(
    two_threads, db_url, make_token
):
    token = {"Authorization": f"Bearer {make_token(None)}"}
    reads = ThreadPoolExecutor(4)
    with psycopg.connect(db_url) as locker, psycopg.connect(db_url, autocommit=True) as watch:
        locker.execute("LOCK TABLE procrastinate_jobs IN ACCESS EXCLUSIVE MODE")
        waiting = [
            reads.submit(requests.get, f"{two_threads}/api/v1/jobs", headers=token, timeout=60)
            for _ in range(4)  # two for the threads, two queued behind them
        ]
        deadline = time.monotonic() + 20
        while waiting_on_locks(watch) < 2:
            assert time.monotonic() < deadline, "the reads never reached the lock"
            time.sleep(0.05)

        with requests.Session() as probe:  # new connections, and one kept alive
            for call in (requests.get, requests.head, probe.get, probe.get, probe.get):
                started = time.monotonic()
                response = call(f"{two_threads}/healthz", timeout=1)
                assert response.status_code == 200
                assert time.monotonic() - started < 1
        assert not any(read.done() for read in waiting)
        locker.rollback()
    assert [read.result().status_code for read in waiting] == [200] * 4
    reads.shutdown()


def test_heads_sent_a_byte_at_a_time_hold_no_thread(two_threads, make_token):
    token = {"Authorization": f"Bearer {make_token(None)}"}
    port = int(two_threads.rsplit(":", 1)[1])
    trickles = [socket.create_connection(("127.0.0.1", port)) for _ in range(4)]
    try:
        for trickle in trickles:  # more unfinished heads than the process has threads
            trickle.sendall(b"GET /api/v1/jobs HTTP/1.1\r\nHost: x\r\n")
        time.sleep(0.5)
        for trickle in trickles:
            trickle.sendall(b"X-Slow: 1\r\n")
        started = time.monotonic()
        response = requests.get(f"{two_threads}/api/v1/jobs", headers=token, timeout=5)
        assert response.status_code == 200
        assert time.monotonic() - started < 2
        # Trickling on does not buy time: each is closed after keep-alive and grace (10 s).
        deadline = time.monotonic() + 15
        for trickle in trickles:
            trickle.settimeout(1)
            while True:
                assert time.monotonic() < deadline, "an unfinished head was kept open"
                try:
                    trickle.sendall(b"X")
                    if trickle.recv(1) == b"":
                        break
                except TimeoutError:
                    continue
                except OSError:
                    break
    finally:
        for trickle in trickles:
            trickle.close()
