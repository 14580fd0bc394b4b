"""Every /api route against every kind of caller: exact status codes, and no leak across tenants.

Organization A (id 1) owns the jobs; B (id 2) is the other tenant. Each case runs on
an emptied database with A's jobs: a waiting one, a failed one, and their attempts.
"""

import re

import pytest

from tests.conftest import AuthActions, bearer, sms_job

MARKER = "acme-private-marker"
A_SMS = {
    "task": "sms:send_notification",
    "payload": {"organization_id": 1, "to": "+14155550123", "body": MARKER},
}
A_NOOP = sms_job(1)
SUBSCRIPTION = {
    "recipients": ["ops@example.com"],
    "frequency": "daily",
    "hour": 8,
    "time_zone": "UTC",
}
SUBSCRIPTIONS = "/api/v1/digest-subscriptions"

CALLERS = [
    "anonymous",
    "viewer_a",
    "operator_a",
    "operator_b",
    "admin",
    "token_a",
    "revoked_token",
    "expired_token",
]

# (method, path, body, status for a caller allowed to do it); {todo}/{failed} are A's
# jobs, {subscription} A's digest subscription.
ROUTES = [
    ("GET", "/api/v1/jobs", None, 200),
    ("POST", "/api/v1/jobs", A_NOOP, 202),
    ("POST", "/api/v1/jobs/batch", {"jobs": [A_NOOP, A_NOOP]}, 202),
    ("GET", "/api/v1/jobs/{todo}", None, 200),
    ("GET", "/api/v1/jobs/{failed}/attempts", None, 200),
    ("POST", "/api/v1/jobs/{todo}/cancel", None, 200),
    ("POST", "/api/v1/jobs/{failed}/retry", None, 202),
    ("GET", SUBSCRIPTIONS, None, 200),
    ("POST", f"{SUBSCRIPTIONS}?organization_id=1", SUBSCRIPTION, 201),
    ("GET", f"{SUBSCRIPTIONS}/{{subscription}}", None, 200),
    ("PUT", f"{SUBSCRIPTIONS}/{{subscription}}", SUBSCRIPTION, 200),
    ("POST", f"{SUBSCRIPTIONS}/{{subscription}}/send", None, 202),
    ("DELETE", f"{SUBSCRIPTIONS}/{{subscription}}", None, 204),
    ("GET", "/api/v1/tasks", None, 200),
    ("GET", "/api/v1/openapi.json", None, 200),
    ("GET", "/api/admin/status", None, 200),
    ("GET", "/api/admin/queues/health", None, 200),
    ("GET", "/api/admin/audit", None, 200),
]


def expected(caller: str, method: str, path: str, allowed: int) -> int:
    """The status each kind of caller must get."""
    if path == "/api/v1/openapi.json":
        return 200
    if caller in ("anonymous", "revoked_token", "expired_token"):
        return 401
    if caller == "admin":
        return allowed
    if path.startswith("/api/admin/"):
        return 403
    if caller == "viewer_a":
        return allowed if method == "GET" else 403
    if caller == "operator_b":
        if "{" in path:
            return 404  # A's job does not exist for B
        # B may not defer A's payloads, nor name A's organization
        return 403 if method == "POST" else allowed
    return allowed  # operator_a, token_a


@pytest.fixture
def a_jobs(app, make_token, conn):
    """A waiting and a failed job of organization A, deferred through the API."""
    client = bearer(app.test_client(), make_token(1))
    todo = client.post("/api/v1/jobs", json=A_SMS).get_json()["id"]
    failed = client.post("/api/v1/jobs", json=A_SMS).get_json()["id"]
    conn.execute("UPDATE procrastinate_jobs SET status = 'doing' WHERE id = %s", (failed,))
    conn.execute("UPDATE procrastinate_jobs SET status = 'failed' WHERE id = %s", (failed,))
    conn.execute(
        "INSERT INTO job_attempts (job_id, attempt, worker_name, outcome, started_at,"
        " finished_at, error_class, error_message, traceback)"
        " VALUES (%s, 1, 'w', 'failed', now(), now(), 'E', %s, %s)",
        (failed, MARKER, MARKER),
    )
    subscription = conn.execute(
        "INSERT INTO digest_subscriptions (organization_id, recipients, frequency, hour,"
        " time_zone) VALUES (1, %s, 'daily', 8, 'UTC') RETURNING id",
        ([f"{MARKER}@example.com"],),
    ).fetchone()[0]
    return {"todo": todo, "failed": failed, "subscription": subscription}


def caller_client(caller, app, make_token, make_user):
    """A test client acting as ``caller``; session callers send the CSRF header like a page."""
    if caller == "anonymous":
        return app.test_client(), {}
    tokens = {
        "token_a": lambda: make_token(1),
        "revoked_token": lambda: make_token(1, revoked=True),
        "expired_token": lambda: make_token(1, expired=True),
    }
    if caller in tokens:
        return bearer(app.test_client(), tokens[caller]()), {}
    role, org = {
        "viewer_a": ("viewer", 1),
        "operator_a": ("operator", 1),
        "operator_b": ("operator", 2),
        "admin": ("admin", 1),
    }[caller]
    email = make_user(f"{caller}@example.com", org, role)
    auth = AuthActions(app.test_client())
    assert auth.login(email).status_code == 302
    return auth.client, {"X-CSRFToken": auth.csrf_token("/")}


def counts(conn) -> tuple:
    """The jobs, the subscriptions, and what A's subscription holds."""
    return conn.execute(
        "SELECT (SELECT count(*) FROM procrastinate_jobs),"
        " (SELECT array_agg((recipients, hour, updated_at) ORDER BY id)::text"
        " FROM digest_subscriptions)"
    ).fetchone()


@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize(
    ("method", "template", "body", "allowed"), ROUTES, ids=[f"{m} {p}" for m, p, _, _ in ROUTES]
)
def test_access(app, make_token, make_user, a_jobs, conn, caller, method, template, body, allowed):
    client, headers = caller_client(caller, app, make_token, make_user)
    path = template.format(**a_jobs)
    before = counts(conn)

    response = client.open(path, method=method, json=body, headers=headers)

    assert response.status_code == expected(caller, method, template, allowed), response.get_data(
        as_text=True
    )
    assert response.is_json or response.status_code == 204
    if caller == "operator_b":  # nothing of A's comes back to B
        text = response.get_data(as_text=True)
        assert MARKER not in text
        assert not re.search(r'"organization_id":\s*1\b', text)
    if response.status_code >= 400:
        assert counts(conn) == before, "a refused request changed nothing"
        statuses = conn.execute("SELECT status FROM procrastinate_jobs ORDER BY id").fetchall()
        assert [s for (s,) in statuses][:2] == ["todo", "failed"]
