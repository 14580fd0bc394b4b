"""/api/v1/openapi.json: an OpenAPI 3.1 description of the API, built from the models the
views validate requests with (``schemas``) and serialise answers through (``documents``).

Each operation lists every status it can answer; the status texts
(``openapi_parts``) say when.
"""

import functools

from flask import current_app
from pydantic.json_schema import models_json_schema

from webapp import errors, logs, metrics, monitoring, subscriptions
from webapp.api import bp, documents, jobs, schemas, subscription_docs
from webapp.api.openapi_parts import (
    BIGINT,
    BODY_400,
    CHANGE_400,
    CURSOR,
    FORM_BODY_413,
    NOT_PLATFORM,
    ORGANIZATION,
    OTHER_ORGANIZATION,
    PLATFORM_TASK,
    REF,
    TEXT,
    VIEWER,
    error_responses,
    json_response,
    location,
    query,
    ref,
    request_body,
)
from webapp.monitoring import howdah_version

JOB_ID = {"name": "job_id", "in": "path", "required": True, "schema": BIGINT}
LIMIT = {"type": "integer", "minimum": 1, "maximum": jobs.MAX_PAGE, "default": jobs.DEFAULT_PAGE}


def job_paths(max_body: int, max_batch_body: int) -> dict:
    job_ops = {"parameters": [JOB_ID, ORGANIZATION], "tags": ["jobs"]}
    defer_403 = (
        f"Not allowed: {VIEWER}, {PLATFORM_TASK}, a payload naming another organization,"
        f" or {OTHER_ORGANIZATION}"
    )
    return {
        "/api/v1/jobs": {
            "post": {
                "operationId": "create_job",
                "summary": "Defer a job",
                "tags": ["jobs"],
                "parameters": [ORGANIZATION],
                "requestBody": request_body("JobRequest", "API_MAX_BODY_BYTES", max_body),
                "responses": {
                    "202": json_response("Deferred", ref("Accepted"), location("the job")),
                    **error_responses(
                        400, 401, 403, 409, 413, 415, 422, 503, e400=BODY_400, e403=defer_403
                    ),
                },
            },
            "get": {
                "operationId": "list_jobs",
                "summary": "List jobs, newest first",
                "description": "Jobs of the housekeeping queue are left out unless it is named.",
                "tags": ["jobs"],
                "parameters": [
                    ORGANIZATION,
                    query("status", {"enum": list(monitoring.JOB_STATUSES)}, "Only this status"),
                    query("queue", {"enum": list(jobs.LISTED_QUEUES)}, "Only this queue"),
                    query("task", TEXT, "Only this task"),
                    query("limit", LIMIT, "Page size"),
                    CURSOR,
                ],
                "responses": {
                    "200": json_response("A page of jobs", ref("JobPage")),
                    **error_responses(
                        400, 401, 403, 422, 503, e403=f"Not allowed: {OTHER_ORGANIZATION}"
                    ),
                },
            },
        },
        "/api/v1/jobs/batch": {
            "post": {
                "operationId": "create_jobs_batch",
                "summary": f"Defer up to {schemas.MAX_BATCH:,} jobs, all or none",
                "description": "Errors name the index of each item at fault.",
                "tags": ["jobs"],
                "parameters": [ORGANIZATION],
                "requestBody": request_body(
                    "BatchRequest", "API_BATCH_MAX_BODY_BYTES", max_batch_body
                ),
                "responses": {
                    "202": json_response("Deferred", ref("BatchAccepted")),
                    **error_responses(
                        400, 401, 403, 409, 413, 415, 422, 503, e400=BODY_400, e403=defer_403
                    ),
                },
            },
        },
        "/api/v1/jobs/{job_id}": {
            "get": {
                "operationId": "get_job",
                "summary": "A job's state, times, attempts and last error",
                **job_ops,
                "responses": {
                    "200": json_response("The job", ref("Job")),
                    **error_responses(
                        400, 401, 403, 404, 503, e403=f"Not allowed: {OTHER_ORGANIZATION}"
                    ),
                },
            },
        },
        "/api/v1/jobs/{job_id}/attempts": {
            "get": {
                "operationId": "list_job_attempts",
                "summary": "A job's recorded attempts; tracebacks for platform callers only",
                **job_ops,
                "responses": {
                    "200": json_response("Attempts, first to last", ref("AttemptList")),
                    **error_responses(
                        400, 401, 403, 404, 503, e403=f"Not allowed: {OTHER_ORGANIZATION}"
                    ),
                },
            },
        },
        "/api/v1/jobs/{job_id}/cancel": {
            "post": {
                "operationId": "cancel_job",
                "summary": "Cancel a waiting job, or ask a running one to abort",
                **job_ops,
                "responses": {
                    "200": json_response("Cancelled", ref("Job")),
                    "202": json_response("Abort requested", ref("Job")),
                    **error_responses(
                        400,
                        401,
                        403,
                        404,
                        409,
                        413,
                        500,
                        503,
                        e400=CHANGE_400,
                        e403=f"Not allowed: {VIEWER}, or {OTHER_ORGANIZATION}",
                        e409="The job has finished",
                        e413=FORM_BODY_413,
                    ),
                },
            },
        },
        "/api/v1/jobs/{job_id}/retry": {
            "post": {
                "operationId": "retry_job",
                "summary": "Run a failed, cancelled or aborted job again",
                "description": "A failed job goes back to its queue under its own id; a"
                " cancelled or aborted one is deferred again as a new job, once: the new"
                " job's retried_from names the old one, and the old one's retried_as the"
                " new one.",
                **job_ops,
                "responses": {
                    "202": json_response(
                        "Queued again", ref("Job"), location("the job that will run")
                    ),
                    **error_responses(
                        400,
                        401,
                        403,
                        404,
                        409,
                        413,
                        500,
                        503,
                        e400=CHANGE_400,
                        e403=f"Not allowed: {VIEWER}, {PLATFORM_TASK}, or {OTHER_ORGANIZATION}",
                        e409="The job did not fail; or it was retried as a new job before"
                        " (retried_as names it: retry that one); or a job with its"
                        " idempotency key waits",
                        e413=FORM_BODY_413,
                    ),
                },
            },
        },
    }


