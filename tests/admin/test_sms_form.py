"""The "Send SMS" form, as a browser without JavaScript uses it: plain posts with the
page's CSRF token, errors under their fields, the input kept, and the new job shown."""

import datetime
import html
import re
import zoneinfo

import pytest

from tasks.sms_text import count_segments
from tests.admin.conftest import csrf_of
from tests.conftest import AuthActions

SMS = "/admin/queues/sms"
NUMBER = "+14155550123"


def field_block(page: str, name: str) -> str:
    """The HTML of the form field (label, control, errors) whose control is ``name``."""
    blocks = re.split(r'(?=<div class="field|<fieldset class="field)', page)
    (block,) = [b for b in blocks if f'name="{name}"' in b.split("</div>")[0]]
    return block.split("</div>")[0]


def errors_of(page: str, name: str) -> list[str]:
    return [
        html.unescape(e)
        for e in re.findall(r'class="field-error">([^<]*)<', field_block(page, name))
    ]


def send(person, path=SMS, **fields):
    data = {"to": NUMBER, "body": "Your code is 123456", "when": "now", "time_zone": "UTC"}
    data.update(fields)
    data = {k: v for k, v in data.items() if v is not None}
    token = csrf_of(person.client.get(path).get_data(as_text=True))
    return person.client.post(path, data={"csrf_token": token, **data})


def jobs(conn):
    return conn.execute(
        "SELECT id, task_name, queue_name, args, scheduled_at FROM procrastinate_jobs ORDER BY id"
    ).fetchall()


def test_an_operator_sends_an_sms_and_sees_its_job_with_a_link(sign_in, conn):
    operator = sign_in("operator")
    response = send(operator)
    ((job_id, task, queue, args, scheduled_at),) = jobs(conn)
    assert (task, queue, scheduled_at) == ("sms:send_notification", "sms-notifications", None)
    assert args == {"organization_id": 1, "to": NUMBER, "body": "Your code is 123456"}
    assert response.status_code == 302
    assert response.headers["Location"] == f"{SMS}?sent={job_id}"
    page = operator.client.get(response.headers["Location"]).get_data(as_text=True)
    assert f"The SMS is queued as job {job_id}." in page
    assert f'href="/admin/queues/jobs/{job_id}">Open job {job_id}</a>' in page
    assert re.search(rf"Job {job_id} <span class=\"badge badge-waiting\">waiting</span>", page)


def test_a_chosen_time_in_a_time_zone_schedules_the_job_then(sign_in, conn):
    local = datetime.datetime.now(zoneinfo.ZoneInfo("Europe/Paris")) + datetime.timedelta(days=2)
    local = local.replace(second=0, microsecond=0, tzinfo=None)
    response = send(
        sign_in("operator"),
        when="later",
        run_at=local.strftime("%Y-%m-%dT%H:%M"),
        time_zone="Europe/Paris",
    )
    assert response.status_code == 302
    ((_, _, _, _, scheduled_at),) = jobs(conn)
    assert scheduled_at == local.replace(tzinfo=zoneinfo.ZoneInfo("Europe/Paris"))


def skipped_local_time(zone: str) -> datetime.datetime:
    """The next 02:30 that the clocks of ``zone`` skip, within the schedule's year."""
    tz = zoneinfo.ZoneInfo(zone)
    today = datetime.date.today()
    for days in range(2, 360):
        local = datetime.datetime.combine(
            today + datetime.timedelta(days=days), datetime.time(2, 30)
        )
        back = local.replace(tzinfo=tz).astimezone(datetime.UTC).astimezone(tz)
        if back.replace(tzinfo=None) != local:
            return local
    raise AssertionError(f"{zone} skips no 02:30 in the coming year")


def test_a_time_the_clocks_skip_is_refused(sign_in, conn):
    local = skipped_local_time("Europe/Paris")
    response = send(
        sign_in("operator"),
        when="later",
        run_at=local.strftime("%Y-%m-%dT%H:%M"),
        time_zone="Europe/Paris",
    )
    assert response.status_code == 400
    assert errors_of(response.get_data(as_text=True), "run_at") == [
        f"{local:%Y-%m-%d %H:%M} does not exist in Europe/Paris: the clocks skip it."
        " Choose another."
    ]
    assert jobs(conn) == []


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"to": "not a number"}, "to", None),
        ({"to": ""}, "to", "Enter the phone number to send to."),
        ({"body": ""}, "body", "Write the message."),
        ({"body": "x" * 1601}, "body", None),
        ({"when": "later", "run_at": ""}, "run_at", "Choose the date and time to send at."),
        ({"when": "later", "run_at": "tomorrow"}, "run_at", "Not a valid datetime value."),
        ({"when": "later", "run_at": "2999-01-01T10:00"}, "run_at", None),
        ({"when": "later", "run_at": "2020-01-01T10:00"}, "run_at", None),
        (
            {"when": "later", "run_at": "2030-01-01T10:00", "time_zone": "Mars/Olympus"},
            "time_zone",
            None,
        ),
        ({"when": "soon"}, "when", "Not a valid choice."),
    ],
)
def test_errors_show_under_their_field_and_the_input_is_kept(sign_in, conn, fields, field, message):
    response = send(sign_in("operator"), **fields)
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    found = errors_of(page, field)
    assert len(found) == 1, found
    if message is not None:
        assert found == [message]
    if field == "run_at" and fields.get("run_at", "").startswith(("29", "20")):
        assert "must lie between 1 day ago and 366 days from now" in found[0]
    for name, value in fields.items():  # what was typed comes back
        if name in ("to", "time_zone") and value:
            assert f'value="{html.escape(value)}"' in field_block(page, name)
    if fields.get("body"):
        assert fields["body"] in field_block(page, "body")
    assert jobs(conn) == []


