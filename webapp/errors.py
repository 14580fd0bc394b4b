"""One error renderer: JSON under /api and /webhooks, an HTML page everywhere else."""

import logging
from typing import Annotated, Any, Literal, NoReturn

import procrastinate
import psycopg
from flask import Flask, current_app, g, render_template, request
from flask_login import current_user
from gunicorn.http.errors import ParseException
from jinja2 import TemplateNotFound
from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import SkipJsonSchema
from werkzeug.exceptions import (
    BadRequest,
    HTTPException,
    InternalServerError,
    ServiceUnavailable,
    UnprocessableEntity,
    default_exceptions,
)

from webapp import audit, db, monitoring

log = logging.getLogger(__name__)

JobStatus = Literal[monitoring.JOB_STATUSES]


def _no_default(schema: dict) -> None:
    schema.pop("default", None)


def omittable(annotation, description: str):
    """A key that is absent unless it applies (never null): how the error body's details
    are typed, serialised with ``exclude_unset``."""
    field = Field(description=description, json_schema_extra=_no_default)
    return Annotated[annotation | SkipJsonSchema[None], field]


class FieldError(BaseModel):
    """One reason a request is invalid."""

    model_config = ConfigDict(extra="forbid")

    index: omittable(int, "The job it concerns: its place in a batch (0 for a single job)") = None
    field: str = Field(description="Dotted path of the field (body: the whole body)")
    message: str
    type: str = Field(description="pydantic's error type, or Howdah's (unknown_task, ...)")


class Error(BaseModel):
    """Every error under /api: the status's name and a message, with details for some."""

    model_config = ConfigDict(extra="forbid")

    error: str = Field(description="The HTTP status's name, e.g. Not Found")
    message: str
    errors: omittable(list[FieldError], "422: what is wrong, field by field") = None
    job_id: omittable(
        int | None,
        "409 on an idempotency key: the job waiting with it (null if it has just left)",
    ) = None
    index: omittable(
        int,
        "403 or 409: the job refused, by its place in a batch (0 for a single job);"
        " absent when the refusal is about the request as a whole",
    ) = None
    status: omittable(JobStatus, "409 on a job: its status") = None
    retried_as: omittable(
        int, "409 on retrying a job retried before: the new job it was retried as"
    ) = None


def api_error(code: int, message: str, **extra: Any) -> NoReturn:
    """Stop the request with an HTTP error whose JSON body carries ``extra`` fields too."""
    error = default_exceptions[code](message)
    error.extra = extra
    raise error


# Paths for programs, which answer JSON whatever the client accepts (gunicorn's worker
# reads this too).
JSON_PREFIXES = ("/api", "/webhooks")


def json_path(path: str) -> bool:
    """Whether ``path`` is one of the programs' paths."""
    return any(path == prefix or path.startswith(f"{prefix}/") for prefix in JSON_PREFIXES)


def wants_json() -> bool:
    """The API and the webhooks always answer JSON, whatever the client accepts."""
    return json_path(request.path)


def json_body(error: HTTPException) -> dict:
    """The JSON shape of every API error: the status name, a message and any extra fields
    (gunicorn's worker answers in it too, in webapp/gunicorn_worker.py)."""
    return {"error": error.name, "message": error.description, **getattr(error, "extra", {})}


def render_error(error: HTTPException):
    """Render an HTTP error as JSON ``{error, message}`` or as ``errors/<code>.html``."""
    g.rendering_error = True  # pages' own context values (which read the database) stay out
    response = error.get_response()
    if wants_json():
        response.data = Error.model_validate(json_body(error)).model_dump_json(exclude_unset=True)
        response.content_type = "application/json"
        return response
    known_caller()
    try:
        body = render_template(f"errors/{error.code}.html", error=error)
    except TemplateNotFound:
        body = render_template("errors/error.html", error=error)
    return body, error.code, response.headers


def known_caller() -> None:
    """Find out who is calling before an error page shows it, and take them for anonymous
    when that needs a database that is not there: the page must not fail in turn."""
    if "_login_user" in g:  # where flask-login keeps the request's caller, once known
        return
    if not g.get("database_unavailable"):  # trying again would wait for the pool again
        try:
            current_user._get_current_object()
            return
        except db.UNAVAILABLE_ERRORS:
            pass
    g._login_user = current_app.login_manager.anonymous_user()


