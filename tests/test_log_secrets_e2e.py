"""No secret in any log line, and every line a JSON object with its context: real gunicorn,
workers and commands at LOG_LEVEL=DEBUG, with distinctive secrets everywhere they go."""

import re
import subprocess
import sys
import time
import uuid
from urllib.parse import urlsplit, urlunsplit

import pytest
import requests
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from psycopg import sql

from tests import processes
from tests.fake_telnyx import FakeTelnyx
from tests.test_worker_e2e import Service
from tests.test_worker_processes import wait_status

# The SMTP server asks for a password over plain TCP, on localhost only.
pytestmark = [
    pytest.mark.e2e,
    pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS"),
]

MARK = uuid.uuid4().hex[:12]
SECRETS = {
    name: f"{name.lower()}{MARK}"
    for name in (
        "DB_PASSWORD",
        "SECRET_KEY",
        "TELNYX_API_KEY",
        "SMTP_PASSWORD",
        "USER_PASSWORD",
        "WRONG_PASSWORD",
        "BAD_TOKEN",
        "SIGNATURE",
    )
}
FIELDS = {"time", "level", "logger", "message"}


class Inbox:
    """An SMTP server's handler that keeps the messages and knows one user."""

    def __init__(self):
        self.messages = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append(envelope)
        return "250 OK"


def smtp_sign_in(server, session, envelope, mechanism, auth_data):
    good = (
        isinstance(auth_data, LoginPassword)
        and auth_data.password.decode() == (SECRETS["SMTP_PASSWORD"])
    )
    return AuthResult(success=good, handled=False)


@pytest.fixture
def smtp():
    inbox = Inbox()
    port = processes.free_port()
    controller = Controller(
        inbox,
        hostname="127.0.0.1",
        port=port,
        authenticator=smtp_sign_in,
        auth_required=True,
        auth_require_tls=False,
    )
    controller.start()
    yield inbox, port
    controller.stop()


@pytest.fixture
def secret_url(db_url, conn):
    """``db_url`` as a role with a password (a trust server does not check it; others do)."""
    role = f"howdah_logs_{MARK}"
    conn.execute(
        sql.SQL("CREATE ROLE {} LOGIN SUPERUSER PASSWORD {}").format(
            sql.Identifier(role), sql.Literal(SECRETS["DB_PASSWORD"])
        )
    )
    parts = urlsplit(db_url)
    netloc = f"{role}:{SECRETS['DB_PASSWORD']}@{parts.hostname}:{parts.port or 5432}"
    yield urlunsplit(parts._replace(netloc=netloc))
    conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


@pytest.fixture
def service(secret_url, tmp_path, make_token, httpserver, smtp, monkeypatch):
    """Web and worker with every secret set, at DEBUG, in JSON, with the access log on."""
    telnyx = FakeTelnyx(httpserver)
    _, smtp_port = smtp
    settings = {
        "SECRET_KEY": SECRETS["SECRET_KEY"],
        "LOG_LEVEL": "DEBUG",
        "LOG_FORMAT": "json",
        "WEB_ACCESS_LOG": "true",
        "SMS_PROVIDER": "telnyx",
        "TELNYX_API_KEY": SECRETS["TELNYX_API_KEY"],
        "TELNYX_FROM": "+18445550001",
        "TELNYX_BASE_URL": telnyx.base_url,
        "EMAIL_PROVIDER": "smtp",
        "SMTP_HOST": "127.0.0.1",
        "SMTP_PORT": str(smtp_port),
        "SMTP_SECURITY": "none",
        "SMTP_USER": "howdah",
        "SMTP_PASSWORD": SECRETS["SMTP_PASSWORD"],
        "SMTP_FROM": "howdah@example.com",
    }
    # Service builds its processes' environment with process_env: add these to it.
    build = processes.process_env
    monkeypatch.setattr(processes, "process_env", lambda **given: {**build(**given), **settings})
    running = Service(secret_url, tmp_path, make_token(None))
    running.telnyx = telnyx
    yield running
    running.stop()


def records_of(output: str) -> list[dict]:
    """Every line as a JSON object with the four fields every line has."""
    records = processes.log_records(output)
    for record in records:
        assert record.keys() >= FIELDS, record
    return records


def sign_in(base: str, email: str, password: str) -> requests.Session:
    browser = requests.Session()
    page = browser.get(f"{base}/login", timeout=10).text
    csrf = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page)[1]
    browser.post(
        f"{base}/login",
        data={"email": email, "password": password, "csrf_token": csrf},
        headers={"Referer": f"{base}/login"},
        timeout=10,
    )
    browser.csrf = csrf
    return browser


