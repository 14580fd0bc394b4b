"""The digest subscription pages without JavaScript: list, create, edit, delete and send
now, as plain posts with the page's CSRF token, for operators and admins only."""

import pytest

from tests.admin.conftest import csrf_of
from tests.admin.test_sms_form import errors_of, field_block

LIST = "/admin/queues/subscriptions"
NEW = f"{LIST}/new"
FORM = {
    "recipients": "ops@example.com\nboss@example.org, ops@example.com",
    "frequency": "weekly",
    "weekday": "3",
    "hour": "7",
    "time_zone": "Europe/Paris",
}


def post(person, path, page=None, **fields):
    token = csrf_of(person.client.get(page or path).get_data(as_text=True))
    return person.client.post(path, data={"csrf_token": token, **fields})


def rows(conn):
    return conn.execute(
        "SELECT id, organization_id, recipients, frequency, weekday, hour, time_zone,"
        " last_period FROM digest_subscriptions ORDER BY id"
    ).fetchall()


@pytest.fixture
def subscription(conn, orgs):
    """A daily subscription of organization 1 whose period of 1 May was sent."""
    return conn.execute(
        "INSERT INTO digest_subscriptions (organization_id, recipients, frequency, hour,"
        " time_zone, last_period) VALUES (1, '{a@example.com,b@example.com}', 'daily', 8,"
        " 'UTC', '2030-05-01') RETURNING id"
    ).fetchone()[0]


def test_an_operator_creates_a_subscription_and_sees_it_listed(sign_in, conn):
    operator = sign_in("operator")
    response = post(operator, NEW, **FORM)
    assert response.status_code == 302 and response.headers["Location"] == LIST
    ((sub_id, org, recipients, frequency, weekday, hour, zone, last),) = rows(conn)
    assert (org, frequency, weekday, hour, zone, last) == (1, "weekly", 3, 7, "Europe/Paris", None)
    assert recipients == ["ops@example.com", "boss@example.org"]  # each address once
    page = operator.client.get(LIST).get_data(as_text=True)
    assert "Weekly on Wednesday at 07:00 (Europe/Paris)" in page
    assert "ops@example.com, boss@example.org" in page
    entry = conn.execute(
        "SELECT organization_id, target_id, details->>'recipients' FROM audit_log"
        " WHERE action = 'digest_subscription.create'"
    ).fetchone()
    assert entry == (1, str(sub_id), "2")  # counted, not copied


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"recipients": ""}, "recipients", "Enter at least one address."),
        (
            {"recipients": "ops@example.com\nnot-an-address"},
            "recipients",
            "“not-an-address”: Value is not",
        ),
        ({"recipients": "ops@mail.test"}, "recipients", "“ops@mail.test”: "),
        ({"recipients": ", ".join(f"u{n}@example.com" for n in range(101))}, "recipients", None),
        ({"frequency": "hourly"}, "frequency", "Not a valid choice."),
        ({"weekday": "8"}, "weekday", "Not a valid choice."),
        ({"hour": "24"}, "hour", "Not a valid choice."),
        ({"time_zone": "Mars/Olympus"}, "time_zone", "'Mars/Olympus' is not an IANA"),
        ({"time_zone": "localtime"}, "time_zone", "'localtime' is not an IANA"),
    ],
)
def test_errors_show_under_their_field_and_the_input_is_kept(sign_in, conn, fields, field, message):
    response = post(sign_in("operator"), NEW, **{**FORM, **fields})
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    found = errors_of(page, field)
    assert len(found) == 1, found
    assert message is None or found[0].startswith(message), found
    assert "Europe/Paris" in field_block(page, "time_zone") or field == "time_zone"
    if field != "recipients":
        assert "boss@example.org" in field_block(page, "recipients")
    assert rows(conn) == []


def test_editing_changes_the_schedule_and_keeps_the_last_period_sent(sign_in, conn, subscription):
    operator = sign_in("operator")
    edit = f"{LIST}/{subscription}/edit"
    page = operator.client.get(edit).get_data(as_text=True)
    assert "a@example.com\nb@example.com</textarea>" in page
    assert post(operator, edit, **FORM).status_code == 302
    ((_, org, recipients, frequency, weekday, hour, zone, last),) = rows(conn)
    assert (org, frequency, weekday, hour, zone) == (1, "weekly", 3, 7, "Europe/Paris")
    assert recipients == ["ops@example.com", "boss@example.org"]
    assert str(last) == "2030-05-01"
    response = post(operator, edit, **{**FORM, "hour": "99"})
    assert response.status_code == 400 and errors_of(response.get_data(as_text=True), "hour")


