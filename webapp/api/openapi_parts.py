"""The pieces every operation of the OpenAPI document is built from: references, the
error responses with the texts saying when each status happens, and shared parameters."""

from tasks.payloads import NO_NUL
from webapp.api import params, schemas

REF = "#/components/schemas/{model}"
JSON = "application/json"
BIGINT = {"type": "integer", **params.ID_BOUNDS}
TEXT = {"type": "string", "maxLength": schemas.MAX_TEXT, "pattern": NO_NUL}

# When each error status happens; an operation may add its own cases.
STATUS_TEXT = {
    400: "An ?organization_id= that is not a whole number from 1 to 2^63-1",
    401: "No credentials, or an API token that is unknown, revoked or expired",
    403: "Not allowed",
    404: "No such job for the caller's organization (another organization's job is not"
    " found either), or a job id outside 1 to 2^63-1",
    409: "The job's state or an idempotency key forbids it",
    413: "The body is over the limit",
    415: "The body is not JSON (Content-Type: application/json)",
    422: "Invalid request; errors name each field",
    417: "An Expect header other than 100-continue",
    414: "The request line is longer than the server reads (gunicorn's limit_request_line)",
    431: "Too many header fields, or one too long (gunicorn's limit_request_fields and"
    " limit_request_field_size)",
    500: "The change could not be recorded in the audit log, so it was not made",
    501: "A transfer coding other than chunked",
    503: "The database is unavailable, has no schema yet, did not answer a statement"
    " within DB_STATEMENT_TIMEOUT_MS, or held a lock longer than DB_LOCK_TIMEOUT_MS; try"
    " again shortly",
}
VIEWER = "a viewer's change"
PLATFORM_TASK = "a task for platform callers only"
OTHER_ORGANIZATION = "an ?organization_id= other than the caller's own organization"
NOT_PLATFORM = "a caller that is not a platform admin or a platform token"
CSRF = "for a browser session, a change without its CSRF token (X-CSRFToken)"
FORM_BODY_413 = (
    "A browser session's form body over the form limits (64 KiB, 16 KiB a field,"
    " 32 parts), read for its CSRF token"
)
CHANGE_400 = f"{STATUS_TEXT[400]}; or, {CSRF}"
BODY_400 = (
    "Malformed JSON (or nested deeper than the server parses); an ?organization_id= that"
    f" is not a whole number from 1 to 2^63-1; or, {CSRF}"
)


def ref(name: str) -> dict:
    return {"$ref": REF.format(model=name)}


def json_response(description: str, schema: dict, headers: dict | None = None) -> dict:
    response = {"description": description, "content": {JSON: {"schema": schema}}}
    if headers:
        response["headers"] = headers
    return response


def location(what: str) -> dict:
    return {"Location": {"description": f"The path of {what}", "schema": {"type": "string"}}}


def error_responses(*codes: int, **texts: str) -> dict:
    """Error responses with the Error body; ``texts`` (``e403=...``) say an operation's own
    reasons for a status."""
    responses = {}
    for code in codes:
        text = texts.get(f"e{code}", STATUS_TEXT[code])
        responses[str(code)] = json_response(text, ref("Error"))
    if 401 in codes:
        challenge = {"description": "Bearer, with error=invalid_token for a bad token"}
        responses["401"]["headers"] = {
            "WWW-Authenticate": {**challenge, "schema": {"type": "string"}}
        }
    return responses


def query(name: str, schema: dict, description: str) -> dict:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "schema": schema,
        "description": description,
    }


ORGANIZATION = query(
    "organization_id",
    BIGINT,
    "Act for this organization only: a platform caller's filter; an organization's caller"
    " may name only its own (403 otherwise)",
)
CURSOR = query("cursor", BIGINT, "next_cursor of the previous page")


def request_body(name: str, limit_setting: str, limit: int) -> dict:
    return {
        "required": True,
        "description": f"JSON of at most {limit:,} bytes ({limit_setting}); 413 beyond",
        "content": {JSON: {"schema": ref(name)}},
    }
