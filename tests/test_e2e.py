"""Real gunicorn and worker processes against the test database."""

import re
import signal
import socket
import time

import procrastinate
import pytest
import requests

from tasks.app import app as procrastinate_app
from tasks.diagnostics import noop
from tests import processes
from tests.conftest import TEST_SECRET

pytestmark = pytest.mark.e2e


@pytest.fixture
def service(db_url, tmp_path, make_token):
    """gunicorn (2 workers) and one worker process, stopped with SIGTERM afterwards."""
    port = processes.free_port()
    env = processes.process_env(
        DATABASE_URL=db_url, SECRET_KEY=TEST_SECRET, PORT=str(port), WEB_CONCURRENCY="2"
    )
    web = processes.start_web(env, tmp_path / "web.log")
    worker = processes.start_worker(env, tmp_path / "worker.log", "--concurrency", "2")
    base = f"http://127.0.0.1:{port}"
    processes.wait_for(f"{base}/healthz")
    admin = {"Authorization": f"Bearer {make_token(None)}"}
    yield {"base": base, "web": web, "worker": worker, "logs": tmp_path, "admin": admin}
    for process in (web, worker):
        processes.stop(process)


def test_ready_with_a_fresh_worker_heartbeat(service):
    base = service["base"]
    assert requests.get(f"{base}/readyz", timeout=5).json() == {"status": "ready"}

    deadline = time.monotonic() + 20
    while True:
        status = requests.get(
            f"{base}/api/admin/status", headers=service["admin"], timeout=5
        ).json()
        if status["workers"]:
            break
        assert time.monotonic() < deadline, "the worker never registered"
        time.sleep(0.2)
    (worker,) = status["workers"]
    assert worker["stale"] is False
    assert worker["heartbeat_age_seconds"] < 12  # heartbeats come every 10 s
    assert status["database"]["pending_migrations"] == []


def test_worker_runs_a_job_and_both_stop_cleanly_on_sigterm(service, db_url, conn):
    connector = procrastinate.SyncPsycopgConnector(conninfo=db_url)
    with procrastinate_app.replace_connector(connector) as app:
        app.open()
        job_id = noop.defer(organization_id=1)
        app.close()

    deadline = time.monotonic() + 20
    while (
        conn.execute("SELECT status FROM procrastinate_jobs WHERE id = %s", (job_id,)).fetchone()[0]
        != "succeeded"
    ):
        assert time.monotonic() < deadline, "the job did not succeed"
        time.sleep(0.1)

    assert processes.stop(service["worker"], signal.SIGTERM, timeout=35) == 0
    assert processes.stop(service["web"], signal.SIGTERM, timeout=35) == 0
    assert re.search(r"worker \S+ stopped", (service["logs"] / "worker.log").read_text())
    # The worker unregistered itself on the way out.
    assert conn.execute("SELECT count(*) FROM procrastinate_workers").fetchone()[0] == 0


@pytest.mark.parametrize("missing", ["DATABASE_URL", "SECRET_KEY"])
def test_gunicorn_refuses_to_start_without_required_settings(db_url, tmp_path, missing):
    settings = {
        "DATABASE_URL": db_url,
        "SECRET_KEY": TEST_SECRET,
        "PORT": str(processes.free_port()),
    }
    del settings[missing]
    web = processes.start_web(processes.process_env(**settings), tmp_path / "web.log")
    assert web.wait(timeout=30) != 0
    output = (tmp_path / "web.log").read_text()
    assert "Traceback" not in output
    assert output.strip().splitlines()[-1].startswith(f"howdah: configuration error: {missing}")


def test_worker_refuses_to_start_without_database_url(tmp_path):
    worker = processes.start_worker(processes.process_env(), tmp_path / "worker.log")
    assert worker.wait(timeout=30) != 0
    output = (tmp_path / "worker.log").read_text().strip()
    assert (
        output == "howdah: configuration error: DATABASE_URL is required "
        "(for example postgresql://postgres@localhost/howdah)"
    )


def raw_request(base: str, head: str, body: bytes = b"") -> tuple[int, bytes]:
    """Send ``head`` (request line and headers) and ``body`` as they are; the status and
    the body of the answer."""
    host, port = base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(head.replace("\n", "\r\n").encode() + b"\r\n" + body)
        answer = sock.makefile("rb")
        status = int(answer.readline().split()[1])
        length = 0
        while (line := answer.readline().strip()) != b"":
            name, _, value = line.partition(b":")
            if name.lower() == b"content-length":
                length = int(value)
        return status, answer.read(length)


def test_a_huge_form_post_is_refused_before_its_body_is_read(service):
    # 2 GB announced, 64 KiB sent: the answer comes before the rest of the body.
    head = (
        "POST /login HTTP/1.1\nHost: x\n"
        "Content-Type: multipart/form-data; boundary=b\nContent-Length: 2000000000\n"
    )
    status, body = raw_request(service["base"], head, b"--b\r\n" + b"x" * 65536)
    assert status == 413
    assert b"413" in body  # the site's own error page
    assert b"Traceback" not in (service["logs"] / "web.log").read_bytes()


def test_form_fields_and_parts_are_bounded(service):
    login = f"{service['base']}/login"
    form = {"email": "x" * (70 * 1024)}
    assert requests.post(login, data=form, timeout=10).status_code == 413
    text_part = {"email": (None, "x" * (20 * 1024))}  # under the body limit, over a part's
    assert requests.post(login, files=text_part, timeout=10).status_code == 413
    parts = {f"f{n}": ("x.txt", b"x") for n in range(200)}
    assert requests.post(login, files=parts, timeout=10).status_code == 413
    assert requests.post(login, data={"email": "a@b.c"}, timeout=10).status_code == 400  # CSRF


def chunked(body: bytes):
    """``body`` as a generator, which requests sends chunked (no Content-Length)."""
    yield from (body[i : i + 65536] for i in range(0, len(body), 65536))


def test_chunked_bodies_are_bounded_like_any_other(service):
    job = b'{"task": "diagnostics:noop", "payload": {"organization_id": 1}}'
    json_headers = {**service["admin"], "Content-Type": "application/json"}
    with requests.Session() as http:
        http.headers.update(json_headers)
        # Valid JSON followed by spaces past the limit: refused, never cut short and run.
        for path, limit in (("/api/v1/jobs", 256 * 1024), ("/api/v1/jobs/batch", 4 << 20)):
            body = (b'{"jobs": [' + job + b"]}" if "batch" in path else job) + b" " * limit
            response = http.post(service["base"] + path, data=chunked(body), timeout=30)
            assert response.status_code == 413, response.text
        assert http.post(service["base"] + "/api/v1/jobs", data=chunked(job)).status_code == 202
    form = b"email=" + b"x" * (70 * 1024)
    response = requests.post(
        f"{service['base']}/login",
        data=chunked(form),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        timeout=10,
    )
    assert response.status_code == 413
    assert "Traceback" not in (service["logs"] / "web.log").read_text()


def test_json_nested_deeper_than_python_parses_is_400(service):
    deep = "[" * 5000 + "]" * 5000
    for path in ("/api/v1/jobs", "/api/v1/jobs/batch"):
        response = requests.post(
            service["base"] + path,
            data=deep,
            headers={**service["admin"], "Content-Type": "application/json"},
            timeout=10,
        )
        assert response.status_code == 400, response.text
        assert response.json()["error"] == "Bad Request"
    assert "Traceback" not in (service["logs"] / "web.log").read_text()
