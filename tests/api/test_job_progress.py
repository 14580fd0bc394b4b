"""The progress a job's task reported, in the API's job documents and their schema."""

import datetime

import jsonschema

from tests.conftest import sms_job


def defer(client, organization_id=1) -> int:
    response = client.post("/api/v1/jobs", json=sms_job(organization_id))
    assert response.status_code == 202
    return response.get_json()["id"]


def report(conn, job_id, fraction, message) -> datetime.datetime:
    """Store progress as the worker does; returns its time."""
    return conn.execute(
        "INSERT INTO job_progress (job_id, fraction, message) VALUES (%s, %s, %s)"
        " RETURNING updated_at",
        (job_id, fraction, message),
    ).fetchone()[0]


def test_a_job_without_progress_shows_null(client):
    job_id = defer(client)
    assert client.get(f"/api/v1/jobs/{job_id}").get_json()["progress"] is None


def test_a_job_shows_the_progress_its_task_reported(client, conn):
    job_id = defer(client)
    quiet = defer(client)
    at = report(conn, job_id, 0.25, "sent 120 of 500 e-mails")
    expected = {"fraction": 0.25, "message": "sent 120 of 500 e-mails", "updated_at": at}

    body = client.get(f"/api/v1/jobs/{job_id}").get_json()
    progress = {**body["progress"]}
    progress["updated_at"] = datetime.datetime.fromisoformat(progress["updated_at"])
    assert progress == expected

    listed = {job["id"]: job["progress"] for job in client.get("/api/v1/jobs").get_json()["jobs"]}
    assert listed[job_id]["message"] == "sent 120 of 500 e-mails"
    assert listed[quiet] is None


def test_a_fraction_stored_as_real_reads_back_as_written(client, conn):
    job_id = defer(client)
    report(conn, job_id, 0.1, "")
    progress = client.get(f"/api/v1/jobs/{job_id}").get_json()["progress"]
    assert (progress["fraction"], progress["message"]) == (0.1, "")


def test_another_organizations_progress_answers_404(client, admin_client, conn):
    other = admin_client.post("/api/v1/jobs", json=sms_job(2)).get_json()["id"]
    report(conn, other, 0.5, "secret")
    assert client.get(f"/api/v1/jobs/{other}").status_code == 404
    assert all(job["id"] != other for job in client.get("/api/v1/jobs").get_json()["jobs"])


def test_the_openapi_document_describes_progress_and_the_answer_fits_it(client, conn):
    document = client.get("/api/v1/openapi.json").get_json()
    schemas = document["components"]["schemas"]
    progress = schemas["Progress"]
    assert set(progress["required"]) == {"fraction", "message", "updated_at"}
    assert (
        progress["properties"]["fraction"]["minimum"],
        progress["properties"]["fraction"]["maximum"],
    ) == (0, 1)
    assert progress["properties"]["message"]["maxLength"] == 200
    assert {"type": "null"} in schemas["Job"]["properties"]["progress"]["anyOf"]

    job_id = defer(client)
    report(conn, job_id, 1, "done")
    body = client.get(f"/api/v1/jobs/{job_id}").get_json()
    resolver = {"$defs": schemas, **schemas["Job"]}
    jsonschema.validate(body, _local_refs(resolver))


def _local_refs(schema):
    """The schema with OpenAPI's component references turned into local ones."""
    if isinstance(schema, dict):
        return {
            key: value.replace("#/components/schemas/", "#/$defs/")
            if key == "$ref"
            else _local_refs(value)
            for key, value in schema.items()
        }
    if isinstance(schema, list):
        return [_local_refs(value) for value in schema]
    return schema
