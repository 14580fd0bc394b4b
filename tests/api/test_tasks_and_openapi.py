"""GET /api/v1/tasks and the OpenAPI document, checked against the real routes."""

import json
import re

import jsonschema
import procrastinate
import pydantic
import pytest
from openapi_spec_validator import validate

from tasks import queues
from tasks.app import deferrable
from tasks.payloads import DigestPayload


def test_tasks_lists_what_the_caller_may_defer(client, admin_client):
    tenant = {t["name"] for t in client.get("/api/v1/tasks").get_json()["tasks"]}
    admin = {t["name"] for t in admin_client.get("/api/v1/tasks").get_json()["tasks"]}
    assert (
        tenant
        == set(deferrable(platform=False))
        == {
            "sms:send_notification",
            "email:send_digest",
        }
    )
    assert (
        admin
        == set(deferrable())
        == tenant
        | {
            "diagnostics:noop",
            "diagnostics:sleep",
            "diagnostics:work_in_steps",
            "diagnostics:fail_then_succeed",
        }
    )


def test_tasks_lists_every_deferrable_task_with_its_schema(client):
    tasks = {t["name"]: t for t in client.get("/api/v1/tasks").get_json()["tasks"]}
    sms = tasks["sms:send_notification"]
    assert sms["queue"] == "sms-notifications"
    assert sms["priority"] == 10
    assert sms["time_limit_seconds"] == 30
    assert sms["retry"] == {"max_retries": 5, "base_seconds": 2, "cap_seconds": 300}
    schema = sms["payload_schema"]
    assert set(schema["required"]) == {"organization_id", "to", "body"}
    assert schema["properties"]["body"]["maxLength"] == 1600
    assert schema["additionalProperties"] is False


def test_openapi_document_is_valid_openapi_3_1(client):
    document = client.get("/api/v1/openapi.json").get_json()
    assert document["openapi"].startswith("3.1")
    validate(document)


def api_routes(app) -> set[tuple[str, str]]:
    """(path, method) of every /api route, in OpenAPI's path syntax."""
    routes = set()
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith("/api/") or rule.rule == "/metrics":
            path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule)
            routes |= {(path, m.lower()) for m in rule.methods - {"HEAD", "OPTIONS"}}
    return routes


def test_openapi_describes_exactly_the_routes_that_exist(app, client):
    document = client.get("/api/v1/openapi.json").get_json()
    described = {(path, method) for path, ops in document["paths"].items() for method in ops}
    assert described == api_routes(app)


def test_openapi_payload_schemas_come_from_the_task_models(client):
    schemas = client.get("/api/v1/openapi.json").get_json()["components"]["schemas"]
    for spec in deferrable().values():
        assert spec.payload.__name__ in schemas
    assert "JobRequest" in schemas and "Error" in schemas


@pytest.fixture
def document(client):
    return client.get("/api/v1/openapi.json").get_json()


def keys_anywhere(value) -> set[str]:
    if isinstance(value, dict):
        return set(value) | {k for v in value.values() for k in keys_anywhere(v)}
    if isinstance(value, list):
        return {k for v in value for k in keys_anywhere(v)}
    return set()


def test_the_document_holds_no_pydantic_only_keywords(document):
    # A constraint pydantic could not place came out as "ge"/"le": bounds a client never saw.
    assert not keys_anywhere(document) & {"ge", "gt", "le", "lt", "min_length", "max_length"}


def test_bearer_tokens_are_declared_and_the_document_is_public(document, anon_client):
    scheme = document["components"]["securitySchemes"]["bearer"]
    assert (scheme["type"], scheme["scheme"]) == ("http", "bearer")
    assert "X-CSRFToken" in scheme["description"]  # sessions, said in words
    assert document["security"] == [{"bearer": []}]
    assert document["paths"]["/api/v1/openapi.json"]["get"]["security"] == []
    assert anon_client.get("/api/v1/openapi.json").status_code == 200