def other_paths() -> dict:
    platform = {"tags": ["platform"], "description": "For platform admins and platform tokens."}
    return {
        "/api/v1/tasks": {
            "get": {
                "operationId": "list_tasks",
                "summary": "Tasks the caller may defer, with the JSON Schema of their payload",
                "tags": ["tasks"],
                "responses": {
                    "200": json_response("Tasks", ref("TaskList")),
                    **error_responses(401, 503),
                },
            },
        },
        "/api/v1/openapi.json": {
            "get": {
                "operationId": "openapi",
                "summary": "This document",
                "tags": ["meta"],
                "security": [],
                "responses": {"200": json_response("OpenAPI 3.1", {"type": "object"})},
            },
        },
        "/api/admin/status": {
            "get": {
                "operationId": "get_status",
                "summary": "Database, workers and versions",
                **platform,
                "responses": {
                    "200": json_response("Status", ref("PlatformStatus")),
                    **error_responses(401, 403, e403=f"Not allowed: {NOT_PLATFORM}"),
                    "503": json_response(
                        "The database is unreachable (the status says so), or did not"
                        " answer in time",
                        {"anyOf": [ref("PlatformUnavailable"), ref("Error")]},
                    ),
                },
            },
        },
        "/api/admin/queues/health": {
            "get": {
                "operationId": "get_queues_health",
                "summary": "Per-queue counts and the oldest waiting job",
                **platform,
                "responses": {
                    "200": json_response("Every queue is healthy", ref("QueueHealth")),
                    **error_responses(401, 403, e403=f"Not allowed: {NOT_PLATFORM}"),
                    "503": json_response(
                        "A queue's oldest job waited too long, or the database is unavailable",
                        {"anyOf": [ref("QueueHealth"), ref("Error")]},
                    ),
                },
            },
        },
        "/api/admin/audit": {
            "get": {
                "operationId": "list_audit_entries",
                "summary": "The audit log, newest first",
                **platform,
                "parameters": [
                    query("organization_id", BIGINT, "Only this organization's entries"),
                    query("action", TEXT, "Only this action, e.g. job.cancel"),
                    query("limit", LIMIT, "Page size"),
                    CURSOR,
                ],
                "responses": {
                    "200": json_response("A page of entries", ref("AuditPage")),
                    **error_responses(400, 401, 403, 422, 503, e403=f"Not allowed: {NOT_PLATFORM}"),
                },
            },
        },
    }


def text_response(description: str, media_type: str = "text/plain") -> dict:
    return {"description": description, "content": {media_type: {"schema": {"type": "string"}}}}


def metrics_paths() -> dict:
    """GET /metrics: for operators' scrapers, outside /api; its answers are text, as are
    the refusals gunicorn answers for it (unless the client accepts only JSON)."""
    challenge = {"WWW-Authenticate": {"description": "Bearer", "schema": {"type": "string"}}}
    return {
        metrics.PATH: {
            "get": {
                "operationId": "get_metrics",
                "summary": "Jobs, attempts, workers and SMS in Prometheus' text format",
                "description": "Let in from METRICS_ALLOW_FROM without a token, or anywhere"
                " with METRICS_TOKEN as a bearer token; a request with an Authorization"
                " header is judged by its token alone.",
                "tags": ["meta"],
                "security": [{"metricsToken": []}, {}],
                "responses": {
                    "200": text_response(
                        "The metrics", metrics.CONTENT_TYPE.partition(";")[0] + "; version=0.0.4"
                    ),
                    "401": {**text_response("No token or a wrong one"), "headers": challenge},
                    "404": text_response(
                        "Not on the allow-list, and no METRICS_TOKEN is set", "text/html"
                    ),
                    "503": text_response("The database is unavailable"),
                },
            },
        }
    }


