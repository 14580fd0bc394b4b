"""/api/v1/openapi.json: an OpenAPI 3.1 description of the API, built from the code's models."""

import functools

from pydantic.json_schema import models_json_schema

import tasks.app  # a module reference: tasks and webapp import each other
from webapp.api import bp
from webapp.api.schemas import BatchRequest, JobRequest
from webapp.monitoring import howdah_version

REF = "#/components/schemas/{model}"

NULLABLE_TIME = {"type": ["string", "null"], "format": "date-time"}
JOB = {
    "type": "object",
    "required": ["id", "status", "task", "queue", "attempts", "links"],
    "properties": {
        "id": {"type": "integer"},
        "status": {"enum": ["todo", "doing", "succeeded", "failed", "cancelled", "aborted"]},
        "task": {"type": "string"},
        "queue": {"type": "string"},
        "priority": {"type": "integer"},
        "organization_id": {"type": "integer"},
        "payload": {"type": "object"},
        "attempts": {"type": "integer", "description": "runs started so far"},
        "abort_requested": {"type": "boolean"},
        "created_at": NULLABLE_TIME,
        "scheduled_at": NULLABLE_TIME,
        "started_at": NULLABLE_TIME,
        "finished_at": NULLABLE_TIME,
        "last_error": {
            "oneOf": [
                {"type": "null"},
                {
                    "type": "object",
                    "properties": {"class": {"type": "string"}, "message": {"type": "string"}},
                },
            ]
        },
        "retried_from": {
            "type": ["integer", "null"],
            "description": "the job this one was retried from, as a new job",
        },
        "retried_as": {
            "type": ["integer", "null"],
            "description": "the new job this one was retried as (once only)",
        },
        "links": {"$ref": REF.format(model="Links")},
    },
}
ACCEPTED = {
    "type": "object",
    "required": ["id", "status", "task", "queue", "links"],
    "properties": {
        "id": {"type": "integer"},
        "status": {"const": "todo"},
        "task": {"type": "string"},
        "queue": {"type": "string"},
        "links": {"$ref": REF.format(model="Links")},
    },
}
LINKS = {"type": "object", "additionalProperties": {"type": "string"}}
ERROR = {
    "type": "object",
    "required": ["error", "message"],
    "properties": {
        "error": {"type": "string"},
        "message": {"type": "string"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["field", "message"],
                "properties": {
                    "index": {"type": "integer"},
                    "field": {"type": "string"},
                    "message": {"type": "string"},
                    "type": {"type": "string"},
                },
            },
        },
        "job_id": {"type": ["integer", "null"]},
        "index": {"type": "integer"},
        "status": {"type": "string"},
    },
}
ATTEMPT = {
    "type": "object",
    "properties": {
        "attempt": {"type": "integer"},
        "worker_name": {"type": "string"},
        "outcome": {"enum": ["succeeded", "failed", "aborted", "lost"]},
        "started_at": {"type": "string", "format": "date-time"},
        "finished_at": {"type": "string", "format": "date-time"},
        "duration_seconds": {"type": "number"},
        "error_class": {"type": ["string", "null"]},
        "error_message": {"type": ["string", "null"]},
        "traceback": {
            "type": ["string", "null"],
            "description": "for platform admins; null for an organization's callers",
        },
        "result_summary": {"type": ["string", "null"]},
        "retry_at": {
            **NULLABLE_TIME,
            "description": "when the job runs again after this attempt; null if it does not",
        },
    },
}


def ref(name: str) -> dict:
    return {"$ref": REF.format(model=name)}


def json_response(description: str, schema: dict) -> dict:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def errors(*codes: int) -> dict:
    text = {
        400: "Malformed JSON",
        403: "A viewer's change, another organization's payload, or a platform-only task",
        404: "No such job",
        409: "Conflict with the job's state or an idempotency key",
        413: "Body too large",
        415: "Not JSON",
        422: "Invalid request, with per-field errors",
    }
    return {str(code): json_response(text[code], ref("Error")) for code in codes}


def job_id_parameter() -> dict:
    return {"name": "job_id", "in": "path", "required": True, "schema": {"type": "integer"}}


def query(name: str, schema: dict, description: str) -> dict:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "schema": schema,
        "description": description,
    }


ORGANIZATION = query(
    "organization_id", {"type": "integer", "minimum": 1}, "act for this organization only"
)