def malformed_body(exc: ParseException):
    """A body gunicorn could not read as the app read it (a malformed chunk): a 400."""
    log.info("malformed request body: %s", exc, extra={"action": "malformed_body"})
    return render_error(BadRequest("The request body is malformed."))


def database_reason(exc: psycopg.Error) -> str:
    """PostgreSQL's one-line reason for refusing a statement (psycopg's own, if none)."""
    return exc.diag.message_primary or str(exc).partition("\n")[0]


def unstorable_value(exc: psycopg.DataError):
    """A value PostgreSQL refuses (a NUL character, a number out of range), named as
    PostgreSQL names it."""
    log.info("rejected a value the database cannot store: %s", exc, extra={"action": "data"})
    return render_error(
        UnprocessableEntity(f"The database refused a value: {database_reason(exc)}.")
    )


def statement_timeout(exc: psycopg.errors.QueryCanceled):
    """A statement stopped by DB_STATEMENT_TIMEOUT_MS: the database is there, but slow."""
    log.warning("statement cancelled: %s", exc, extra={"action": "db_timeout"})
    limit = current_app.config["DB_STATEMENT_TIMEOUT_MS"]
    return render_error(
        ServiceUnavailable(
            f"The database did not answer within the {limit} ms this service allows a"
            " statement (it may be busy or locked); try again shortly."
        )
    )


def lock_timeout(exc: psycopg.errors.LockNotAvailable):
    """A lock not granted within DB_LOCK_TIMEOUT_MS: another transaction holds it."""
    log.warning("lock not granted: %s", exc, extra={"action": "db_lock_timeout"})
    limit = current_app.config["DB_LOCK_TIMEOUT_MS"]
    return render_error(
        ServiceUnavailable(
            f"The database did not grant a lock within the {limit} ms this service allows"
            " (DB_LOCK_TIMEOUT_MS): another transaction holds it; try again shortly."
        )
    )


def connector_error(exc: Exception):
    """Procrastinate wraps database errors; an outage among them is a 503 as well."""
    if isinstance(exc.__cause__, psycopg.errors.QueryCanceled):
        return statement_timeout(exc.__cause__)
    if isinstance(exc.__cause__, psycopg.errors.LockNotAvailable):
        return lock_timeout(exc.__cause__)
    if isinstance(exc.__cause__, db.UNAVAILABLE_ERRORS):
        return database_unavailable(exc.__cause__)
    if isinstance(exc.__cause__, psycopg.DataError):
        return unstorable_value(exc.__cause__)
    return unexpected_error(exc)


def database_unavailable(exc: Exception):
    """A database outage is a 503, never a traceback."""
    log.warning("database unavailable: %s", exc, extra={"action": "db_unavailable"})
    g.database_unavailable = True
    return render_error(ServiceUnavailable("The database is unavailable; try again shortly."))


def schema_missing(exc: Exception):
    """A table that is not there yet means migrations have not run: 503, with the fix."""
    log.error("database schema missing: %s", exc, extra={"action": "schema_missing"})
    message = "The database schema is not installed; run `flask --app webapp migrate`."
    return render_error(ServiceUnavailable(message))


def audit_failed(exc: Exception):
    """A change whose audit entry could not be written was rolled back: say so."""
    log.error("%s; the change was rolled back", exc, exc_info=exc, extra={"action": "audit"})
    return render_error(
        InternalServerError(
            "The change could not be recorded in the audit log, so it was not made."
        )
    )


def unexpected_error(exc: Exception):
    """Log the traceback, hide it from the client."""
    if isinstance(exc, HTTPException):
        return render_error(exc)
    log.exception("unhandled error on %s %s", request.method, request.path)
    return render_error(InternalServerError())


def init_app(app: Flask) -> None:
    """Register the handlers."""
    app.register_error_handler(HTTPException, render_error)
    for error_class in db.UNAVAILABLE_ERRORS:
        app.register_error_handler(error_class, database_unavailable)
    app.register_error_handler(psycopg.errors.QueryCanceled, statement_timeout)
    app.register_error_handler(psycopg.errors.LockNotAvailable, lock_timeout)
    app.register_error_handler(psycopg.errors.UndefinedTable, schema_missing)
    app.register_error_handler(psycopg.DataError, unstorable_value)
    app.register_error_handler(ParseException, malformed_body)
    app.register_error_handler(procrastinate.exceptions.ConnectorException, connector_error)
    app.register_error_handler(audit.AuditFailed, audit_failed)
    app.register_error_handler(Exception, unexpected_error)
