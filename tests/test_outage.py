"""When the database goes away, health and API endpoints answer 503 fast, then recover."""

import time

import pytest

from tests.conftest import bearer
from webapp import accounts

pytestmark = pytest.mark.e2e

ENDPOINTS = ("/readyz", "/api/admin/status", "/api/admin/queues/health")


def timed_get(client, path):
    started = time.monotonic()
    response = client.get(path)
    return response, time.monotonic() - started


def test_outage_gives_fast_503s_then_recovers(own_server, make_app):
    import psycopg

    url = own_server.migrated_database()
    with psycopg.connect(url, autocommit=True) as conn:
        secret, _ = accounts.new_token(conn, None, "outage", None)
    client = bearer(make_app(url).test_client(), secret)
    for path in ENDPOINTS:
        assert client.get(path).status_code == 200, path

    own_server.stop()
    for path in ENDPOINTS:
        response, elapsed = timed_get(client, path)
        assert response.status_code == 503, path
        assert elapsed < 2.0, f"{path} took {elapsed:.2f}s"
        assert response.is_json
        assert "Traceback" not in response.get_data(as_text=True)
    assert client.get("/readyz").get_json()["reason"] == "database unreachable"
    # The caller cannot be authenticated either: a JSON 503, never a 401 or a traceback.
    assert client.get("/api/admin/status").get_json()["error"] == "Service Unavailable"
    assert client.get("/healthz").status_code == 200

    own_server.start()
    deadline = time.monotonic() + 30
    while client.get("/readyz").status_code != 200:
        assert time.monotonic() < deadline, "did not recover within 30 s"
        time.sleep(0.2)
    for path in ENDPOINTS:
        assert client.get(path).status_code == 200, path


def test_admin_pages_answer_503_pages_in_an_outage_then_recover(own_server, make_app):
    """A person signed in: their session cannot be read either, and the error page must
    not try (nor the admin layout, whose values come from the database)."""
    import psycopg

    from tests.conftest import TEST_PASSWORD, AuthActions
    from webapp.store import accounts as account_store

    url = own_server.migrated_database()
    with psycopg.connect(url, autocommit=True) as conn:
        organization = account_store.insert_organization(conn, "Acme")["id"]
        user = account_store.insert_user(
            conn, "admin@example.com", accounts.hash_password(TEST_PASSWORD)
        )
        account_store.upsert_membership(conn, user["id"], organization, "admin")
    person = AuthActions(make_app(url).test_client())
    assert person.login("admin@example.com").status_code == 302
    pages = ("/admin/queues", "/admin/queues/jobs", "/admin/queues/failures", "/")
    for path in pages:
        assert person.client.get(path).status_code == 200, path
    token = person.csrf_token("/admin/queues")

    own_server.stop()
    for path in pages:
        response, elapsed = timed_get(person.client, path)
        assert response.status_code == 503, path
        assert elapsed < 2.0, f"{path} took {elapsed:.2f}s"
        assert "The database is unavailable" in response.get_data(as_text=True)
    for token_sent in ({}, {"csrf_token": token}):  # refused before, or for want of, the database
        post = person.client.post("/admin/queues/jobs/1/cancel", data=token_sent)
        assert post.status_code == (503 if token_sent else 400)

    own_server.start()
    deadline = time.monotonic() + 30
    while person.client.get("/admin/queues").status_code != 200:
        assert time.monotonic() < deadline, "did not recover within 30 s"
        time.sleep(0.2)
