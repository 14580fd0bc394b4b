"""/api/v1/digest-subscriptions: create, read, list, replace, delete and send, with the
bounds the document states and the tenancy of jobs."""

import pytest

from tests.conftest import bearer

PATH = "/api/v1/digest-subscriptions"
BODY = {
    "recipients": ["ops@example.com", "boss@example.org"],
    "frequency": "weekly",
    "weekday": 5,
    "hour": 9,
    "time_zone": "America/New_York",
}


def create(client, body=None, query=""):
    return client.post(f"{PATH}{query}", json=BODY if body is None else body)


def test_create_read_replace_and_delete(client, conn):
    response = create(client)
    assert response.status_code == 201
    created = response.get_json()
    sub_id = created["id"]
    assert response.headers["Location"] == f"{PATH}/{sub_id}"
    assert {k: created[k] for k in BODY} == BODY
    assert created["organization_id"] == 1 and created["last_period"] is None
    assert created["links"] == {"self": f"{PATH}/{sub_id}", "send": f"{PATH}/{sub_id}/send"}
    assert client.get(f"{PATH}/{sub_id}").get_json() == created

    conn.execute("UPDATE digest_subscriptions SET last_period = '2030-01-03'")
    changed = {**BODY, "frequency": "daily", "hour": 0, "time_zone": "UTC"}
    response = client.put(f"{PATH}/{sub_id}", json=changed)
    assert response.status_code == 200
    body = response.get_json()
    assert {k: body[k] for k in BODY} == changed
    assert body["last_period"] == "2030-01-03"  # the scheduler's record stays
    assert body["updated_at"] > created["updated_at"]

    assert client.delete(f"{PATH}/{sub_id}").status_code == 204
    assert client.get(f"{PATH}/{sub_id}").status_code == 404
    assert client.delete(f"{PATH}/{sub_id}").status_code == 404
    actions = conn.execute("SELECT action, target_id FROM audit_log ORDER BY id").fetchall()
    assert actions == [
        (f"digest_subscription.{verb}", str(sub_id)) for verb in ("create", "update", "delete")
    ]


def test_weekday_defaults_to_monday_and_repeated_addresses_are_kept_once(client):
    body = {k: v for k, v in BODY.items() if k != "weekday"}
    body["recipients"] = ["a@example.com", "A@example.com", "b@example.com"]
    created = create(client, body).get_json()
    assert created["weekday"] == 1
    assert created["recipients"] == ["a@example.com", "b@example.com"]


def test_send_defers_one_digest_and_answers_like_post_jobs(client, conn):
    sub_id = create(client).get_json()["id"]
    response = client.post(f"{PATH}/{sub_id}/send")
    assert response.status_code == 202
    job = response.get_json()
    assert (job["status"], job["task"], job["queue"]) == (
        "todo",
        "email:send_digest",
        "email-digests",
    )
    assert response.headers["Location"] == f"/api/v1/jobs/{job['id']}"
    payload = client.get(job["links"]["self"]).get_json()["payload"]
    expected = {
        "organization_id": 1,
        "period": "weekly",
        "recipients": BODY["recipients"],
        "subscription_id": sub_id,
    }
    assert {name: payload[name] for name in expected} == expected
    assert payload.get("until") is None  # the period ends when the job runs
    (details,) = conn.execute(
        "SELECT details FROM audit_log WHERE action = 'digest_subscription.send'"
    ).fetchone()
    assert details == {"job_id": job["id"]}


def test_the_list_pages_newest_first(client):
    ids = [create(client).get_json()["id"] for _ in range(5)]
    first = client.get(f"{PATH}?limit=2").get_json()
    assert [s["id"] for s in first["subscriptions"]] == ids[:-3:-1]
    assert first["next_cursor"] == str(ids[-2])
    rest = client.get(f"{PATH}?limit=10&cursor={first['next_cursor']}").get_json()
    assert [s["id"] for s in rest["subscriptions"]] == ids[-3::-1]
    assert rest["next_cursor"] is None


INVALID = [
    ("recipients", []),
    ("recipients", [f"u{n}@example.com" for n in range(101)]),
    ("recipients", ["not-an-address"]),
    ("recipients", ["ops@mail.test"]),
    ("recipients", "ops@example.com"),
    ("frequency", "hourly"),
    ("weekday", 0),
    ("weekday", 8),
    ("hour", -1),
    ("hour", 24),
    ("hour", "9"),
    ("hour", True),
    ("hour", 9.5),
    ("time_zone", "Mars/Olympus"),
    ("time_zone", "localtime"),
    ("time_zone", "../../etc/passwd"),
    ("time_zone", "Europe/" + "x" * 60),
    ("time_zone", ""),
    ("extra", 1),
]


@pytest.mark.parametrize(("name", "value"), INVALID, ids=[f"{n}={v!r}"[:40] for n, v in INVALID])
def test_values_out_of_bounds_are_422_and_change_nothing(client, conn, name, value):
    response = create(client, {**BODY, name: value})
    assert response.status_code == 422, response.get_json()
    assert response.get_json()["errors"][0]["field"].split(".")[0] == name
    sub_id = create(client).get_json()["id"]
    assert client.put(f"{PATH}/{sub_id}", json={**BODY, name: value}).status_code == 422
    assert client.get(f"{PATH}/{sub_id}").get_json()[name if name != "extra" else "hour"] == (
        BODY.get(name, 9)
    )


@pytest.mark.parametrize("missing", ["recipients", "frequency", "hour", "time_zone"])
def test_required_fields(client, missing):
    body = {k: v for k, v in BODY.items() if k != missing}
    assert create(client, body).status_code == 422


def test_a_body_that_is_not_a_json_object(client):
    assert client.post(PATH, data="x", content_type="text/plain").status_code == 415
    assert client.post(PATH, json=[BODY]).status_code == 422


def test_another_organization_finds_nothing_of_the_first(app, client, make_token, conn):
    sub_id = create(client).get_json()["id"]
    other = bearer(app.test_client(), make_token(2))
    assert other.get(PATH).get_json()["subscriptions"] == []
    for method in ("get", "put", "delete"):
        response = getattr(other, method)(f"{PATH}/{sub_id}", json=BODY)
        assert response.status_code == 404, method
        assert "ops@example.com" not in response.get_data(as_text=True)
    assert other.post(f"{PATH}/{sub_id}/send").status_code == 404
    assert other.get(f"{PATH}?organization_id=1").status_code == 403
    assert conn.execute("SELECT count(*) FROM procrastinate_jobs").fetchone() == (0,)
    assert client.get(f"{PATH}/{sub_id}").get_json()["hour"] == 9


def test_a_platform_caller_names_the_organization_to_create_in(admin_client, client, conn):
    response = create(admin_client)
    assert response.status_code == 422
    assert "organization_id" in response.get_json()["message"]
    assert create(admin_client, query="?organization_id=99").status_code == 422
    created = create(admin_client, query="?organization_id=2").get_json()
    assert created["organization_id"] == 2
    mine = create(client).get_json()["id"]
    listed = admin_client.get(PATH).get_json()["subscriptions"]
    assert [s["id"] for s in listed] == [mine, created["id"]]
    assert admin_client.get(f"{PATH}?organization_id=2").get_json()["subscriptions"] == [created]
    assert admin_client.post(f"{PATH}/{mine}/send").status_code == 202
    assert conn.execute("SELECT count(*) FROM digest_subscriptions").fetchone() == (2,)
