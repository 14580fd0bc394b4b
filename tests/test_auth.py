"""Sign-in, sessions, throttling, CSRF, cookies, headers and tokens, through the real app."""

import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from werkzeug.datastructures import WWWAuthenticate

from tests.conftest import TEST_PASSWORD, AuthActions, bearer, sms_job
from webapp import accounts, auth
from webapp.store import tokens as token_store

NOOP = sms_job(1)


@pytest.fixture
def operator(make_user):
    return make_user("op@acme.example", 1, "operator")


def cookie(client, name):
    return client.get_cookie(name)


def test_login_starts_a_session_and_redirects_home(auth, operator):
    response = auth.login("OP@Acme.Example")  # emails are case-insensitive
    assert response.status_code == 302
    assert response.headers["Location"] == "/"
    page = auth.client.get("/").get_data(as_text=True)
    assert "op@acme.example · operator" in page
    assert auth.client.get("/api/v1/jobs").status_code == 200


def test_wrong_password_and_unknown_email_get_the_same_answer(auth, operator):
    wrong = auth.login(operator, "not the password at all")
    unknown = auth.login("nobody@acme.example")
    assert wrong.status_code == unknown.status_code == 200  # the form again, with the message
    for response in (wrong, unknown):
        assert "Invalid email or password." in response.get_data(as_text=True)
    assert auth.client.get("/api/v1/jobs").status_code == 401


@pytest.mark.parametrize(
    ("target", "followed"),
    [
        ("/api/v1/jobs?status=todo", True),
        ("/", True),
        ("https://evil.example/", False),
        ("//evil.example/x", False),
        ("/\\evil.example", False),
        ("javascript:alert(1)", False),
        ("http:/evil.example", False),
    ],
)
def test_next_is_followed_only_to_a_local_path(auth, operator, target, followed):
    response = auth.login(operator, next=target)
    assert response.status_code == 302
    assert response.headers["Location"] == (target if followed else "/")


def test_login_page_carries_next_from_the_redirect(anon_client):
    response = anon_client.get("/api/v1/jobs", headers={"Accept": "text/html"})
    assert response.status_code == 401  # the API never redirects
    page = anon_client.get("/login?next=/api/v1/tasks").get_data(as_text=True)
    assert 'value="/api/v1/tasks"' in page


def test_remember_me_is_off_unless_ticked(auth, app, operator):
    auth.login(operator)
    assert cookie(auth.client, "remember_token") is None
    other = type(auth)(app.test_client())
    other.login(operator, remember="y")
    assert cookie(other.client, "remember_token") is not None


def test_session_is_renewed_at_login(auth, operator):
    with auth.client.session_transaction() as before:
        before["planted"] = "by an attacker before sign-in"
    auth.login(operator)
    with auth.client.session_transaction() as after:
        assert "planted" not in after
        first_id = after["_user_id"]
    auth.logout()
    auth.login(operator)
    with auth.client.session_transaction() as again:
        assert again["_user_id"] != first_id


def test_logout_ends_the_session_on_the_server(auth, app, operator):
    auth.login(operator)
    stolen = cookie(auth.client, "session").value
    assert auth.logout().status_code == 302
    replay = app.test_client()
    replay.set_cookie("session", stolen)
    assert replay.get("/api/v1/jobs").status_code == 401


def test_logout_is_post_only(auth, operator):
    auth.login(operator)
    assert auth.client.get("/logout").status_code == 405


def test_new_password_ends_existing_sessions(auth, operator, runner):
    auth.login(operator)
    result = runner.invoke(
        args=["users", "set-password", "--email", operator, "--password-stdin"],
        input="a brand new passphrase\n",
    )
    assert result.exit_code == 0, result.output
    assert "1 session(s) ended" in result.output
    assert auth.client.get("/api/v1/jobs").status_code == 401


def test_session_cookie_flags_over_http_and_https(app, operator):
    from tests.conftest import AuthActions

    plain = AuthActions(app.test_client())
    response = plain.login(operator, remember="y")
    cookies = response.headers.getlist("Set-Cookie")
    session = next(c for c in cookies if c.startswith("session="))
    assert "HttpOnly" in session and "SameSite=Lax" in session and "Secure" not in session

    secure = AuthActions(app.test_client(), base_url="https://localhost")
    response = secure.login(operator, remember="y")
    cookies = response.headers.getlist("Set-Cookie")
    assert {c.split("=")[0] for c in cookies} == {"session", "remember_token"}
    for set_cookie in cookies:
        assert "; Secure" in set_cookie, set_cookie


def from_address(auth, address: str):
    auth.client.environ_base["REMOTE_ADDR"] = address
    return auth


