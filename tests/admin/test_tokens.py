"""The API tokens page: list, create (the secret shown once) and revoke."""

import re

import pytest

from tests.admin.conftest import csrf_of
from tests.conftest import bearer

TOKENS = "/admin/queues/tokens"
SECRET = re.compile(r'value="(hwd_[0-9a-f]{8}_[^"]+)"')


def create(person, name="deploy", expires_days="30", path=TOKENS):
    token = csrf_of(person.client.get(TOKENS).get_data(as_text=True))
    data = {"csrf_token": token, "name": name, "expires_days": expires_days}
    return person.client.post(path, data=data)


def revoke(person, token_id):
    token = csrf_of(person.client.get(TOKENS).get_data(as_text=True))
    return person.client.post(f"{TOKENS}/{token_id}/revoke", data={"csrf_token": token})


def token_rows(conn):
    return conn.execute(
        "SELECT id, organization_id, name, expires_at - created_at, revoked_at IS NOT NULL"
        " FROM api_tokens ORDER BY id"
    ).fetchall()


def test_an_operator_creates_a_token_whose_secret_is_shown_once(app, sign_in, conn):
    operator = sign_in("operator")
    response = create(operator)
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    secret = SECRET.search(page).group(1)
    assert "it is shown this once" in page
    assert response.headers["Cache-Control"].startswith("no-store")
    ((token_id, org, name, lifetime, revoked),) = token_rows(conn)
    assert (org, name, lifetime.days, revoked) == (1, "deploy", 30, False)
    api = bearer(app.test_client(), secret)
    assert api.get("/api/v1/jobs").status_code == 200
    listed = operator.client.get(TOKENS).get_data(as_text=True)
    assert secret not in listed and secret[:12] in listed  # the prefix, not the secret
    assert secret not in str(conn.execute("SELECT * FROM audit_log").fetchall())
    entry = conn.execute(
        "SELECT actor_label, target_id, organization_id, details->>'name' FROM audit_log"
        " WHERE action = 'token.create'"
    ).fetchone()
    assert entry == ("operator1@example.com", secret[:12], 1, "deploy")
    assert token_id


def test_the_page_lists_the_newest_two_hundred_tokens(sign_in, conn, orgs):
    conn.execute(
        "INSERT INTO api_tokens (organization_id, name, prefix, token_hash)"
        " SELECT 1, 'bulk ' || n, 'hwd_' || n, 'hash' || n FROM generate_series(1, 201) n"
    )
    page = sign_in("operator").client.get("/admin/queues/tokens").get_data(as_text=True)
    assert "bulk 201<" in page and "bulk 2<" in page and "bulk 1<" not in page
    assert "The newest 200 tokens" in page


def test_revoking_a_token_closes_the_api_to_it(app, sign_in, conn, make_token):
    secret = make_token(1)
    api = bearer(app.test_client(), secret)
    assert api.get("/api/v1/jobs").status_code == 200
    operator = sign_in("operator")
    ((token_id, *_),) = token_rows(conn)
    response = revoke(operator, token_id)
    assert response.status_code == 302
    assert response.headers["Location"] == TOKENS
    assert "is revoked" in operator.client.get(TOKENS).get_data(as_text=True)
    assert api.get("/api/v1/jobs").status_code == 401
    entry = conn.execute(
        "SELECT actor_label, target_id, organization_id FROM audit_log"
        " WHERE action = 'token.revoke'"
    ).fetchone()
    assert entry == ("operator1@example.com", secret[:12], 1)
    assert revoke(operator, token_id).status_code == 302  # revoked already: nothing more
    revokes = "SELECT count(*) FROM audit_log WHERE action = 'token.revoke'"
    assert conn.execute(revokes).fetchone()[0] == 1


def test_an_operator_cannot_see_or_revoke_another_organizations_token(
    app, sign_in, conn, make_token
):
    secret = make_token(2)
    platform = make_token(None)
    operator = sign_in("operator")
    page = operator.client.get(TOKENS).get_data(as_text=True)
    assert secret[:12] not in page and platform[:12] not in page
    for token_id, *_ in token_rows(conn):
        assert revoke(operator, token_id).status_code == 404
    assert bearer(app.test_client(), secret).get("/api/v1/jobs").status_code == 200
    assert [row[4] for row in token_rows(conn)] == [False, False]


def test_a_viewer_sees_the_list_without_buttons_and_cannot_change_it(sign_in, conn, make_token):
    secret = make_token(1)
    viewer = sign_in("viewer")
    response = viewer.client.get(TOKENS)
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert secret[:12] in page
    assert "/revoke" not in page and "Create token" not in page
    assert create(viewer).status_code == 403
    ((token_id, *_),) = token_rows(conn)
    assert revoke(viewer, token_id).status_code == 403
    assert [row[4] for row in token_rows(conn)] == [False]


@pytest.mark.parametrize("days", ["0", "3651", "", "x"])
def test_the_expiry_is_bounded_as_the_cli_bounds_it(sign_in, conn, days):
    response = create(sign_in("operator"), expires_days=days)
    assert response.status_code == 400
    assert 'class="field-error"' in response.get_data(as_text=True)
    assert token_rows(conn) == []


def test_creating_needs_the_csrf_token(sign_in, conn):
    operator = sign_in("operator")
    data = {"csrf_token": "forged", "name": "x", "expires_days": "1"}
    assert operator.client.post(TOKENS, data=data).status_code == 400
    assert token_rows(conn) == []


def test_an_admin_sees_every_token_and_filters_by_organization(sign_in, make_token):
    acme, globex, platform = make_token(1), make_token(2), make_token(None)
    admin = sign_in("admin")
    page = admin.client.get(TOKENS).get_data(as_text=True)
    assert all(s[:12] in page for s in (acme, globex, platform))
    assert "the platform (every organization, with admin rights)" in page
    page = admin.client.get(f"{TOKENS}?org=2").get_data(as_text=True)
    assert globex[:12] in page and acme[:12] not in page and platform[:12] not in page


def test_an_admin_creates_platform_tokens_or_an_organizations(sign_in, conn, make_token):
    admin = sign_in("admin")
    assert create(admin, name="ops").status_code == 200
    assert create(admin, name="globex", path=f"{TOKENS}?org=2").status_code == 200
    assert [(org, name) for _, org, name, *_ in token_rows(conn)] == [(None, "ops"), (2, "globex")]


def test_an_admin_revokes_any_token(app, sign_in, make_token, conn):
    secret = make_token(2)
    ((token_id, *_),) = token_rows(conn)
    assert revoke(sign_in("admin"), token_id).status_code == 302
    assert bearer(app.test_client(), secret).get("/api/v1/jobs").status_code == 401