def test_several_errors_show_at_once(sign_in, conn):
    response = send(sign_in("operator"), to="12", body="")
    page = response.get_data(as_text=True)
    assert errors_of(page, "to") and errors_of(page, "body") == ["Write the message."]
    assert jobs(conn) == []


def test_the_count_of_characters_and_segments_is_rendered_by_the_server(sign_in, conn):
    operator = sign_in("operator")
    assert "0 characters, 1 segment (GSM-7)" in operator.client.get(SMS).get_data(as_text=True)
    body = "Ünïcode ☃ " * 10  # UCS-2: 100 units, two segments of 67
    page = send(operator, to="nope", body=body).get_data(as_text=True)
    count = count_segments(body)
    assert (count.encoding, count.units, count.segments) == ("UCS-2", 100, 2)
    assert "100 characters, 2 segments (UCS-2)" in page
    long_gsm = "{}" * 81  # extension characters count twice: 324 units, three segments
    page = send(operator, to="nope", body=long_gsm).get_data(as_text=True)
    assert "324 characters, 3 segments (GSM-7)" in page


def test_line_breaks_are_sent_as_a_text_message_writes_them(sign_in, conn):
    send(sign_in("operator"), body="line one\r\nline two")
    ((_, _, _, args, _),) = jobs(conn)
    assert args["body"] == "line one\nline two"


def test_a_post_without_the_csrf_token_is_refused(sign_in, conn):
    operator = sign_in("operator")
    response = operator.client.post(SMS, data={"to": NUMBER, "body": "hi", "when": "now"})
    assert response.status_code == 400
    assert jobs(conn) == []


def test_a_viewer_can_neither_open_the_form_nor_post_it(sign_in, conn):
    viewer = sign_in("viewer")
    assert viewer.client.get(SMS).status_code == 403
    token = csrf_of(viewer.client.get("/admin/queues").get_data(as_text=True))
    response = viewer.client.post(SMS, data={"csrf_token": token, "to": NUMBER, "body": "hi"})
    assert response.status_code == 403
    assert jobs(conn) == []
    assert 'href="/admin/queues/sms"' not in viewer.client.get("/admin/queues").get_data(
        as_text=True
    )
    assert 'href="/admin/queues/sms"' in sign_in("operator").client.get("/admin/queues").get_data(
        as_text=True
    )


def test_a_platform_admin_chooses_the_organization(sign_in, conn):
    admin = sign_in("admin")
    assert 'name="organization_id"' in admin.client.get(SMS).get_data(as_text=True)
    response = send(admin)  # no organization chosen
    assert response.status_code == 400
    assert errors_of(response.get_data(as_text=True), "organization_id")
    assert send(admin, organization_id="2").status_code == 302
    assert send(admin, path=f"{SMS}?org=1").status_code == 302  # the filter chooses
    assert 'name="organization_id"' not in admin.client.get(f"{SMS}?org=1").get_data(as_text=True)
    assert [args["organization_id"] for _, _, _, args, _ in jobs(conn)] == [2, 1]


def test_another_organizations_job_is_not_shown_as_sent(sign_in, conn):
    send(sign_in("operator", 2))
    ((job_id, *_),) = jobs(conn)
    page = sign_in("operator", 1).client.get(f"{SMS}?sent={job_id}").get_data(as_text=True)
    assert f"Job {job_id}" not in page and "Open job" not in page


def test_the_form_acts_for_the_organization_the_session_acts_for(app, make_user, conn):
    """Someone who operates Acme and views Globex may send for Acme only, and only while
    acting for it."""
    email = make_user("two@example.com", 1, "operator")
    user_id = conn.execute("SELECT id FROM users WHERE email = %s", (email,)).fetchone()[0]
    conn.execute("INSERT INTO memberships VALUES (%s, 2, 'viewer')", (user_id,))
    person = AuthActions(app.test_client())
    assert person.login(email).status_code == 302
    assert send(person).status_code == 302
    token = csrf_of(person.client.get("/admin/queues").get_data(as_text=True))
    switched = person.client.post(
        "/admin/queues/organization", data={"csrf_token": token, "organization_id": 2}
    )
    assert switched.status_code == 302
    assert person.client.get(SMS).status_code == 403
    assert [args["organization_id"] for _, _, _, args, _ in jobs(conn)] == [1]