def test_failures_are_throttled_per_account_and_address(auth, operator, conn):
    stranger = from_address(auth, "10.0.0.1")
    for _ in range(5):
        assert stranger.login(operator, "wrong password here").status_code == 200
    blocked = stranger.login(operator)  # even the right password waits
    assert blocked.status_code == 429
    assert 1 <= int(blocked.headers["Retry-After"]) <= 61
    assert "Too many failed sign-ins" in blocked.get_data(as_text=True)
    # The stranger's failures do not lock the owner out from their own address.
    assert from_address(auth, "10.0.0.2").login(operator).status_code == 302
    # Moving the failures out of the window lifts the block.
    conn.execute("UPDATE audit_log SET at = at - interval '2 minutes'")
    assert from_address(auth, "10.0.0.1").login(operator).status_code == 302


def age_failures(conn, seconds: float) -> None:
    conn.execute(
        "UPDATE audit_log SET at = at - make_interval(secs => %s) WHERE action = 'login.failed'",
        (seconds,),
    )


def test_an_account_guessed_at_from_many_addresses_backs_off(make_app, db_url, make_user, conn):
    auth = AuthActions(make_app(db_url, LOGIN_ACCOUNT_MAX_FAILURES="3").test_client())
    owner = make_user("owner@acme.example", 1, "operator")
    assert from_address(auth, "192.0.2.1").login(owner).status_code == 302  # a known address
    auth.logout()
    for i in range(3):
        assert from_address(auth, f"10.0.1.{i}").login(owner, "wrong guess").status_code == 200
    # The limit is reached: each further try from a new address waits 1 s, then 2 s, 4 s...
    for wait in (1, 2, 4):
        blocked = from_address(auth, "10.0.1.99").login(owner, "wrong guess")
        assert blocked.status_code == 429
        assert blocked.headers["Retry-After"] == str(wait)
        age_failures(conn, wait)
        assert from_address(auth, "10.0.1.99").login(owner, "wrong guess").status_code == 200
    # The owner, from where they signed in before, is not held back by the strangers.
    assert from_address(auth, "192.0.2.1").login(owner).status_code == 302


def test_failures_are_throttled_per_address_across_accounts(make_app, db_url, make_user):
    auth = AuthActions(make_app(db_url, LOGIN_ADDRESS_MAX_FAILURES="3").test_client())
    for i in range(3):
        from_address(auth, "10.0.2.1").login(f"guess{i}@acme.example", "wrong password here")
    other = make_user("real@acme.example", 1, "viewer")
    assert from_address(auth, "10.0.2.1").login(other).status_code == 429
    assert from_address(auth, "10.0.2.2").login(other).status_code == 302


def test_concurrent_wrong_passwords_get_exactly_the_limit_checked(make_app, db_url, operator, conn):
    app = make_app(db_url, WEB_POOL_MAX_SIZE="40", DB_POOL_TIMEOUT="30")
    clients = [AuthActions(app.test_client()) for _ in range(40)]
    tokens = [client.csrf_token() for client in clients]
    start = threading.Barrier(len(clients))

    def guess(pair):
        client, token = pair
        start.wait()
        return client.client.post(
            "/login",
            data={"email": operator, "password": "wrong password here", "csrf_token": token},
        ).status_code

    with ThreadPoolExecutor(len(clients)) as pool:
        statuses = sorted(pool.map(guess, zip(clients, tokens, strict=True)))
    assert statuses == [200] * 5 + [429] * 35
    checked = conn.execute(
        "SELECT count(*) FROM audit_log WHERE action = 'login.failed'"
    ).fetchone()[0]
    assert checked == 5


def test_a_person_in_no_organization_is_not_signed_in(auth, make_user, conn):
    email = make_user("gone@acme.example", 1, "operator")
    conn.execute("DELETE FROM memberships")
    response = auth.login(email)
    assert response.status_code == 200
    assert "Invalid email or password." in response.get_data(as_text=True)
    assert conn.execute("SELECT count(*) FROM user_sessions").fetchone()[0] == 0
    reason = conn.execute(
        "SELECT details ->> 'reason' FROM audit_log WHERE action = 'login.failed'"
    ).fetchone()[0]
    assert reason == "the account belongs to no organization"


def test_login_without_csrf_token_is_400_and_signs_nobody_in(app, operator):
    client = app.test_client()
    response = client.post("/login", data={"email": operator, "password": TEST_PASSWORD})
    assert response.status_code == 400
    assert "CSRF" in response.get_data(as_text=True)
    assert client.get("/api/v1/jobs").status_code == 401


def test_logout_without_csrf_token_is_400_and_keeps_the_session(auth, operator):
    auth.login(operator)
    assert auth.client.post("/logout").status_code == 400
    assert auth.client.get("/api/v1/jobs").status_code == 200