def component_schemas() -> dict:
    """Every model's JSON Schema: requests as they validate, answers as they serialise."""
    requests = [
        (model, "validation")
        for model in (*schemas.task_requests(), subscriptions.DigestSubscriptionFields)
    ]
    answers = [(model, "serialization") for model in (*documents.RESPONSES, errors.Error)]
    _, definitions = models_json_schema(requests + answers, ref_template=REF)
    return dict(sorted(definitions["$defs"].items()))


SECURITY = {
    "bearer": {
        "type": "http",
        "scheme": "bearer",
        "description": "An API token (hwd_...) from `flask tokens create`: it acts for its"
        " organization as an operator; a platform token (`--platform`) acts for every"
        " organization. A browser signed in to the site may call the API with its session"
        " cookie instead, and must send the page's CSRF token as X-CSRFToken with a change"
        " (400 without it).",
    },
    "metricsToken": {
        "type": "http",
        "scheme": "bearer",
        "description": "METRICS_TOKEN, for GET /metrics only.",
    },
}


# What gunicorn refuses before the app sees a request, on any path.
SERVER_REFUSALS = (414, 417, 431, 501)
MALFORMED = "a request gunicorn cannot parse (a malformed header, a bad chunked body)"


def with_server_refusals(paths: dict) -> dict:
    """Every operation may also meet the refusals gunicorn answers before the app sees the
    request (in the same error shape: webapp/gunicorn_worker.py)."""
    for operations in paths.values():
        for operation in operations.values():
            responses = operation["responses"]
            if "400" in responses:
                responses["400"]["description"] += f"; or, {MALFORMED}"
            else:
                responses.update(error_responses(400, e400=MALFORMED.capitalize()))
            responses.update(error_responses(*SERVER_REFUSALS))
    return paths


REQUEST_ID_SCHEMA = {"type": "string", "pattern": logs.REQUEST_ID.pattern.join("^$")}
REQUEST_ID_PARAMETER = {
    "name": logs.REQUEST_ID_HEADER,
    "in": "header",
    "required": False,
    "description": "An id for this request, echoed in the answer and on its log lines; one"
    f" that is longer than {logs.REQUEST_ID_MAX} characters or holds others than letters,"
    " digits, '.', '_' and '-' is replaced by a new one",
    "schema": REQUEST_ID_SCHEMA,
}
REQUEST_ID_RESPONSE_HEADER = {
    "description": "The request's id: the one it sent, or a new one",
    "schema": REQUEST_ID_SCHEMA,
    "required": True,
}


def with_request_ids(paths: dict) -> dict:
    """Every operation takes an optional request id and every answer carries one
    (webapp/logs.py, and gunicorn's refusals in webapp/gunicorn_worker.py)."""
    for operations in paths.values():
        for operation in operations.values():
            # A new list: operations may share one.
            operation["parameters"] = [*operation.get("parameters", []), REQUEST_ID_PARAMETER]
            for response in operation["responses"].values():
                response.setdefault("headers", {})[logs.REQUEST_ID_HEADER] = (
                    REQUEST_ID_RESPONSE_HEADER
                )
    return paths


@functools.cache
def document(max_body: int, max_batch_body: int) -> dict:
    """The whole OpenAPI document (built once per process and body limits)."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Howdah API",
            "version": howdah_version(),
            "description": "Background jobs on PostgreSQL. Every job belongs to the"
            " organization named by its payload's organization_id. Errors are JSON"
            " {error, message}, with errors by field on 422. No route of this API limits"
            " the rate of calls.",
        },
        "security": [{"bearer": []}],
        "paths": with_request_ids(
            with_server_refusals(
                {
                    **job_paths(max_body, max_batch_body),
                    **subscription_docs.paths(max_body),
                    **other_paths(),
                }
            )
            | metrics_paths()
        ),
        "components": {"schemas": component_schemas(), "securitySchemes": SECURITY},
    }


@bp.get("/v1/openapi.json")
def openapi():
    """The OpenAPI 3.1 document for /api (public)."""
    config = current_app.config
    return document(config["API_MAX_BODY_BYTES"], config["API_BATCH_MAX_BODY_BYTES"])
