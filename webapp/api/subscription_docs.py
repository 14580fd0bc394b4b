"""The OpenAPI operations of /api/v1/digest-subscriptions (``webapp.api.subscriptions``)."""

from webapp import subscriptions
from webapp.api import openapi_parts as parts
from webapp.api import subscriptions as views


def paths(max_body: int) -> dict:
    """/api/v1/digest-subscriptions: tenancy as for jobs; a platform caller names the
    organization to create one in."""
    one = {
        "parameters": [
            {"name": "subscription_id", "in": "path", "required": True, "schema": parts.BIGINT},
            parts.ORGANIZATION,
        ],
        "tags": ["digest subscriptions"],
    }
    forbidden = f"Not allowed: {parts.OTHER_ORGANIZATION}"
    change_403 = f"Not allowed: {parts.VIEWER}, or {parts.OTHER_ORGANIZATION}"
    missing = "No such subscription for the caller's organization, or an id outside 1 to 2^63-1"
    body = parts.request_body("DigestSubscriptionFields", "API_MAX_BODY_BYTES", max_body)
    change_errors = {"e400": parts.BODY_400, "e403": change_403, "e404": missing}
    no_body = {
        "e400": parts.CHANGE_400,
        "e403": change_403,
        "e404": missing,
        "e413": parts.FORM_BODY_413,
    }
    page = {"type": "integer", "minimum": 1, "maximum": views.MAX_PAGE}
    return {
        "/api/v1/digest-subscriptions": {
            "get": {
                "operationId": "list_digest_subscriptions",
                "summary": "List digest subscriptions, newest first",
                "tags": ["digest subscriptions"],
                "parameters": [
                    parts.ORGANIZATION,
                    parts.query("limit", {**page, "default": views.DEFAULT_PAGE}, "Page size"),
                    parts.CURSOR,
                ],
                "responses": {
                    "200": parts.json_response(
                        "A page of subscriptions", parts.ref("DigestSubscriptionPage")
                    ),
                    **parts.error_responses(400, 401, 403, 422, 503, e403=forbidden),
                },
            },
            "post": {
                "operationId": "create_digest_subscription",
                "summary": "Subscribe up to"
                f" {subscriptions.MAX_RECIPIENTS} addresses to the organization's digest",
                "description": "A platform caller names the organization with"
                " ?organization_id= (422 without it, or for an organization that does not exist).",
                "tags": ["digest subscriptions"],
                "parameters": [parts.ORGANIZATION],
                "requestBody": body,
                "responses": {
                    "201": parts.json_response(
                        "Created",
                        parts.ref("DigestSubscription"),
                        parts.location("the subscription"),
                    ),
                    **parts.error_responses(
                        400, 401, 403, 413, 415, 422, 500, 503, e400=parts.BODY_400, e403=change_403
                    ),
                },
            },
        },
        "/api/v1/digest-subscriptions/{subscription_id}": {
            "get": {
                "operationId": "get_digest_subscription",
                "summary": "A digest subscription",
                **one,
                "responses": {
                    "200": parts.json_response("The subscription", parts.ref("DigestSubscription")),
                    **parts.error_responses(400, 401, 403, 404, 503, e403=forbidden, e404=missing),
                },
            },
            "put": {
                "operationId": "update_digest_subscription",
                "summary": "Replace a subscription's recipients and schedule",
                "description": "The last period the scheduler sent stays, so a period already"
                " sent is not sent again; the new schedule applies from the next period.",
                **one,
                "requestBody": body,
                "responses": {
                    "200": parts.json_response("Changed", parts.ref("DigestSubscription")),
                    **parts.error_responses(
                        400, 401, 403, 404, 413, 415, 422, 500, 503, **change_errors
                    ),
                },
            },
            "delete": {
                "operationId": "delete_digest_subscription",
                "summary": "Delete a digest subscription",
                **one,
                "responses": {
                    "204": {"description": "Deleted"},
                    **parts.error_responses(400, 401, 403, 404, 413, 500, 503, **no_body),
                },
            },
        },
        "/api/v1/digest-subscriptions/{subscription_id}/send": {
            "post": {
                "operationId": "send_digest_subscription",
                "summary": "Defer one digest for the subscription now, outside its schedule",
                **one,
                "responses": {
                    "202": parts.json_response(
                        "Deferred", parts.ref("Accepted"), parts.location("the job")
                    ),
                    **parts.error_responses(400, 401, 403, 404, 413, 500, 503, **no_body),
                },
            },
        },
    }
