"""Who may open the admin pages, which organization they show, and switching it."""

import pytest

from tests.admin.conftest import csrf_of
from tests.conftest import AuthActions, bearer

OVERVIEW = "/admin/queues"


def test_anonymous_readers_are_sent_to_sign_in(anon_client):
    response = anon_client.get(OVERVIEW)
    assert response.status_code == 302
    assert response.headers["Location"] == "/login?next=/admin/queues"


def test_api_tokens_are_refused_even_with_a_session(sign_in, make_token):
    person = sign_in("admin")
    assert bearer(person.client, make_token(None)).get(OVERVIEW).status_code == 403


@pytest.mark.parametrize("role", ["admin", "operator", "viewer"])
def test_every_role_sees_the_overview(sign_in, role):
    response = sign_in(role).client.get(OVERVIEW)
    assert response.status_code == 200
    assert '<nav class="admin-nav"' in response.get_data(as_text=True)


def test_only_admins_get_the_organization_filter(sign_in):
    assert 'id="org-filter"' in sign_in("admin").client.get(OVERVIEW).get_data(as_text=True)
    page = sign_in("operator").client.get(OVERVIEW).get_data(as_text=True)
    assert 'id="org-filter"' not in page


def test_platform_pages_have_no_organization_filter(sign_in):
    admin = sign_in("admin").client
    for path in ("/admin/queues/database", "/admin/queues/organizations"):
        assert 'id="org-filter"' not in admin.get(path).get_data(as_text=True), path


@pytest.mark.parametrize("value", ["abc", "0", "-1", "99999999999999999999", "1.5"])
def test_a_bad_organization_filter_is_a_400_page(sign_in, value):
    response = sign_in("admin").client.get(f"{OVERVIEW}?org={value}")
    assert response.status_code == 400
    assert "organization filter" in response.get_data(as_text=True)


def test_the_filter_is_ignored_for_people_of_one_organization(sign_in):
    """An operator's pages show their organization, whatever ?org= says."""
    assert sign_in("operator").client.get(f"{OVERVIEW}?org=2").status_code == 200


@pytest.fixture
def member_of_two(app, make_user, conn):
    """A person who operates Acme and views Globex, signed in (acting for Acme)."""
    email = make_user("two@example.com", 1, "operator")
    user_id = conn.execute("SELECT id FROM users WHERE email = %s", (email,)).fetchone()[0]
    conn.execute("INSERT INTO memberships VALUES (%s, 2, 'viewer')", (user_id,))
    actions = AuthActions(app.test_client())
    assert actions.login(email).status_code == 302
    return actions


def switch(actions, organization_id, forged_csrf=None):
    page = actions.client.get(OVERVIEW).get_data(as_text=True)
    data = {"organization_id": organization_id, "csrf_token": forged_csrf or csrf_of(page)}
    return actions.client.post(f"{OVERVIEW}/organization", data=data)


def test_people_of_one_organization_get_no_switcher(sign_in):
    page = sign_in("operator").client.get(OVERVIEW).get_data(as_text=True)
    assert 'id="switch-organization"' not in page


def test_switching_organization_is_remembered_and_audited(member_of_two, conn):
    page = member_of_two.client.get(OVERVIEW).get_data(as_text=True)
    assert 'id="switch-organization"' in page
    assert "two@example.com · operator" in page
    response = switch(member_of_two, 2)
    assert response.status_code == 302
    assert response.headers["Location"] == OVERVIEW
    page = member_of_two.client.get(OVERVIEW).get_data(as_text=True)
    assert "You now act for Globex, as viewer." in page
    assert "two@example.com · viewer" in page
    # The API sees the same session acting for Globex, as a viewer.
    assert member_of_two.client.get("/api/v1/jobs?organization_id=1").status_code == 403
    entry = conn.execute(
        "SELECT actor_label, organization_id, target_id, details->>'from' FROM audit_log"
        " WHERE action = 'session.organization_switched'"
    ).fetchone()
    assert entry == ("two@example.com", 2, "2", "1")


def test_a_viewer_may_switch_back(member_of_two):
    assert switch(member_of_two, 2).status_code == 302
    assert switch(member_of_two, 1).status_code == 302
    assert "· operator" in member_of_two.client.get(OVERVIEW).get_data(as_text=True)


def test_switching_to_an_organization_one_is_not_in_is_refused(member_of_two, conn):
    conn.execute("INSERT INTO organizations (name) VALUES ('Initech')")
    assert switch(member_of_two, 3).status_code == 403
    assert "· operator" in member_of_two.client.get(OVERVIEW).get_data(as_text=True)
    switches = "SELECT count(*) FROM audit_log WHERE action LIKE 'session.%'"
    assert conn.execute(switches).fetchone()[0] == 0


def test_switching_needs_the_csrf_token(member_of_two):
    assert switch(member_of_two, 2, forged_csrf="forged").status_code == 400


@pytest.mark.parametrize("value", ["", "x", "0", "99999999999999999999"])
def test_switching_to_a_bad_value_is_a_400(member_of_two, value):
    assert switch(member_of_two, value).status_code == 400