def paths() -> dict:
    body = {"required": True, "content": {"application/json": {"schema": ref("JobRequest")}}}
    batch = {"required": True, "content": {"application/json": {"schema": ref("BatchRequest")}}}
    job_ops = {"parameters": [job_id_parameter(), ORGANIZATION]}
    return {
        "/api/v1/jobs": {
            "post": {
                "operationId": "create_job",
                "summary": "Defer a job",
                "requestBody": body,
                "responses": {
                    "202": json_response("Deferred", ref("Accepted")),
                    **errors(400, 403, 409, 413, 415, 422),
                },
            },
            "get": {
                "operationId": "list_jobs",
                "summary": "List jobs, newest first",
                "parameters": [
                    ORGANIZATION,
                    query("status", JOB["properties"]["status"], "only this status"),
                    query("queue", {"type": "string"}, "only this queue"),
                    query("task", {"type": "string"}, "only this task"),
                    query(
                        "limit",
                        {"type": "integer", "minimum": 1, "maximum": 500},
                        "page size (default 50)",
                    ),
                    query("cursor", {"type": "string"}, "next_cursor of the previous page"),
                ],
                "responses": {
                    "200": json_response(
                        "A page of jobs",
                        {
                            "type": "object",
                            "properties": {
                                "jobs": {"type": "array", "items": ref("Job")},
                                "next_cursor": {"type": ["string", "null"]},
                            },
                        },
                    ),
                    **errors(400, 422),
                },
            },
        },
        "/api/v1/jobs/batch": {
            "post": {
                "operationId": "create_jobs_batch",
                "summary": "Defer up to 1,000 jobs, all or nothing",
                "requestBody": batch,
                "responses": {
                    "202": json_response(
                        "Deferred",
                        {
                            "type": "object",
                            "properties": {"jobs": {"type": "array", "items": ref("Accepted")}},
                        },
                    ),
                    **errors(400, 403, 409, 413, 415, 422),
                },
            },
        },
        "/api/v1/jobs/{job_id}": {
            "get": {
                "operationId": "get_job",
                "summary": "A job's state",
                **job_ops,
                "responses": {"200": json_response("The job", ref("Job")), **errors(404)},
            },
        },
        "/api/v1/jobs/{job_id}/attempts": {
            "get": {
                "operationId": "list_job_attempts",
                "summary": "A job's attempts",
                **job_ops,
                "responses": {
                    "200": json_response(
                        "Attempts",
                        {
                            "type": "object",
                            "properties": {"attempts": {"type": "array", "items": ref("Attempt")}},
                        },
                    ),
                    **errors(404),
                },
            },
        },
        "/api/v1/jobs/{job_id}/cancel": {
            "post": {
                "operationId": "cancel_job",
                **job_ops,
                "summary": "Cancel a waiting job, or abort a running one",
                "responses": {
                    "200": json_response("Cancelled", ref("Job")),
                    "202": json_response("Abort requested", ref("Job")),
                    **errors(404, 409),
                },
            },
        },
        "/api/v1/jobs/{job_id}/retry": {
            "post": {
                "operationId": "retry_job",
                **job_ops,
                "summary": "Run a failed, cancelled or aborted job again",
                "responses": {"202": json_response("Queued again", ref("Job")), **errors(404, 409)},
            },
        },
        "/api/v1/tasks": {
            "get": {
                "operationId": "list_tasks",
                "summary": "Tasks a client may defer",
                "responses": {"200": json_response("Tasks", ref("TaskList"))},
            },
        },
        "/api/v1/openapi.json": {
            "get": {
                "operationId": "openapi",
                "summary": "This document",
                "responses": {"200": {"description": "OpenAPI 3.1 document"}},
            },
        },
    }


@functools.cache
def document() -> dict:
    """The whole OpenAPI document (built once per process)."""
    models = [(JobRequest, "validation"), (BatchRequest, "validation")]
    models += [(spec.payload, "validation") for spec in tasks.app.deferrable().values()]
    _, definitions = models_json_schema(models, ref_template=REF)
    schemas = definitions.get("$defs", {})
    schemas.update(
        {"Job": JOB, "Accepted": ACCEPTED, "Links": LINKS, "Error": ERROR, "Attempt": ATTEMPT}
    )
    schemas["TaskList"] = {
        "type": "object",
        "properties": {
            "tasks": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "name": {"enum": sorted(tasks.app.deferrable())},
                        "queue": {"type": "string"},
                        "priority": {"type": "integer"},
                        "time_limit_seconds": {"type": "number"},
                        "retry": {"type": "object"},
                        "payload_schema": {"type": "object"},
                        "description": {"type": "string"},
                    },
                },
            }
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Howdah API",
            "version": howdah_version(),
            "description": "Background jobs on PostgreSQL. Payload schemas per task are "
            "under components.schemas and in GET /api/v1/tasks.",
        },
        "paths": paths(),
        "components": {"schemas": schemas},
    }


@bp.get("/v1/openapi.json")
def openapi():
    """The OpenAPI 3.1 document for /api/v1."""
    return document()