def test_each_task_has_its_own_request_chosen_by_task(document):
    schemas = document["components"]["schemas"]
    request = schemas["JobRequest"]
    assert request["discriminator"]["propertyName"] == "task"
    mapping = request["discriminator"]["mapping"]
    assert set(mapping) == set(deferrable())
    assert {branch["$ref"] for branch in request["oneOf"]} == set(mapping.values())
    for name, spec in deferrable().items():
        model = schemas[mapping[name].rsplit("/", 1)[1]]
        assert model["properties"]["task"]["const"] == name
        assert model["properties"]["payload"]["$ref"].endswith(f"/{spec.payload.__name__}")
        assert set(model["required"]) == {"task", "payload"}
        assert ("403" in model["description"]) == spec.platform_only
    jobs = schemas["BatchRequest"]["properties"]["jobs"]
    assert (jobs["minItems"], jobs["maxItems"]) == (1, 1000)
    assert jobs["items"]["discriminator"] == request["discriminator"]


SUBSCRIPTIONS = "/api/v1/digest-subscriptions"
SUBSCRIPTION_CHANGE = {400, 401, 403, 404, 413, 500, 503}
# Every status each operation can answer (webapp/errors.py, auth.require_api_access,
# tenancy, the views); 429 nowhere: no API route limits the rate of calls.
STATUSES = {
    ("post", "/api/v1/jobs"): {202, 400, 401, 403, 409, 413, 415, 422, 503},
    ("post", "/api/v1/jobs/batch"): {202, 400, 401, 403, 409, 413, 415, 422, 503},
    ("get", "/api/v1/jobs"): {200, 400, 401, 403, 422, 503},
    ("get", "/api/v1/jobs/{job_id}"): {200, 400, 401, 403, 404, 503},
    ("get", "/api/v1/jobs/{job_id}/attempts"): {200, 400, 401, 403, 404, 503},
    ("post", "/api/v1/jobs/{job_id}/cancel"): {200, 202, 400, 401, 403, 404, 409, 413, 500, 503},
    ("post", "/api/v1/jobs/{job_id}/retry"): {202, 400, 401, 403, 404, 409, 413, 500, 503},
    ("get", SUBSCRIPTIONS): {200, 400, 401, 403, 422, 503},
    ("post", SUBSCRIPTIONS): {201, 415, 422} | SUBSCRIPTION_CHANGE - {404},
    ("get", f"{SUBSCRIPTIONS}/{{subscription_id}}"): {200, 400, 401, 403, 404, 503},
    ("put", f"{SUBSCRIPTIONS}/{{subscription_id}}"): {200, 415, 422} | SUBSCRIPTION_CHANGE,
    ("delete", f"{SUBSCRIPTIONS}/{{subscription_id}}"): {204} | SUBSCRIPTION_CHANGE,
    ("post", f"{SUBSCRIPTIONS}/{{subscription_id}}/send"): {202} | SUBSCRIPTION_CHANGE,
    ("get", "/api/v1/tasks"): {200, 401, 503},
    ("get", "/api/v1/openapi.json"): {200},
    ("get", "/api/admin/status"): {200, 401, 403, 503},
    ("get", "/api/admin/queues/health"): {200, 401, 403, 503},
    ("get", "/api/admin/audit"): {200, 400, 401, 403, 422, 503},
}


# gunicorn's own refusals, which any request may meet before the app sees it.
SERVER_REFUSALS = {400, 414, 417, 431, 501}


def test_every_operation_declares_the_statuses_it_answers(document):
    declared = {
        (method, path): {int(code) for code in operation["responses"]}
        for path, operations in document["paths"].items()
        for method, operation in operations.items()
        if path != "/metrics"
    }
    assert declared == {key: codes | SERVER_REFUSALS for key, codes in STATUSES.items()}
    for (method, path), codes in STATUSES.items():
        responses = document["paths"][path][method]["responses"]
        for code in codes - {200, 201, 202, 204}:
            schema = responses[str(code)]["content"]["application/json"]["schema"]
            assert (
                schema == {"$ref": "#/components/schemas/Error"}
                or {"$ref": "#/components/schemas/Error"} in schema["anyOf"]
            ), (method, path, code)


