"""/api/v1/digest-subscriptions: an organization's email digest subscriptions.

Tenancy as for jobs (``tenancy``): a caller acts for its own organization, a platform
caller for every organization, and names one with ``?organization_id=`` to create a
subscription. Another organization's subscription is not found (404).
"""

import psycopg
import pydantic
from flask import current_app

from webapp import db
from webapp import subscriptions as domain
from webapp.api import bp, params, tenancy
from webapp.api.documents import (
    Accepted,
    DigestSubscription,
    DigestSubscriptionPage,
    job_path,
    page_cursor,
    respond,
    subscription_path,
)
from webapp.api.jobs import json_object
from webapp.errors import api_error
from webapp.queue import field_errors
from webapp.store import subscriptions as store

DEFAULT_PAGE, MAX_PAGE = 50, 500


def parse_fields() -> domain.DigestSubscriptionFields:
    """The request's subscription, validated; 422 with errors by field otherwise."""
    try:
        return domain.DigestSubscriptionFields.model_validate(json_object("API_MAX_BODY_BYTES"))
    except pydantic.ValidationError as exc:
        api_error(422, "the subscription is invalid", errors=field_errors(exc))


def get_subscription_or_404(subscription_id: int) -> dict:
    """The subscription, if it belongs to the acting organization; 404 otherwise."""
    row = store.get_subscription(db.get_conn(), subscription_id, tenancy.acting_organization())
    if row is None:
        api_error(404, f"no digest subscription {subscription_id}")
    return row


@bp.get("/v1/digest-subscriptions")
def list_digest_subscriptions():
    """Subscriptions newest first, with keyset pagination."""
    limit = params.int_arg("limit", DEFAULT_PAGE, 1, MAX_PAGE)
    rows = store.list_subscriptions(
        db.get_conn(),
        tenancy.acting_organization(),
        limit + 1,
        params.int_arg("cursor", None, 1, params.BIGINT_MAX),
    )
    page = [DigestSubscription.from_row(row) for row in rows[:limit]]
    return respond(
        DigestSubscriptionPage.model_construct(
            subscriptions=page, next_cursor=page_cursor(rows, limit)
        )
    )


@bp.post("/v1/digest-subscriptions")
def create_digest_subscription():
    """Subscribe addresses to the organization's digest: 201 with the subscription."""
    organization_id = tenancy.acting_organization()
    fields = parse_fields()
    if organization_id is None:
        api_error(422, "a platform caller names the organization with ?organization_id=")
    try:
        row = domain.create(db.get_conn(), organization_id, fields)
    except psycopg.errors.ForeignKeyViolation:
        api_error(422, f"no organization {organization_id}")
    return respond(
        DigestSubscription.from_row(row), 201, {"Location": subscription_path(row["id"])}
    )


@bp.get("/v1/digest-subscriptions/<id:subscription_id>")
def get_digest_subscription(subscription_id: int):
    """One subscription."""
    return respond(DigestSubscription.from_row(get_subscription_or_404(subscription_id)))


@bp.put("/v1/digest-subscriptions/<id:subscription_id>")
def update_digest_subscription(subscription_id: int):
    """Replace a subscription's recipients and schedule; the last period sent stays."""
    subscription = get_subscription_or_404(subscription_id)
    fields = parse_fields()
    row = domain.update(db.get_conn(), subscription, tenancy.acting_organization(), fields)
    if row is None:  # deleted since it was read
        api_error(404, f"no digest subscription {subscription_id}")
    return respond(DigestSubscription.from_row(row))


@bp.delete("/v1/digest-subscriptions/<id:subscription_id>")
def delete_digest_subscription(subscription_id: int):
    """Delete a subscription: 204."""
    if domain.delete(db.get_conn(), subscription_id, tenancy.acting_organization()) is None:
        api_error(404, f"no digest subscription {subscription_id}")
    return current_app.response_class(status=204)


@bp.post("/v1/digest-subscriptions/<id:subscription_id>/send")
def send_digest_subscription(subscription_id: int):
    """Defer one digest for the subscription now: 202 with the job, as POST /jobs answers."""
    subscription = get_subscription_or_404(subscription_id)
    job = domain.send_now(db.get_conn(), subscription, tenancy.is_platform())
    return respond(Accepted.from_job(job), 202, {"Location": job_path(job.id)})
