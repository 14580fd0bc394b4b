"""POST /api/v1/jobs/batch: up to 1,000 jobs, all or nothing, errors by index."""

import pytest

from tests.conftest import bearer, sms_job

NOOP = sms_job(1)


def count_jobs(conn):
    return conn.execute("SELECT count(*) FROM procrastinate_jobs").fetchone()[0]


def test_batch_defers_every_job(client, conn):
    jobs = [{**NOOP, "priority": i % 201 - 100} for i in range(1000)]
    response = client.post("/api/v1/jobs/batch", json={"jobs": jobs})
    assert response.status_code == 202
    deferred = response.get_json()["jobs"]
    assert len(deferred) == 1000
    assert len({job["id"] for job in deferred}) == 1000
    assert count_jobs(conn) == 1000


def test_batch_with_an_invalid_item_defers_nothing_and_names_the_index(client, conn):
    jobs = [
        NOOP,
        {**NOOP, "task": "nope"},
        NOOP,
        {"task": "sms:send_notification", "payload": {"organization_id": 1}},
    ]
    response = client.post("/api/v1/jobs/batch", json={"jobs": jobs})
    assert response.status_code == 422
    errors = response.get_json()["errors"]
    assert {(e["index"], e["field"]) for e in errors} == {
        (1, "task"),
        (3, "payload.to"),
        (3, "payload.body"),
    }
    assert count_jobs(conn) == 0


@pytest.mark.parametrize(
    "body", [{"jobs": []}, {"jobs": [NOOP] * 1001}, {"jobs": "x"}, {"jobs": [NOOP], "extra": 1}, {}]
)
def test_batch_shape_errors_are_422(client, conn, body):
    assert client.post("/api/v1/jobs/batch", json=body).status_code == 422
    assert count_jobs(conn) == 0


def test_repeated_key_inside_a_batch_is_422(client, conn):
    jobs = [{**NOOP, "idempotency_key": "k"}, NOOP, {**NOOP, "idempotency_key": "k"}]
    response = client.post("/api/v1/jobs/batch", json={"jobs": jobs})
    assert response.status_code == 422
    assert response.get_json()["errors"][0]["index"] == 2
    assert count_jobs(conn) == 0


def test_key_of_a_waiting_job_makes_the_whole_batch_409(client, conn):
    first = client.post("/api/v1/jobs", json={**NOOP, "idempotency_key": "k"}).get_json()
    jobs = [NOOP, NOOP, {**NOOP, "idempotency_key": "k"}]
    response = client.post("/api/v1/jobs/batch", json={"jobs": jobs})
    assert response.status_code == 409
    assert response.get_json()["job_id"] == first["id"]
    assert response.get_json()["index"] == 2
    assert count_jobs(conn) == 1


def test_batch_body_limit_is_separate_and_configurable(make_app, db_url, make_token):
    client = bearer(make_app(db_url, API_BATCH_MAX_BODY_BYTES="4096").test_client(), make_token())
    assert client.post("/api/v1/jobs/batch", json={"jobs": [NOOP] * 200}).status_code == 413
    assert client.post("/api/v1/jobs/batch", json={"jobs": [NOOP] * 10}).status_code == 202
