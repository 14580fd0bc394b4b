"""The audit log page: scope, filters by actor and action, paging, and links to jobs."""

import json
import re

import pytest

PAGE = "/admin/queues/audit"


def add_entry(conn, action, actor="ops@acme.test", organization_id=1, **values):
    """One audit entry; returns its id."""
    return conn.execute(
        "INSERT INTO audit_log (actor_type, actor_label, organization_id, action, target_type,"
        " target_id, ip, details) VALUES (%s, %s, %s, %s, %s, %s, %s, %s) RETURNING id",
        (
            values.get("actor_type", "user"),
            actor,
            organization_id,
            action,
            values.get("target_type", "job"),
            values.get("target_id", "7"),
            values.get("ip", "192.0.2.10"),
            json.dumps(values.get("details", {})),
        ),
    ).fetchone()[0]


def rows(page: str) -> list[str]:
    """The table rows of the entries shown, in order."""
    body = page[page.index("<tbody>") : page.index("</tbody>")] if "<tbody>" in page else ""
    return re.findall(r"<tr>.*?</tr>", body, re.S)


@pytest.fixture
def log(conn, orgs):
    """Entries of both organizations and a failed sign-in (no organization)."""
    return {
        "cancel": add_entry(conn, "job.cancel", target_id="41", details={"b": 2, "a": [1]}),
        "retry": add_entry(conn, "job.retry", actor="bob@acme.test", target_id="42"),
        "token": add_entry(
            conn, "token.create", actor="flask cli", actor_type="cli", target_type="token"
        ),
        "globex": add_entry(conn, "job.cancel", actor="eve@globex.test", organization_id=2),
        "failed": add_entry(
            conn,
            "login.failed",
            actor="",
            actor_type="anonymous",
            organization_id=None,
            target_type="user",
            target_id="victim@acme.test",
            ip="198.51.100.99",
        ),
    }


def test_operators_see_their_organizations_entries_only(sign_in, log):
    response = sign_in("operator").client.get(PAGE)
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    # The operator's own sign-in is on record, newest.
    login, *entries = rows(page)
    assert "login.succeeded" in login and "operator1@example.com" in login
    assert len(entries) == 3
    assert "eve@globex.test" not in page
    assert "login.failed" not in page and "198.51.100.99" not in page
    assert "victim@acme.test" not in page
    # Newest first, with the job linked and the details compact.
    first, second, third = entries
    assert "token.create" in first and "flask cli" in first
    assert '<a href="/admin/queues/jobs/42">#42</a>' in second
    assert '<a href="/admin/queues/jobs/41">#41</a>' in third
    assert "{&#34;a&#34;:[1],&#34;b&#34;:2}" in third
    assert "192.0.2.10" in third


def test_operators_cannot_ask_for_failed_sign_ins_or_other_organizations(sign_in, log):
    client = sign_in("viewer").client
    page = client.get(f"{PAGE}?action=login.failed").get_data(as_text=True)
    assert rows(page) == [] and "198.51.100.99" not in page
    page = client.get(f"{PAGE}?org=2&actor=eve@globex.test").get_data(as_text=True)
    assert rows(page) == []
    options = client.get(PAGE).get_data(as_text=True)
    assert '<option value="login.failed"' not in options


def test_admins_see_every_entry_or_one_organizations(sign_in, log):
    admin = sign_in("admin")
    page = admin.client.get(PAGE).get_data(as_text=True)
    # The admin's own sign-in is on record too.
    assert "login.succeeded" in page and "198.51.100.99" in page and "eve@globex.test" in page
    assert '<option value="login.failed">login.failed</option>' in page
    page = admin.client.get(f"{PAGE}?org=2").get_data(as_text=True)
    assert len(rows(page)) == 1 and "eve@globex.test" in page


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("actor=bob@acme.test", ["retry"]),
        ("actor=bob", []),
        ("actor=bob*", ["retry"]),
        ("actor=flask*", ["token"]),
        ("actor=*", ["login", "token", "retry", "cancel"]),
        ("action=job.cancel", ["cancel"]),
        ("action=job.cancel&actor=bob*", []),
        ("action=job.retry&actor=bob@acme.test", ["retry"]),
        ("actor=%25", []),
        ("actor=%25*", []),
    ],
)
def test_filters_by_actor_and_action(sign_in, log, query, expected):
    page = sign_in("operator").client.get(f"{PAGE}?{query}").get_data(as_text=True)
    shown = [re.search(r"<code>([a-z.]+)</code>", row).group(1) for row in rows(page)]
    kinds = {
        "cancel": "job.cancel",
        "retry": "job.retry",
        "token": "token.create",
        "login": "login.succeeded",
    }
    assert shown == [kinds[name] for name in expected]


def test_the_action_filter_offers_the_actions_on_record(sign_in, log):
    page = sign_in("operator").client.get(f"{PAGE}?action=queue.pause").get_data(as_text=True)
    options = re.findall(r'<option value="([^"]*)"', page)
    present = ["job.cancel", "job.retry", "login.succeeded", "token.create"]
    assert options == ["", *sorted([*present, "queue.pause"])]
    assert '<option value="queue.pause" selected>' in page


def test_an_organization_is_offered_only_its_own_actions(sign_in, conn, log):
    add_entry(conn, "queue.paused", actor="root@platform.test", organization_id=None)
    add_entry(conn, "jobs.bulk_delete", actor="eve@globex.test", organization_id=2)
    operator = sign_in("operator").client.get(PAGE).get_data(as_text=True)
    options = re.findall(r'<option value="([^"]*)"', operator)
    assert "queue.paused" not in options and "jobs.bulk_delete" not in options
    admin = sign_in("admin").client
    every = set(re.findall(r'<option value="([^"]*)"', admin.get(PAGE).get_data(as_text=True)))
    assert {"queue.paused", "jobs.bulk_delete"} <= every
    globex = admin.get(f"{PAGE}?org=2").get_data(as_text=True)
    assert "queue.paused" not in re.findall(r'<option value="([^"]*)"', globex)


def test_pages_go_back_in_time_by_cursor(sign_in, conn, orgs):
    ids = [add_entry(conn, "job.retry", target_id=str(n)) for n in range(1, 121)]
    client = sign_in("operator").client
    seen = []
    url = f"{PAGE}?action=job.retry"
    for expected in (50, 50, 20):
        page = client.get(url).get_data(as_text=True)
        shown = [int(n) for n in re.findall(r'/admin/queues/jobs/(\d+)">', page)]
        assert len(shown) == expected
        seen += shown
        link = re.search(r'<a href="([^"]+)" rel="next">Older entries</a>', page)
        if expected < 50:
            assert link is None
        else:
            url = link.group(1).replace("&amp;", "&")
            assert "action=job.retry" in url and f"before={ids[len(ids) - len(seen)]}" in url
    assert seen == list(range(120, 0, -1))


@pytest.mark.parametrize("query", ["before=abc", "before=-1", "actor=" + "x" * 201])
def test_bad_filters_are_a_400(sign_in, orgs, query):
    assert sign_in("operator").client.get(f"{PAGE}?{query}").status_code == 400


def test_no_entry_matches(sign_in, log):
    page = sign_in("operator").client.get(f"{PAGE}?actor=nobody").get_data(as_text=True)
    assert "No entry matches these filters." in page