def test_send_now_defers_one_digest_and_shows_its_job(sign_in, conn, subscription):
    operator = sign_in("operator")
    response = post(operator, f"{LIST}/{subscription}/send", page=LIST)
    ((job_id, task, args),) = conn.execute(
        "SELECT id, task_name, args FROM procrastinate_jobs"
    ).fetchall()
    assert task == "email:send_digest"
    expected = {
        "organization_id": 1,
        "period": "daily",
        "recipients": ["a@example.com", "b@example.com"],
        "subscription_id": subscription,
    }
    assert {name: args[name] for name in expected} == expected
    assert args.get("until") is None  # the period ends when the job runs
    assert response.headers["Location"] == f"{LIST}?sent={job_id}"
    page = operator.client.get(response.headers["Location"]).get_data(as_text=True)
    assert f'href="/admin/queues/jobs/{job_id}">Open job {job_id}</a>' in page
    assert str(rows(conn)[0][-1]) == "2030-05-01"  # the schedule's record is left alone


def test_delete_removes_the_subscription(sign_in, conn, subscription):
    operator = sign_in("operator")
    response = post(operator, f"{LIST}/{subscription}/delete", page=LIST)
    assert response.status_code == 302 and rows(conn) == []
    assert conn.execute(
        "SELECT count(*) FROM audit_log WHERE action = 'digest_subscription.delete'"
    ).fetchone() == (1,)


@pytest.mark.parametrize("action", ["delete", "send"])
def test_a_post_without_the_csrf_token_is_refused(sign_in, conn, subscription, action):
    response = sign_in("operator").client.post(f"{LIST}/{subscription}/{action}")
    assert response.status_code == 400
    assert len(rows(conn)) == 1
    assert conn.execute("SELECT count(*) FROM procrastinate_jobs").fetchone() == (0,)


def test_a_viewer_can_open_none_of_the_pages(sign_in, conn, subscription):
    viewer = sign_in("viewer")
    for path in (LIST, NEW, f"{LIST}/{subscription}/edit"):
        assert viewer.client.get(path).status_code == 403, path
    token = csrf_of(viewer.client.get("/admin/queues").get_data(as_text=True))
    for path in (NEW, f"{LIST}/{subscription}/delete", f"{LIST}/{subscription}/send"):
        assert viewer.client.post(path, data={"csrf_token": token, **FORM}).status_code == 403
    assert len(rows(conn)) == 1


def test_another_organizations_subscription_is_not_found(sign_in, conn, subscription):
    other = sign_in("operator", 2)
    assert "a@example.com" not in other.client.get(LIST).get_data(as_text=True)
    assert other.client.get(f"{LIST}/{subscription}/edit").status_code == 404
    for action in ("edit", "delete", "send"):
        response = post(other, f"{LIST}/{subscription}/{action}", page=LIST, **FORM)
        assert response.status_code == 404, action
    assert rows(conn)[0][2] == ["a@example.com", "b@example.com"]
    assert conn.execute("SELECT count(*) FROM procrastinate_jobs").fetchone() == (0,)


def test_a_platform_admin_chooses_the_organization_of_a_new_one(sign_in, conn, subscription):
    admin = sign_in("admin")
    response = post(admin, NEW, **FORM)
    assert response.status_code == 400 and errors_of(
        response.get_data(as_text=True), "organization_id"
    )
    assert post(admin, NEW, **FORM, organization_id="2").status_code == 302
    assert post(admin, f"{NEW}?org=1", **FORM).status_code == 302
    assert [row[1] for row in rows(conn)] == [1, 2, 1]
    page = admin.client.get(LIST).get_data(as_text=True)
    assert "Globex" in page  # every organization's, with its name
    assert 'name="organization_id"' not in admin.client.get(f"{LIST}/{subscription}/edit").get_data(
        as_text=True
    )
