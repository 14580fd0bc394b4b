"""GET /api/v1/tasks and the OpenAPI document, checked against the real routes."""

import re

from openapi_spec_validator import validate

from tasks.app import deferrable


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


def api_v1_routes(app) -> set[tuple[str, str]]:
    """(path, method) of every /api/v1 route, in OpenAPI's path syntax."""
    routes = set()
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith("/api/v1/"):
            path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule)
            routes |= {(path, m.lower()) for m in rule.methods - {"HEAD", "OPTIONS"}}
    return routes


def test_openapi_describes_exactly_the_routes_that_exist(app, client):
    document = client.get("/api/v1/openapi.json").get_json()
    described = {(path, method) for path, ops in document["paths"].items() for method in ops}
    assert described == api_v1_routes(app)


def test_openapi_payload_schemas_come_from_the_task_models(client):
    schemas = client.get("/api/v1/openapi.json").get_json()["components"]["schemas"]
    for spec in deferrable().values():
        assert spec.payload.__name__ in schemas
    assert "JobRequest" in schemas and "Error" in schemas
