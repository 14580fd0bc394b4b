"""POST/GET /api/v1/jobs and friends: every status code, on a real PostgreSQL."""

import datetime
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.conftest import AuthActions, bearer, sms_job


@pytest.fixture
def other_org(app, make_token):
    """A client with an operator token of organization 2 (Globex)."""
    return bearer(app.test_client(), make_token(2))


SMS = {
    "task": "sms:send_notification",
    "payload": {"organization_id": 1, "to": "+14155550123", "body": "Your order shipped."},
}
NOOP = sms_job(1)
BATCH = "/api/v1/jobs/batch"
NOW = datetime.datetime.now(datetime.UTC)
SOON = (NOW + datetime.timedelta(days=1)).isoformat()
LATER_THAN_ALLOWED = (NOW + datetime.timedelta(days=367)).isoformat()


def job_row(conn, job_id):
    return conn.execute(
        "SELECT task_name, queue_name, priority, args, status::text, scheduled_at,"
        " queueing_lock FROM procrastinate_jobs WHERE id = %s",
        (job_id,),
    ).fetchone()


def post(client, body, path="/api/v1/jobs", **kwargs):
    return client.post(path, json=body, **kwargs)


def test_create_job_defers_a_row_with_the_organization_in_its_args(client, conn):
    response = post(client, SMS)
    assert response.status_code == 202
    body = response.get_json()
    assert body["status"] == "todo"
    assert body["task"] == "sms:send_notification"
    assert body["queue"] == "sms-notifications"
    assert response.headers["Location"] == f"/api/v1/jobs/{body['id']}"
    assert body["links"]["self"] == response.headers["Location"]
    task, queue, priority, args, status, scheduled_at, lock = job_row(conn, body["id"])
    assert (task, queue, priority, status) == (
        "sms:send_notification",
        "sms-notifications",
        10,
        "todo",
    )
    assert args == SMS["payload"]
    assert scheduled_at is None and lock is None


def test_options_override_queue_and_priority_and_schedule(client, conn):
    run_at = (datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=30)).replace(
        microsecond=0
    )
    response = post(
        client, {**NOOP, "queue": "email-digests", "priority": 99, "run_at": run_at.isoformat()}
    )
    assert response.status_code == 202
    _, queue, priority, _, _, scheduled_at, _ = job_row(conn, response.get_json()["id"])
    assert (queue, priority, scheduled_at) == ("email-digests", 99, run_at)

    delayed = post(client, {**NOOP, "delay_seconds": 3600}).get_json()
    scheduled_at = job_row(conn, delayed["id"])[5]
    expected = datetime.datetime.now(datetime.UTC) + datetime.timedelta(hours=1)
    assert abs((scheduled_at - expected).total_seconds()) < 60


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({**SMS, "task": "sms:nope"}, "task"),
        ({"payload": SMS["payload"]}, "task"),
        ({"task": "sms:send_notification"}, "payload"),
        ({**SMS, "payload": {**SMS["payload"], "to": "555"}}, "payload.to"),
        ({**SMS, "payload": {**SMS["payload"], "body": "x" * 1601}}, "payload.body"),
        ({**SMS, "payload": {"to": "+14155550123", "body": "hi"}}, "payload.organization_id"),
        (
            {**SMS, "payload": {**SMS["payload"], "organization_id": "one"}},
            "payload.organization_id",
        ),
        ({**SMS, "payload": {**SMS["payload"], "organization_id": 0}}, "payload.organization_id"),
        ({**SMS, "run_at": "2030-01-02T03:04:05"}, "run_at"),
        ({**SMS, "run_at": SOON, "delay_seconds": 5}, "body"),
        # Far years: PostgreSQL would store them, and psycopg could not read them back.
        ({**SMS, "run_at": "0001-01-01T00:00:00+14:00"}, "run_at"),
        ({**SMS, "run_at": "9999-12-31T23:59:59-14:00"}, "run_at"),
        ({**SMS, "run_at": LATER_THAN_ALLOWED}, "run_at"),
        ({**SMS, "run_at": "2020-01-01T00:00:00Z"}, "run_at"),
        ({**SMS, "priority": 101}, "priority"),
        ({**SMS, "priority": -101}, "priority"),
        ({**SMS, "delay_seconds": -1}, "delay_seconds"),
        ({**SMS, "priority": 5000}, "priority"),
        ({**SMS, "queue": "no-such-queue"}, "queue"),
        ({**SMS, "idempotency_key": ""}, "idempotency_key"),
        ({**SMS, "colour": "blue"}, "colour"),
    ],
)
def test_invalid_requests_get_422_with_field_errors(client, conn, body, field):
    response = post(client, body)
    assert response.status_code == 422
    errors = response.get_json()["errors"]
    assert field in {e["field"] for e in errors}, errors
    assert all(e["message"] for e in errors)
    assert conn.execute("SELECT count(*) FROM procrastinate_jobs").fetchone()[0] == 0