def test_bounds_in_the_document_are_the_ones_the_server_enforces(make_app, db_url):
    app = make_app(db_url, API_MAX_BODY_BYTES="2048")
    document = app.test_client().get("/api/v1/openapi.json").get_json()
    paths, schemas = document["paths"], document["components"]["schemas"]
    listing = {p["name"]: p["schema"] for p in paths["/api/v1/jobs"]["get"]["parameters"]}
    assert (listing["limit"]["minimum"], listing["limit"]["maximum"]) == (1, 500)
    assert listing["cursor"] == {"type": "integer", "minimum": 1, "maximum": 2**63 - 1}
    assert listing["status"]["enum"] == [status.value for status in procrastinate.jobs.Status]
    assert listing["queue"]["enum"] == [*queues.ALL, queues.HOUSEKEEPING]
    assert listing["task"]["maxLength"] == 200
    *path_and_query, request_id = paths["/api/v1/jobs/{job_id}"]["get"]["parameters"]
    (job_id, _) = path_and_query
    assert request_id["schema"]["pattern"] == "^[A-Za-z0-9._-]{1,128}$"
    assert job_id["schema"] == {"type": "integer", "minimum": 1, "maximum": 2**63 - 1}
    options = schemas["SmsSendNotificationJob"]["properties"]
    assert options["priority"]["anyOf"][0] == {"type": "integer", "minimum": -100, "maximum": 100}
    assert options["queue"]["anyOf"][0]["enum"] == list(queues.ALL)
    assert options["delay_seconds"]["anyOf"][0]["maximum"] == 366 * 86400
    assert options["idempotency_key"]["anyOf"][0]["maxLength"] == 200
    assert "2,048 bytes" in paths["/api/v1/jobs"]["post"]["requestBody"]["description"]


def test_job_documents_are_typed_as_the_server_fills_them(document):
    job = document["components"]["schemas"]["Job"]
    assert set(job["required"]) == set(job["properties"])
    assert job["additionalProperties"] is False
    assert {"type": "null"} in job["properties"]["organization_id"]["anyOf"]
    for name in (
        "retried_from",
        "retried_as",
        "created_at",
        "started_at",
        "last_error",
        "progress",
    ):
        assert {"type": "null"} in job["properties"][name]["anyOf"], name
    assert "anyOf" not in job["properties"]["attempts"]


@pytest.mark.parametrize(
    ("address", "valid"),
    [
        ("ops@example.com", True),
        ("ops@test.example.org", True),
        ("ops@mail.test", False),
        ("ops@MAIL.Test", False),
        ("ops@host.local", False),
        ("ops@in-addr.arpa", False),
        ("ops@x.onion", False),
    ],
)
def test_the_documented_recipient_pattern_agrees_with_the_server(address, valid):
    pattern = DigestPayload.model_json_schema()["properties"]["recipients"]["items"]["pattern"]
    assert (re.search(pattern, address) is not None) == valid
    try:
        DigestPayload(organization_id=1, period="daily", recipients=[address])
    except pydantic.ValidationError:
        assert not valid
    else:
        assert valid


def test_the_status_of_an_unreachable_database_has_the_documented_shape(app, document):
    from webapp.api import admin

    with app.app_context():
        body = json.loads(admin.unreachable().model_dump_json())
    schema = {
        "$ref": "#/components/schemas/PlatformUnavailable",
        "components": document["components"],
    }
    jsonschema.Draft202012Validator(schema).validate(body)
    assert body["workers"] is None and body["database"]["reachable"] is False


def test_metrics_are_documented_as_text_behind_their_own_token(document):
    operation = document["paths"]["/metrics"]["get"]
    assert operation["security"] == [{"metricsToken": []}, {}]
    assert document["components"]["securitySchemes"]["metricsToken"]["scheme"] == "bearer"
    responses = operation["responses"]
    assert set(responses) == {"200", "401", "404", "503"}
    assert list(responses["200"]["content"]) == ["text/plain; version=0.0.4"]
    assert "WWW-Authenticate" in responses["401"]["headers"]
