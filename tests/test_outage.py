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