def test_signed_in_api_changes_need_the_csrf_header(auth, operator, client):
    job_id = client.post("/api/v1/jobs", json=NOOP).get_json()["id"]
    auth.login(operator)
    refused = auth.client.post(f"/api/v1/jobs/{job_id}/cancel")
    assert refused.status_code == 400
    assert auth.client.get(f"/api/v1/jobs/{job_id}").get_json()["status"] == "todo"
    token = auth.csrf_token("/")
    accepted = auth.client.post(f"/api/v1/jobs/{job_id}/cancel", headers={"X-CSRFToken": token})
    assert accepted.status_code == 200


@pytest.mark.parametrize(
    "path", ["/", "/login", "/healthz", "/api/v1/openapi.json", "/nowhere", "/static/app.css"]
)
def test_security_headers_on_every_response(anon_client, path):
    with anon_client.get(path) as response:
        headers = response.headers
    csp = headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert "frame-ancestors 'none'" in csp
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Referrer-Policy"] == "same-origin"


def test_nothing_but_static_files_may_be_cached(auth, operator, client):
    auth.login(operator)
    for response in (auth.client.get("/"), client.get("/api/v1/jobs"), client.get("/healthz")):
        assert response.status_code == 200
        assert response.headers["Cache-Control"] == "no-store"
    with client.get("/static/app.css") as static:
        assert "no-store" not in static.headers.get("Cache-Control", "")


def test_a_token_call_sets_no_cookie_and_says_it_varies_with_one(client, auth, operator):
    response = client.post("/api/v1/jobs", json=NOOP)
    assert response.status_code == 202
    assert "Set-Cookie" not in response.headers
    assert response.headers["Vary"] == "Cookie"
    assert auth.login(operator).status_code == 302  # a session cookie is still set and read
    assert auth.client.get("/api/v1/jobs").status_code == 200


def test_pages_have_no_inline_script(anon_client):
    for path in ("/", "/login"):
        assert "<script>" not in anon_client.get(path).get_data(as_text=True)


@pytest.mark.parametrize("kind", ["revoked", "expired", "unknown", "garbage"])
def test_bad_tokens_get_401_with_a_challenge(app, make_token, kind):
    secret = {
        "revoked": lambda: make_token(1, revoked=True),
        "expired": lambda: make_token(1, expired=True),
        "unknown": lambda: "hwd_00000000_" + "x" * 43,
        "garbage": lambda: "not-a-token",
    }[kind]()
    response = bearer(app.test_client(), secret).get("/api/v1/jobs")
    assert response.status_code == 401
    assert response.get_json()["error"] == "Unauthorized"
    challenge = WWWAuthenticate.from_header(response.headers["WWW-Authenticate"])
    assert challenge.type == "bearer"
    assert challenge.parameters == {"realm": "howdah", "error": "invalid_token"}


def test_missing_token_challenge_names_no_error(anon_client):
    response = anon_client.get("/api/v1/jobs")
    assert response.status_code == 401
    challenge = WWWAuthenticate.from_header(response.headers["WWW-Authenticate"])
    assert (challenge.type, challenge.parameters) == ("bearer", {"realm": "howdah"})


def test_tokens_are_stored_hashed_and_note_their_last_use(client, conn):
    secret = client.environ_base["HTTP_AUTHORIZATION"].split()[1]
    stored = conn.execute("SELECT prefix, token_hash, last_used_at FROM api_tokens").fetchone()
    assert secret.startswith(stored[0] + "_")
    assert secret not in stored[1] and stored[2] is None
    client.get("/api/v1/jobs")
    assert conn.execute("SELECT last_used_at FROM api_tokens").fetchone()[0] is not None


def test_expiring_token_works_until_it_expires(app, make_token):
    assert (
        bearer(app.test_client(), make_token(1, expires_days=1)).get("/api/v1/jobs").status_code
        == 200
    )


@pytest.fixture
def long_cache(app):
    """Valid tokens kept a minute instead of a moment, so that what the cache must not
    do (outlive an expiry, remember a refusal) shows whatever the machine's speed."""
    app.extensions[auth.CACHE_EXTENSION] = accounts.TokenCache(seconds=60)


def test_a_cached_token_still_stops_at_its_expiry(app, make_token, conn, long_cache):
    secret = make_token(1)
    left = conn.execute(
        "UPDATE api_tokens SET expires_at = now() + interval '0.3 seconds'"
        " RETURNING extract(epoch FROM expires_at - now())::float8"
    ).fetchone()[0]
    expires = time.monotonic() + left
    api = bearer(app.test_client(), secret)
    assert api.get("/api/v1/jobs").status_code == 200
    time.sleep(max(0.0, expires - time.monotonic()))
    assert api.get("/api/v1/jobs").status_code == 401