def exercise_the_web(service, make_token, make_user) -> list[str]:
    """Requests that carry secrets, good and bad; the secrets the service made."""
    site = f"http://127.0.0.1:{service.port}"
    email = make_user("logs@example.com", password=SECRETS["USER_PASSWORD"])
    sign_in(site, email, SECRETS["WRONG_PASSWORD"])
    browser = sign_in(site, email, SECRETS["USER_PASSWORD"])
    assert browser.get(f"{site}/api/v1/jobs", timeout=10).status_code == 200  # signed in
    token = make_token(1)
    answer = requests.get(
        f"{site}/api/v1/jobs?token={token}",
        headers={"Authorization": f"Bearer {token}", "X-Request-ID": f"known-{MARK}"},
        timeout=10,
    )
    assert answer.status_code == 200 and answer.headers["X-Request-ID"] == f"known-{MARK}"
    bad = requests.get(
        f"{site}/api/v1/jobs",
        headers={"Authorization": f"Bearer {SECRETS['BAD_TOKEN']}"},
        timeout=10,
    )
    assert bad.status_code == 401 and re.fullmatch("[0-9a-f]{32}", bad.headers["X-Request-ID"])
    # A header line gunicorn refuses quotes the token in its own message.
    status, headers, _, _ = processes.exchange(
        service.port,
        f"GET /api/v1/jobs HTTP/1.1\r\nHost: x\r\nAuthorization Bearer {token}\r\n\r\n".encode(),
    )
    assert status == 400 and headers["x-request-id"]
    receipt = requests.post(
        f"{site}/webhooks/telnyx",
        data=b'{"data": {}}',
        headers={
            "telnyx-signature-ed25519": SECRETS["SIGNATURE"],
            "telnyx-timestamp": "1",
            "Content-Type": "application/json",
        },
        timeout=10,
    )
    assert receipt.status_code >= 400
    return [token, browser.csrf, *browser.cookies.values()]


def run_jobs(service, conn) -> dict[str, int]:
    """An SMS, a digest by email, and a job that fails; their ids."""
    service.start_worker()
    ids = {
        "sms": service.defer("sms:send_notification", to="+14155550123", body="hi"),
        "digest": service.defer(
            "email:send_digest", period="daily", recipients=["ops@example.com"]
        ),
        "failing": service.defer("diagnostics:fail_then_succeed", failures=1),
    }
    for job_id in ids.values():
        wait_status(conn, job_id, "succeeded", timeout=60)
    service.telnyx.wait_for(1)
    return ids


def command(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "flask", "--app", "webapp", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=processes.ROOT,
    )


def test_no_secret_reaches_any_log_and_every_line_has_its_context(
    service, conn, make_token, make_user, smtp, tmp_path
):
    made = exercise_the_web(service, make_token, make_user)
    ids = run_jobs(service, conn)
    assert len(smtp[0].messages) == 1  # the digest went out, signed in
    # The release command, a token made on the command line, and a worker whose database
    # cannot be reached (its URL still holds the password).
    release = command(service.env, "migrate")
    assert release.returncode == 0, release.stderr
    created = command(service.env, "tokens", "create", "--org", "Acme", "--name", "cli")
    assert created.returncode == 0, created.stderr
    printed = re.search(r"^hwd_\S+$", created.stdout, re.M)[0]  # for the user, on stdout
    url = service.env["DATABASE_URL"]
    elsewhere = url.replace(f":{urlsplit(url).port}/", f":{processes.free_port()}/")
    offline = processes.start_worker(
        dict(service.env, DATABASE_URL=elsewhere), tmp_path / "offline.log"
    )
    wait_for_line(tmp_path / "offline.log", "database unavailable")
    processes.stop(offline)
    service.stop()

    # Logs go to stderr (the processes' files hold both streams); a command's stdout is
    # its answer to the user.
    logged = {path.name: path.read_text() for path in tmp_path.glob("*.log")}
    logged |= {"migrate": release.stderr, "tokens create": created.stderr}
    secrets = [*SECRETS.values(), *made, printed]
    for name, output in [*logged.items(), ("migrate's stdout", release.stdout)]:
        for secret in filter(None, secrets):
            assert secret not in output, f"a secret in {name}"
    records = {name: records_of(output) for name, output in logged.items()}
    assert records["migrate"] and records["offline.log"]

    web = records["web.log"]
    access = [r for r in web if r["logger"] == "gunicorn.access"]
    assert access and all(re.fullmatch(r"[\w.-]{1,128}", r["request_id"]) for r in access)
    assert all("?" not in r["path"] for r in access)  # no query string
    known = [r for r in web if r.get("request_id") == f"known-{MARK}"]
    assert any(r["logger"] != "gunicorn.access" and r.get("organization_id") == 1 for r in known)

    worker = records["worker0.log"]
    assert all(r.get("worker") for r in worker)
    for task, job_id in ids.items():
        lines = [r for r in worker if r.get("job_id") == job_id]
        assert lines, f"no line for the {task} job"
        for line in lines:
            assert line["organization_id"] == 1 and line["attempt"] >= 1 and line["task"]
    failed = [r for r in worker if r.get("job_id") == ids["failing"] and r["level"] == "WARNING"]
    assert failed and failed[0]["attempt"] == 1 and failed[0]["action"] == "job_failed"


def wait_for_line(path, words: str, timeout: float = 30.0) -> None:
    """Wait until the log at ``path`` says ``words``."""
    deadline = time.monotonic() + timeout
    while words not in path.read_text():
        assert time.monotonic() < deadline, f"no {words!r} in {path.name}"
        time.sleep(0.1)