def test_malformed_json_is_400(client):
    response = client.post("/api/v1/jobs", data="{nope", content_type="application/json")
    assert response.status_code == 400
    assert response.get_json()["error"] == "Bad Request"


def test_not_json_is_415(client):
    response = client.post("/api/v1/jobs", data="task=x")
    assert response.status_code == 415
    assert response.is_json


@pytest.mark.parametrize("raw", ["[]", '"text"', "3", "null"])
def test_json_that_is_not_an_object_is_422(client, raw):
    response = client.post("/api/v1/jobs", data=raw, content_type="application/json")
    assert response.status_code == 422


def test_body_over_the_limit_is_413(make_app, db_url, make_token):
    client = bearer(make_app(db_url, API_MAX_BODY_BYTES="2048").test_client(), make_token())
    big = {**SMS, "payload": {**SMS["payload"], "body": "x" * 1500}, "pad": "y" * 1000}
    response = post(client, big)
    assert response.status_code == 413
    assert response.is_json
    assert post(client, SMS).status_code == 202


def test_default_body_limit_is_256_kib(client):
    response = post(client, {**SMS, "pad": "z" * (256 * 1024)})
    assert response.status_code == 413


def test_same_idempotency_key_while_waiting_is_409_with_the_first_id(client, conn, other_org):
    first = post(client, {**SMS, "idempotency_key": "order-42"}).get_json()
    second = post(client, {**SMS, "idempotency_key": "order-42"})
    assert second.status_code == 409
    assert second.get_json()["job_id"] == first["id"]
    # Another organization may use the same key.
    other = {
        **SMS,
        "payload": {**SMS["payload"], "organization_id": 2},
        "idempotency_key": "order-42",
    }
    assert post(other_org, other).status_code == 202
    # Once the first job is no longer waiting, the key is free again.
    conn.execute("UPDATE procrastinate_jobs SET status = 'succeeded' WHERE id = %s", (first["id"],))
    assert post(client, {**SMS, "idempotency_key": "order-42"}).status_code == 202


def test_get_job_shows_status_times_attempts_and_last_error(client, conn):
    job_id = post(client, SMS).get_json()["id"]
    conn.execute(
        "INSERT INTO job_attempts (job_id, attempt, worker_name, outcome, started_at,"
        " finished_at, error_class, error_message, traceback)"
        " VALUES (%s, 1, 'w1', 'failed', now(), now(), 'TimeoutError', 'took too long', 'tb')",
        (job_id,),
    )
    body = client.get(f"/api/v1/jobs/{job_id}").get_json()
    assert body["id"] == job_id
    assert body["status"] == "todo"
    assert body["task"] == "sms:send_notification"
    assert body["queue"] == "sms-notifications"
    assert body["organization_id"] == 1
    assert body["attempts"] == 0
    created = datetime.datetime.fromisoformat(body["created_at"])
    assert abs(datetime.datetime.now(datetime.UTC) - created) < datetime.timedelta(minutes=1)
    assert body["started_at"] is None and body["finished_at"] is None
    assert body["last_error"] == {"class": "TimeoutError", "message": "took too long"}

    attempts = client.get(f"/api/v1/jobs/{job_id}/attempts").get_json()["attempts"]
    # The tenant sees the error, not the traceback (platform admins only).
    assert [(a["attempt"], a["outcome"], a["traceback"]) for a in attempts] == [(1, "failed", None)]


def test_unknown_job_is_404(client):
    for path in ("/api/v1/jobs/999999", "/api/v1/jobs/999999/attempts"):
        response = client.get(path)
        assert response.status_code == 404
        assert response.get_json()["error"] == "Not Found"
    assert client.post("/api/v1/jobs/999999/cancel").status_code == 404
    assert client.post("/api/v1/jobs/999999/retry").status_code == 404


def test_another_organizations_job_is_404(client, other_org):
    job_id = post(client, SMS).get_json()["id"]
    assert client.get(f"/api/v1/jobs/{job_id}").status_code == 200
    for path in (f"/api/v1/jobs/{job_id}", f"/api/v1/jobs/{job_id}/attempts"):
        assert other_org.get(path).status_code == 404
    for action in ("cancel", "retry"):
        assert other_org.post(f"/api/v1/jobs/{job_id}/{action}").status_code == 404
    assert client.get(f"/api/v1/jobs/{job_id}?organization_id=x").status_code == 400


