"""Errors are JSON under /api and HTML pages elsewhere; never a traceback."""

import time

import pytest

from webapp import db


@pytest.fixture
def app(make_app, db_url):
    app = make_app(db_url)

    @app.get("/api/v1/explode")
    def explode():
        raise RuntimeError("secret internals")

    @app.get("/explode")
    def explode_page():
        raise RuntimeError("secret internals")

    @app.get("/api/v1/overflow")
    def overflow():
        db.get_conn().execute("SELECT 2147483647::int + 1")

    @app.get("/api/v1/nul")
    def nul():
        db.get_conn().execute("SELECT %s::text", ("nul \x00 inside",))

    return app


@pytest.mark.parametrize(
    ("method", "path", "status", "name"),
    [
        ("GET", "/api/v1/nothing-here", 404, "Not Found"),
        ("GET", "/api", 404, "Not Found"),
        ("POST", "/api/admin/status", 405, "Method Not Allowed"),
        ("GET", "/api/v1/explode", 500, "Internal Server Error"),
    ],
)
def test_api_errors_are_json(client, method, path, status, name):
    response = client.open(path, method=method)
    assert response.status_code == status
    assert response.is_json
    body = response.get_json()
    assert body["error"] == name
    assert body["message"]
    assert "secret internals" not in response.get_data(as_text=True)
    assert "Traceback" not in response.get_data(as_text=True)


def test_method_not_allowed_keeps_the_allow_header(client):
    response = client.post("/api/admin/status")
    assert "GET" in response.headers["Allow"]


@pytest.mark.parametrize(
    ("path", "status", "text"),
    [("/missing", 404, "Not found"), ("/explode", 500, "Internal Server Error")],
)
def test_pages_render_html_errors(client, path, status, text):
    response = client.get(path)
    assert response.status_code == status
    assert response.mimetype == "text/html"
    page = response.get_data(as_text=True)
    assert text in page
    assert "secret internals" not in page


def test_home_page_links_to_health(client):
    page = client.get("/").get_data(as_text=True)
    assert "/readyz" in page and "/api/admin/status" in page


def test_a_statement_timeout_says_so_and_is_not_called_an_outage(
    make_app, db_url, make_token, conn
):
    from tests.conftest import bearer

    client = bearer(make_app(db_url, DB_STATEMENT_TIMEOUT_MS="300").test_client(), make_token())
    with conn.transaction():
        conn.execute("LOCK TABLE procrastinate_jobs IN ACCESS EXCLUSIVE MODE")
        response = client.get("/api/v1/jobs")
    assert response.status_code == 503
    message = response.get_json()["message"]
    assert "within the 300 ms" in message
    assert "unavailable" not in message
    assert client.get("/api/v1/jobs").status_code == 200


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/api/v1/jobs", None),
        # A defer goes through Procrastinate, which wraps the database's error.
        ("POST", "/api/v1/jobs", {"task": "diagnostics:noop", "payload": {"organization_id": 1}}),
    ],
)
def test_a_lock_wait_past_its_limit_is_a_503_naming_the_setting(
    make_app, db_url, make_token, conn, method, path, body
):
    from tests.conftest import bearer

    app = make_app(db_url, DB_LOCK_TIMEOUT_MS="300", DB_STATEMENT_TIMEOUT_MS="20000")
    client = bearer(app.test_client(), make_token(None))
    with conn.transaction():
        conn.execute("LOCK TABLE procrastinate_jobs IN ACCESS EXCLUSIVE MODE")
        started = time.monotonic()
        response = client.open(path, method=method, json=body)
        waited = time.monotonic() - started
    assert response.status_code == 503
    assert response.headers["Cache-Control"] == "no-store"
    message = response.get_json()["message"]
    assert "did not grant a lock within the 300 ms" in message
    assert "DB_LOCK_TIMEOUT_MS" in message
    assert waited < 5
    assert client.open(path, method=method, json=body).status_code in (200, 202)


def test_a_refused_value_is_named_as_the_database_names_it(client):
    # The API's own inputs refuse NUL before any statement; this route sends one anyway.
    response = client.get("/api/v1/nul")
    assert response.status_code == 422
    assert response.get_json()["message"] == (
        "The database refused a value: PostgreSQL text fields cannot contain NUL (0x00) bytes."
    )


def test_a_value_the_server_refuses_is_named_as_it_names_it(client):
    response = client.get("/api/v1/overflow")
    assert response.status_code == 422
    assert response.get_json()["message"] == "The database refused a value: integer out of range."
