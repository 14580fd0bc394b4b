"""Errors are JSON under /api and HTML pages elsewhere; never a traceback."""

import pytest


@pytest.fixture
def app(make_app, db_url):
    app = make_app(db_url)

    @app.get("/api/v1/explode")
    def explode():
        raise RuntimeError("secret internals")

    @app.get("/explode")
    def explode_page():
        raise RuntimeError("secret internals")

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