def test_admin_reads_any_job_and_may_narrow_to_one_organization(client, admin_client):
    job_id = post(client, SMS).get_json()["id"]
    assert admin_client.get(f"/api/v1/jobs/{job_id}").status_code == 200
    assert admin_client.get(f"/api/v1/jobs/{job_id}?organization_id=1").status_code == 200
    assert admin_client.get(f"/api/v1/jobs/{job_id}?organization_id=2").status_code == 404


def test_a_payload_naming_another_organization_is_403(client, conn):
    other = {**SMS, "payload": {**SMS["payload"], "organization_id": 2}}
    assert post(client, other).status_code == 403
    assert post(client, {"jobs": [NOOP, other]}, "/api/v1/jobs/batch").status_code == 403
    assert conn.execute("SELECT count(*) FROM procrastinate_jobs").fetchone()[0] == 0


def test_admin_defers_for_existing_organizations_only(admin_client, conn):
    assert post(admin_client, sms_job(2)).status_code == 202
    response = post(admin_client, sms_job(99))
    assert response.status_code == 422
    assert response.get_json()["errors"][0]["field"] == "payload.organization_id"


def test_list_jobs_pages_with_a_cursor_and_filters(client, other_org, admin_client):
    ids = [post(client, sms_job(1, queue="default")).get_json()["id"] for _ in range(5)]
    post(client, SMS)
    digest = {"organization_id": 1, "period": "daily", "recipients": ["ops@example.com"]}
    digest_id = post(client, {"task": "email:send_digest", "payload": digest}).get_json()["id"]
    other = post(other_org, sms_job(2)).get_json()["id"]

    seen, cursor = [], None
    while True:
        query = "/api/v1/jobs?queue=default&limit=2"
        page = client.get(query + (f"&cursor={cursor}" if cursor else "")).get_json()
        seen += [job["id"] for job in page["jobs"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == sorted(ids, reverse=True)

    queue = client.get("/api/v1/jobs?queue=sms-notifications").get_json()["jobs"]
    assert [job["task"] for job in queue] == ["sms:send_notification"]
    digests = client.get("/api/v1/jobs?task=email:send_digest").get_json()["jobs"]
    assert [job["id"] for job in digests] == [digest_id]
    assert client.get("/api/v1/jobs?status=succeeded").get_json()["jobs"] == []
    assert other not in [job["id"] for job in client.get("/api/v1/jobs").get_json()["jobs"]]
    everything = admin_client.get("/api/v1/jobs").get_json()["jobs"]
    assert other in [job["id"] for job in everything]
    only_b = admin_client.get("/api/v1/jobs?organization_id=2").get_json()["jobs"]
    assert [job["id"] for job in only_b] == [other]


@pytest.mark.parametrize("query", ["status=bogus", "limit=0", "limit=501", "limit=x", "cursor=-1"])
def test_list_jobs_rejects_bad_parameters(client, query):
    assert client.get(f"/api/v1/jobs?{query}").status_code == 422


def test_cancel_waiting_running_and_finished_jobs(client, conn):
    waiting = post(client, NOOP).get_json()["id"]
    response = client.post(f"/api/v1/jobs/{waiting}/cancel")
    assert response.status_code == 200
    assert response.get_json()["status"] == "cancelled"
    assert response.get_json()["abort_requested"] is False  # nothing ran to abort

    running = post(client, NOOP).get_json()["id"]
    conn.execute("UPDATE procrastinate_jobs SET status = 'doing' WHERE id = %s", (running,))
    response = client.post(f"/api/v1/jobs/{running}/cancel")
    assert response.status_code == 202
    assert response.get_json()["abort_requested"] is True

    conn.execute("UPDATE procrastinate_jobs SET status = 'succeeded' WHERE id = %s", (running,))
    response = client.post(f"/api/v1/jobs/{running}/cancel")
    assert response.status_code == 409
    assert response.get_json()["status"] == "succeeded"
    assert client.post(f"/api/v1/jobs/{waiting}/cancel").status_code == 409


def test_retry_failed_in_place_and_cancelled_as_a_new_job(client, conn):
    failed = post(client, NOOP).get_json()["id"]
    conn.execute("UPDATE procrastinate_jobs SET status = 'doing' WHERE id = %s", (failed,))
    conn.execute("UPDATE procrastinate_jobs SET status = 'failed' WHERE id = %s", (failed,))
    response = client.post(f"/api/v1/jobs/{failed}/retry")
    assert response.status_code == 202
    assert response.get_json()["id"] == failed
    assert response.get_json()["status"] == "todo"

    cancelled = post(client, SMS).get_json()["id"]
    client.post(f"/api/v1/jobs/{cancelled}/cancel")
    response = client.post(f"/api/v1/jobs/{cancelled}/retry")
    assert response.status_code == 202
    body = response.get_json()
    assert body["retried_from"] == cancelled
    assert body["id"] != cancelled and body["status"] == "todo"
    assert body["payload"] == SMS["payload"] and body["queue"] == "sms-notifications"
    assert response.headers["Location"] == f"/api/v1/jobs/{body['id']}"
    assert client.get(f"/api/v1/jobs/{cancelled}").get_json()["retried_as"] == body["id"]


def test_a_cancelled_job_is_retried_once_and_its_copy_after_that(client, conn):
    cancelled = post(client, SMS).get_json()["id"]
    client.post(f"/api/v1/jobs/{cancelled}/cancel")
    copy = client.post(f"/api/v1/jobs/{cancelled}/retry").get_json()["id"]
    # The copy runs and succeeds; retrying the original again makes no second copy.
    conn.execute("UPDATE procrastinate_jobs SET status = 'doing' WHERE id = %s", (copy,))
    conn.execute("UPDATE procrastinate_jobs SET status = 'succeeded' WHERE id = %s", (copy,))
    again = client.post(f"/api/v1/jobs/{cancelled}/retry")
    assert again.status_code == 409
    assert again.get_json()["retried_as"] == copy
    assert f"as job {copy}" in again.get_json()["message"]
    # A copy that was cancelled in turn may be retried, once, like any job.
    conn.execute("UPDATE procrastinate_jobs SET status = 'cancelled' WHERE id = %s", (copy,))
    second = client.post(f"/api/v1/jobs/{copy}/retry").get_json()
    assert second["retried_from"] == copy and second["status"] == "todo"
    assert client.post(f"/api/v1/jobs/{copy}/retry").status_code == 409
    assert conn.execute("SELECT count(*) FROM procrastinate_jobs").fetchone()[0] == 3


def test_concurrent_retries_make_one_copy_and_each_refusal_names_it(
    make_app, db_url, make_token, conn
):
    app = make_app(db_url, WEB_POOL_MAX_SIZE="20", DB_POOL_TIMEOUT="30")
    token = make_token(1)
    clients = [bearer(app.test_client(), token) for _ in range(20)]
    original = post(clients[0], SMS).get_json()["id"]
    clients[0].post(f"/api/v1/jobs/{original}/cancel")
    start = threading.Barrier(len(clients))

    def retry(client):
        start.wait()
        return client.post(f"/api/v1/jobs/{original}/retry")

    with ThreadPoolExecutor(len(clients)) as pool:
        responses = list(pool.map(retry, clients))
    (copy,) = [r.get_json()["id"] for r in responses if r.status_code == 202]
    refusals = [r.get_json() for r in responses if r.status_code == 409]
    assert len(refusals) == 19
    assert {refusal["retried_as"] for refusal in refusals} == {copy}
    assert conn.execute("SELECT count(*) FROM job_retries").fetchone()[0] == 1


def test_a_retried_copy_keeps_the_idempotency_key(client):
    keyed = {**SMS, "idempotency_key": "order-77"}
    original = post(client, keyed).get_json()["id"]
    client.post(f"/api/v1/jobs/{original}/cancel")
    copy = client.post(f"/api/v1/jobs/{original}/retry").get_json()["id"]
    again = post(client, keyed)
    assert again.status_code == 409
    assert again.get_json()["job_id"] == copy


def test_a_retry_is_refused_while_a_job_with_its_key_waits(client):
    keyed = {**SMS, "idempotency_key": "order-78"}
    original = post(client, keyed).get_json()["id"]
    client.post(f"/api/v1/jobs/{original}/cancel")
    waiting = post(client, keyed).get_json()["id"]
    refused = client.post(f"/api/v1/jobs/{original}/retry")
    assert refused.status_code == 409
    assert "idempotency key" in refused.get_json()["message"]
    assert client.get(f"/api/v1/jobs/{waiting}").get_json()["status"] == "todo"


def test_a_manual_retry_does_not_count_the_failed_run_again(admin_client, conn):
    # Written around the API at the top of the column: a retry must not add to it.
    job_id = conn.execute(
        "INSERT INTO procrastinate_jobs (queue_name, task_name, args, status, attempts)"
        " VALUES ('default', 'sms:send_notification', '{\"organization_id\": 1}', 'failed',"
        " 2147483647) RETURNING id"
    ).fetchone()[0]
    response = admin_client.post(f"/api/v1/jobs/{job_id}/retry")
    assert response.status_code == 202
    attempts = conn.execute(
        "SELECT attempts FROM procrastinate_jobs WHERE id = %s", (job_id,)
    ).fetchone()[0]
    assert attempts == 2147483647


def job_in_status(client, conn, status: str) -> int:
    """A job deferred through the API, then set to ``status`` by hand; its id."""
    job_id = post(client, NOOP).get_json()["id"]
    conn.execute(
        "UPDATE procrastinate_jobs SET status = %s::procrastinate_job_status WHERE id = %s",
        (status, job_id),
    )
    return job_id


@pytest.mark.parametrize("status", ["todo", "doing", "succeeded"])
def test_retry_of_a_job_that_did_not_fail_is_409(client, conn, status):
    job_id = job_in_status(client, conn, status)
    response = client.post(f"/api/v1/jobs/{job_id}/retry")
    assert response.status_code == 409
    assert response.get_json()["status"] == status


@pytest.mark.parametrize(
    ("status", "message"),
    [
        ("aborted", "an aborted job cannot be cancelled"),
        ("failed", "a failed job cannot be cancelled"),
    ],
)
def test_a_finished_job_cannot_be_cancelled_said_plainly(client, conn, status, message):
    job_id = job_in_status(client, conn, status)
    response = client.post(f"/api/v1/jobs/{job_id}/cancel")
    assert response.status_code == 409
    assert response.get_json()["message"] == message


def test_get_and_cancel_use_post_only_for_changes(client):
    job_id = post(client, NOOP).get_json()["id"]
    assert client.get(f"/api/v1/jobs/{job_id}/cancel").status_code == 405
    assert client.delete(f"/api/v1/jobs/{job_id}").status_code == 405


@pytest.mark.parametrize(
    "query", ["limit=%C2%B2", "cursor=%C2%B2", "cursor=99999999999999999999", "limit=-1"]
)
def test_odd_numbers_in_the_query_are_422(client, query):
    assert client.get(f"/api/v1/jobs?{query}").status_code == 422


def test_odd_organization_ids_are_400(admin_client):
    for value in ("%C2%B2", "99999999999999999999", "0"):
        assert admin_client.get(f"/api/v1/jobs?organization_id={value}").status_code == 400


def test_values_postgres_cannot_store_are_422(client, conn):
    body = {**SMS, "payload": {**SMS["payload"], "body": "nul \u0000 inside"}}
    assert post(client, body).status_code == 422
    assert client.get("/api/v1/jobs?task=%00").status_code == 422
    assert conn.execute("SELECT count(*) FROM procrastinate_jobs").fetchone()[0] == 0


def test_retry_of_a_failed_job_that_kept_an_abort_request(client, conn):
    job_id = post(client, NOOP).get_json()["id"]
    conn.execute(
        "UPDATE procrastinate_jobs SET status = 'doing', abort_requested = true WHERE id = %s",
        (job_id,),
    )
    conn.execute("UPDATE procrastinate_jobs SET status = 'failed' WHERE id = %s", (job_id,))
    response = client.post(f"/api/v1/jobs/{job_id}/retry")
    assert response.status_code == 202
    assert response.get_json()["status"] == "todo"
    assert response.get_json()["abort_requested"] is False


def test_retry_of_a_failed_job_whose_key_is_taken_again_is_409(client, conn):
    first = post(client, {**NOOP, "idempotency_key": "k"}).get_json()["id"]
    conn.execute("UPDATE procrastinate_jobs SET status = 'doing' WHERE id = %s", (first,))
    conn.execute("UPDATE procrastinate_jobs SET status = 'failed' WHERE id = %s", (first,))
    assert post(client, {**NOOP, "idempotency_key": "k"}).status_code == 202
    response = client.post(f"/api/v1/jobs/{first}/retry")
    assert response.status_code == 409
    assert job_row(conn, first)[4] == "failed"


def test_retrying_a_cancelled_job_twice_defers_one_copy(client, conn):
    job_id = post(client, NOOP).get_json()["id"]
    client.post(f"/api/v1/jobs/{job_id}/cancel")
    assert client.post(f"/api/v1/jobs/{job_id}/retry").status_code == 202
    assert client.post(f"/api/v1/jobs/{job_id}/retry").status_code == 409
    assert conn.execute("SELECT count(*) FROM procrastinate_jobs").fetchone()[0] == 2


DIAGNOSTIC = {"task": "diagnostics:sleep", "payload": {"organization_id": 1, "seconds": 60}}


def test_diagnostics_are_for_platform_callers_only(client, admin_client, conn):
    refused = post(client, DIAGNOSTIC)
    assert refused.status_code == 403
    assert "platform admins" in refused.get_json()["message"]
    batch = post(client, {"jobs": [NOOP, DIAGNOSTIC]}, "/api/v1/jobs/batch")
    assert (batch.status_code, batch.get_json()["index"]) == (403, 1)
    assert conn.execute("SELECT count(*) FROM procrastinate_jobs").fetchone()[0] == 0
    assert post(admin_client, DIAGNOSTIC).status_code == 202


def test_housekeeping_runs_stay_out_of_listings_unless_asked_for(client, admin_client, conn):
    conn.execute(
        "INSERT INTO procrastinate_jobs (queue_name, task_name, args)"
        " SELECT 'housekeeping', 'maintenance:retry_stalled_jobs', '{\"timestamp\": 1}'"
        " FROM generate_series(1, 3)"
    )
    job_id = post(client, NOOP).get_json()["id"]
    listed = admin_client.get("/api/v1/jobs").get_json()["jobs"]
    assert [job["id"] for job in listed] == [job_id]
    asked = admin_client.get("/api/v1/jobs?queue=housekeeping").get_json()["jobs"]
    assert [job["task"] for job in asked] == ["maintenance:retry_stalled_jobs"] * 3
    assert client.get("/api/v1/jobs?queue=housekeeping").get_json()["jobs"] == []


def test_a_tenant_cannot_retry_a_platform_only_task(client, admin_client, conn):
    job_id = post(admin_client, DIAGNOSTIC).get_json()["id"]
    assert client.post(f"/api/v1/jobs/{job_id}/cancel").status_code == 200
    refused = client.post(f"/api/v1/jobs/{job_id}/retry")
    assert refused.status_code == 403
    assert conn.execute("SELECT count(*) FROM procrastinate_jobs").fetchone()[0] == 1
    assert admin_client.post(f"/api/v1/jobs/{job_id}/retry").status_code == 202


@pytest.mark.parametrize(
    "args",
    [
        # Written around the API: nested deeper than Python parses, a 5,000-digit number.
        '{"organization_id": 1, "deep": ' + "[" * 3000 + "]" * 3000 + "}",
        '{"organization_id": 1, "big": ' + "7" * 5000 + "}",
        '{"organization_id": 1, "huge": 1' + "0" * 400 + ".5}",  # beyond float: no Infinity
    ],
)
def test_rows_python_cannot_load_are_read_and_retried_as_stored(client, conn, args):
    job_id = conn.execute(
        "INSERT INTO procrastinate_jobs (queue_name, task_name, args, status)"
        " VALUES ('sms-notifications', 'sms:send_notification', %s, 'cancelled') RETURNING id",
        (args,),
    ).fetchone()[0]
    listed = client.get("/api/v1/jobs")
    assert listed.status_code == 200
    assert "Infinity" not in listed.get_data(as_text=True)
    assert [job["id"] for job in listed.get_json()["jobs"]] == [job_id]
    assert client.get(f"/api/v1/jobs/{job_id}").status_code == 200
    retried = client.post(f"/api/v1/jobs/{job_id}/retry")
    assert retried.status_code == 202, retried.get_data(as_text=True)
    same = conn.execute(
        "SELECT a.args = b.args FROM procrastinate_jobs a, procrastinate_jobs b"
        " WHERE a.id = %s AND b.id = %s",
        (job_id, retried.get_json()["id"]),
    ).fetchone()[0]
    assert same


@pytest.mark.parametrize("org", ["1" + "0" * 29, "1e400", "true", '"abc"', "-5"])
def test_an_admin_cancels_and_retries_jobs_whose_organization_id_no_organization_has(
    admin_client, conn, org
):
    # Written around the API; PostgreSQL keeps 1e400 as a 401-digit integer.
    job_id = conn.execute(
        "INSERT INTO procrastinate_jobs (queue_name, task_name, args)"
        " VALUES ('sms-notifications', 'sms:send_notification', %s) RETURNING id",
        (f'{{"organization_id": {org}}}',),
    ).fetchone()[0]
    cancelled = admin_client.post(f"/api/v1/jobs/{job_id}/cancel")
    assert cancelled.status_code == 200, cancelled.get_data(as_text=True)
    assert admin_client.post(f"/api/v1/jobs/{job_id}/cancel").status_code == 409
    retried = admin_client.post(f"/api/v1/jobs/{job_id}/retry")
    assert retried.status_code == 202, retried.get_data(as_text=True)
    audited = conn.execute("SELECT action, organization_id FROM audit_log ORDER BY id").fetchall()
    expected = int(org) if org == "-5" else None
    assert audited == [("job.cancel", expected), ("job.retry", expected)]


def test_only_platform_admins_see_tracebacks(client, admin_client, conn):
    job_id = post(client, NOOP).get_json()["id"]
    conn.execute(
        "INSERT INTO job_attempts (job_id, attempt, worker_name, outcome, started_at,"
        " finished_at, error_class, error_message, traceback) VALUES (%s, 1, 'w', 'failed',"
        " now(), now(), 'ValueError', 'bad', 'File \"/srv/howdah/tasks/sms.py\"')",
        (job_id,),
    )
    path = f"/api/v1/jobs/{job_id}/attempts"
    (tenant_view,) = client.get(path).get_json()["attempts"]
    (admin_view,) = admin_client.get(path).get_json()["attempts"]
    assert (tenant_view["error_class"], tenant_view["error_message"]) == ("ValueError", "bad")
    assert tenant_view["traceback"] is None
    assert admin_view["traceback"] == 'File "/srv/howdah/tasks/sms.py"'


def test_attempts_with_times_written_around_the_api_are_read(client, conn):
    job_id = post(client, NOOP).get_json()["id"]
    conn.execute(
        "INSERT INTO job_attempts (job_id, attempt, worker_name, outcome, started_at,"
        " finished_at) VALUES (%s, 1, 'w', 'failed', '-infinity', 'infinity')",
        (job_id,),
    )
    response = client.get(f"/api/v1/jobs/{job_id}/attempts")
    assert response.status_code == 200
    (attempt,) = response.get_json()["attempts"]
    assert attempt["duration_seconds"] is None
    assert attempt["started_at"].startswith("0001-01-01")


@pytest.mark.parametrize(
    "segment",
    ["9223372036854775808", "99999999999999999999", "1" + "0" * 400, "0", "%D9%A3", "-1"],
)
def test_job_ids_beyond_bigint_or_not_ascii_digits_are_404(client, segment):
    # werkzeug's int converter took any length and any Unicode digit (٣ was job 3).
    post(client, NOOP)  # job 1 exists
    for path in (f"/api/v1/jobs/{segment}", f"/api/v1/jobs/{segment}/attempts"):
        response = client.get(path)
        assert response.status_code == 404
        assert response.is_json
    for action in ("cancel", "retry"):
        assert client.post(f"/api/v1/jobs/{segment}/{action}").status_code == 404
    assert client.get("/api/v1/jobs/9223372036854775807").get_json()["message"] == (
        "no job 9223372036854775807"
    )


@pytest.mark.parametrize("query", ["queue=nope", "task=" + "x" * 201, "cursor=9223372036854775808"])
def test_list_filters_outside_their_documented_bounds_are_422(client, query):
    assert client.get(f"/api/v1/jobs?{query}").status_code == 422


def test_every_status_a_job_can_hold_is_a_filter(client, conn):
    job_id = job_in_status(client, conn, "aborting")
    page = client.get("/api/v1/jobs?status=aborting").get_json()
    assert [job["id"] for job in page["jobs"]] == [job_id]
    assert page["jobs"][0]["status"] == "aborting"


@pytest.mark.parametrize("key", ["line\nbreak", "tab\there", "del\x7f"])
def test_a_key_with_a_control_character_is_422_every_time(client, conn, key):
    # A line break in a waiting job's key made the second request a 500.
    for _ in range(2):
        response = post(client, {**NOOP, "idempotency_key": key})
        assert response.status_code == 422
        assert response.get_json()["errors"][0]["field"] == "idempotency_key"
    assert conn.execute("SELECT count(*) FROM procrastinate_jobs").fetchone()[0] == 0


def test_whole_numbers_written_with_a_fraction_are_integers(client, conn):
    # JSON Schema counts -46.0 as an integer; so does the server.
    payload = {**NOOP["payload"], "organization_id": 1.0}
    response = post(client, {**NOOP, "payload": payload, "priority": -46.0})
    assert response.status_code == 202, response.get_json()
    _, _, priority, args, *_ = job_row(conn, response.get_json()["id"])
    assert (priority, args["organization_id"]) == (-46, 1)
    assert isinstance(priority, int) and isinstance(args["organization_id"], int)


@pytest.mark.parametrize("priority", [1.5, "5", True, 100.5])
def test_a_priority_that_is_not_a_json_integer_is_422(client, priority):
    response = post(client, {**NOOP, "priority": priority})
    assert response.status_code == 422
    assert response.get_json()["errors"][0]["field"] == "priority"


def test_recipients_under_special_use_domains_are_422(client):
    payload = {"organization_id": 1, "period": "daily", "recipients": ["ops@mail.test"]}
    response = post(client, {"task": "email:send_digest", "payload": payload})
    assert response.status_code == 422
    assert response.get_json()["errors"][0]["field"] == "payload.recipients.0"


def test_a_key_holding_a_parenthesis_names_the_waiting_job(client):
    # Procrastinate parses the key out of PostgreSQL's error text, up to the first ")".
    first = post(client, {**NOOP, "idempotency_key": "order (42)"}).get_json()
    second = post(client, {**NOOP, "idempotency_key": "order (42)"})
    assert second.status_code == 409
    assert second.get_json()["job_id"] == first["id"]
    batch = post(client, {"jobs": [NOOP, {**NOOP, "idempotency_key": "order (42)"}]}, BATCH)
    assert (batch.status_code, batch.get_json()["job_id"]) == (409, first["id"])
    assert batch.get_json()["index"] == 1


def test_job_documents_name_retries_both_ways(client, conn):
    body = client.get(f"/api/v1/jobs/{post(client, NOOP).get_json()['id']}").get_json()
    assert (body["retried_from"], body["retried_as"]) == (None, None)


def test_job_documents_take_retries_from_the_row(app, conn, orgs):
    from webapp.api.documents import Job
    from webapp.store import jobs as store

    job_id = conn.execute(
        "INSERT INTO procrastinate_jobs (queue_name, task_name, args)"
        " VALUES ('default', 'sms:send_notification', '{\"organization_id\": 1}') RETURNING id"
    ).fetchone()[0]
    row = {**store.get_job(conn, job_id, None), "retried_from": 7, "retried_as": 9}
    with app.test_request_context():
        document = Job.from_row(row).model_dump(mode="json")
    assert (document["retried_from"], document["retried_as"]) == (7, 9)
    assert document["organization_id"] == 1


def test_a_housekeeping_job_has_no_organization(admin_client, conn):
    conn.execute(
        "INSERT INTO procrastinate_jobs (queue_name, task_name, args)"
        " VALUES ('housekeeping', 'maintenance:retry_stalled_jobs', '{\"timestamp\": 1}')"
    )
    (job,) = admin_client.get("/api/v1/jobs?queue=housekeeping").get_json()["jobs"]
    assert job["organization_id"] is None


def test_a_sessions_change_with_a_form_over_64_kib_is_413(app, client, make_user):
    # The CSRF check reads the form, so even cancel and retry can answer 413.
    job_id = post(client, NOOP).get_json()["id"]
    auth = AuthActions(app.test_client())
    auth.login(make_user("op@example.com"))
    for action in ("cancel", "retry"):
        response = auth.client.post(f"/api/v1/jobs/{job_id}/{action}", data={"x": "y" * 70_000})
        assert response.status_code == 413
        assert response.is_json


@pytest.mark.parametrize("key", ["a\nb", "a\x7fb", "a\u0085b", "a\u2028b", "a\u2029b"])
def test_idempotency_keys_hold_no_control_characters_or_line_separators(client, key):
    response = post(client, {**SMS, "idempotency_key": key})
    assert response.status_code == 422
    assert response.get_json()["errors"][0]["field"] == "idempotency_key"


def test_a_doubled_slash_is_not_found_not_redirected(client):
    response = client.post("/api/v1//jobs", json=SMS, headers={"Host": "evil.example"})
    assert response.status_code == 404
    assert response.get_json()["error"] == "Not Found"
    assert "Location" not in response.headers


@pytest.mark.parametrize(
    "options",
    [
        {"delay_seconds": True},
        {"delay_seconds": "5"},
        {"run_at": 1800000000},
        {"run_at": "1800000000"},
    ],
)
def test_schedules_are_typed_as_the_document_says(client, options):
    response = post(client, {**SMS, **options})
    assert response.status_code == 422
    assert response.get_json()["errors"][0]["field"] in options


def test_a_sleep_takes_a_number_of_seconds(admin_client):
    for seconds in (False, "1e1"):
        job = {"task": "diagnostics:sleep", "payload": {"organization_id": 1, "seconds": seconds}}
        assert post(admin_client, job).status_code == 422