def test_a_refused_token_is_not_remembered(app, conn, orgs, long_cache):
    secret = "hwd_0a1b2c3d_" + "x" * 43
    api = bearer(app.test_client(), secret)
    assert api.get("/api/v1/jobs").status_code == 401
    token_store.insert_token(conn, 1, "late", secret[:12], accounts.hash_secret(secret), None)
    assert api.get("/api/v1/jobs").status_code == 200


def test_revoking_a_token_drops_it_from_this_process_at_once(
    app, make_token, conn, runner, long_cache
):
    secret = make_token(1)
    api = bearer(app.test_client(), secret)
    assert api.get("/api/v1/jobs").status_code == 200
    prefix = conn.execute("SELECT prefix FROM api_tokens").fetchone()[0]
    assert runner.invoke(args=["tokens", "revoke", prefix]).exit_code == 0
    assert api.get("/api/v1/jobs").status_code == 401


def test_the_token_cache_keeps_the_newest_entries_up_to_its_size():
    cache = accounts.TokenCache(seconds=60, size=2)
    principals = [accounts.Principal("token", n, f"hwd_{n}", "operator", 1) for n in range(4)]
    later = time.monotonic() + 60
    cache.put("gone", principals[0], time.monotonic() - 1)  # ran out: dropped first
    cache.put("a", principals[1], later)
    cache.put("b", principals[2], later)
    assert [cache.get(key) for key in ("gone", "a", "b")] == [None, *principals[1:3]]
    cache.put("c", principals[3], later)
    assert [cache.get(key) for key in ("a", "b", "c")] == [None, *principals[2:]]
    cache.forget(2)
    assert [cache.get(key) for key in ("b", "c")] == [None, principals[3]]


def test_health_is_open_and_says_nothing_about_tenants(anon_client, client):
    client.post("/api/v1/jobs", json=NOOP)
    for path in ("/healthz", "/readyz"):
        response = anon_client.get(path)
        assert response.status_code == 200
        assert set(response.get_json()) == {"status"}


def test_audit_log_records_logins_and_job_actions(auth, operator, client, admin_client, make_user):
    auth.login(operator, "wrong password here")
    auth.login(operator)
    job_id = client.post("/api/v1/jobs", json=NOOP).get_json()["id"]
    client.post(f"/api/v1/jobs/{job_id}/cancel")
    client.post(f"/api/v1/jobs/{job_id}/retry")

    entries = admin_client.get("/api/admin/audit").get_json()["entries"]
    by_action = {e["action"]: e for e in entries}
    assert {"login.failed", "login.succeeded", "job.cancel", "job.retry"} <= set(by_action)
    failed = by_action["login.failed"]
    assert (failed["actor_type"], failed["target_id"], failed["ip"]) == (
        "anonymous",
        operator,
        "127.0.0.1",
    )
    assert by_action["login.succeeded"]["actor_label"] == operator
    cancel = by_action["job.cancel"]
    assert cancel["actor_type"] == "token" and re.match(r"hwd_[0-9a-f]{8}$", cancel["actor_label"])
    assert (cancel["target_type"], cancel["target_id"], cancel["organization_id"]) == (
        "job",
        str(job_id),
        1,
    )
    assert by_action["job.retry"]["details"] == {
        "job_id": by_action["job.retry"]["details"]["job_id"]
    }
    only_cancels = admin_client.get("/api/admin/audit?action=job.cancel").get_json()["entries"]
    assert [e["action"] for e in only_cancels] == ["job.cancel"]
    assert client.get("/api/admin/audit").status_code == 403


def test_a_request_with_a_token_acts_as_the_token_whatever_its_cookies(
    auth, make_user, make_token, app
):
    viewer = make_user("viewer@globex.example", 2, "viewer")
    assert auth.login(viewer, remember="y").status_code == 302
    auth.client.delete_cookie("session")  # only the remember cookie is left
    token = {"Authorization": f"Bearer {make_token(1)}"}
    listed = auth.client.get("/api/v1/jobs", headers=token)
    assert listed.status_code == 200
    created = auth.client.post("/api/v1/jobs", json=NOOP, headers=token)
    assert created.status_code == 202  # as Acme's token, not Globex's viewer
    stale = app.test_client()
    stale.set_cookie("remember_token", "not-a-real-one")
    assert stale.get("/api/v1/jobs", headers=token).status_code == 200
    bad = stale.get("/api/v1/jobs", headers={"Authorization": "Bearer hwd_nope_nope"})
    assert bad.status_code == 401
