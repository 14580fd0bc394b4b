"""Telnyx's delivery receipts: ``POST /webhooks/telnyx``.

No sign-in and no CSRF token: a receipt proves itself with Telnyx's Ed25519 signature
over its timestamp and raw body, and names its message by Telnyx's own id. Every
refusal is a 403 with a JSON body and changes nothing.
"""

import base64
import binascii
import datetime
import logging
import time

import pydantic
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from flask import Blueprint, current_app, request
from pydantic import Field
from werkzeug.exceptions import BadRequest, Forbidden, UnprocessableEntity

from tasks import sms_providers
from webapp import db, errors, queue, security
from webapp.store import sms_receipts

log = logging.getLogger(__name__)

bp = Blueprint("webhooks", __name__, url_prefix="/webhooks")

# A receipt is a few kilobytes; Telnyx's headers and signed text, as its SDKs read them.
MAX_BODY_BYTES = 64 * 1024
SIGNATURE_HEADER = "telnyx-signature-ed25519"
TIMESTAMP_HEADER = "telnyx-timestamp"
# Receipts from before this, or later than the clock allows, are refused as malformed:
# a date near either end of PostgreSQL's range would not load back into Python, and one
# far ahead would block every later receipt of its message.
EARLIEST = datetime.datetime(2000, 1, 1, tzinfo=datetime.UTC)
HANDLED_EVENTS = {"message.queued", "message.sent", "message.finalized"}
# Telnyx's status for a recipient, as sms_messages records it. "expired": the carrier
# gave no receipt in time, so the message was not delivered.
TELNYX_STATUSES = ("queued", "sending", "sent", "delivered", "delivery_unconfirmed")
TELNYX_STATUSES += ("sending_failed", "delivery_failed")
STATUSES = {status: status for status in TELNYX_STATUSES} | {"expired": "delivery_failed"}
MAX_ERROR_CODE = 64
MAX_ERROR_MESSAGE = 500


class Model(pydantic.BaseModel):
    """Telnyx sends far more than a receipt needs: the rest is ignored."""

    model_config = pydantic.ConfigDict(extra="ignore")


class Recipient(Model):
    status: str = Field(max_length=64)


class ProviderError(Model):
    code: str | int = Field(union_mode="left_to_right")
    title: str | None = None
    detail: str | None = None

    @pydantic.field_validator("code")
    @classmethod
    def bounded(cls, value: str | int) -> str:
        """The code as text, cut to what the record keeps (a huge number as well)."""
        return str(value)[:MAX_ERROR_CODE]


class Message(Model):
    id: str = Field(min_length=1, max_length=128)
    to: list[Recipient] = Field(min_length=1, max_length=100)
    errors: list[ProviderError] = Field(default_factory=list, max_length=100)


class EventKind(Model):
    event_type: str = Field(max_length=64)


class Event(EventKind):
    occurred_at: pydantic.AwareDatetime
    payload: Message


class Envelope(Model):
    data: EventKind


class Receipt(Model):
    data: Event


def refuse(reason: str):
    """Log why a request is not taken for Telnyx's, and answer 403."""
    log.warning("telnyx webhook refused: %s", reason)
    raise Forbidden(f"The receipt is refused: {reason}.")


def public_key() -> Ed25519PublicKey:
    """The configured key Telnyx signs with."""
    text = current_app.config["TELNYX_PUBLIC_KEY"]
    if not text:
        refuse("this service has no key to check receipts with")
    # webapp.config checked at start that it is the base64 of 32 bytes.
    return Ed25519PublicKey.from_public_bytes(base64.b64decode(text))


def verify_signature(body: bytes) -> None:
    """Refuse a body that Telnyx did not sign, or signed too long ago (or ahead)."""
    key = public_key()
    stamp = request.headers.get(TIMESTAMP_HEADER, "")
    signature = request.headers.get(SIGNATURE_HEADER, "")
    if not stamp or not signature:
        refuse(f"it needs the {SIGNATURE_HEADER} and {TIMESTAMP_HEADER} headers")
    if not (stamp.isascii() and stamp.isdigit() and len(stamp) <= 12):
        refuse(f"{TIMESTAMP_HEADER} is not a time in Unix seconds")
    tolerance = current_app.config["TELNYX_WEBHOOK_TOLERANCE_SECONDS"]
    if abs(time.time() - int(stamp)) > tolerance:
        refuse(f"it was signed more than {tolerance} seconds from now")
    try:
        key.verify(base64.b64decode(signature, validate=True), stamp.encode() + b"|" + body)
    except (binascii.Error, ValueError, InvalidSignature):
        refuse("the signature does not match")


def validate(model: type[Model], document) -> Model:
    """``document`` as ``model``, or a 422 that names the fields at fault."""
    try:
        return model.model_validate(document)
    except pydantic.ValidationError as exc:
        errors.api_error(422, "The receipt is malformed.", errors=queue.field_errors(exc))


def parse_receipt(body: bytes) -> Receipt | None:
    """The message event in ``body``; None for an event of another kind."""
    try:
        document = current_app.json.loads(body)
    except ValueError:  # not UTF-8, not JSON, or nested too deeply
        raise BadRequest("The receipt is not JSON.") from None
    if validate(Envelope, document).data.event_type not in HANDLED_EVENTS:
        return None
    receipt = validate(Receipt, document)
    latest = datetime.datetime.now(datetime.UTC) + datetime.timedelta(
        seconds=current_app.config["TELNYX_WEBHOOK_TOLERANCE_SECONDS"]
    )
    if not EARLIEST <= receipt.data.occurred_at <= latest:
        raise UnprocessableEntity("The receipt's occurred_at is not a plausible time.")
    return receipt


def provider_error(message: Message) -> tuple[str | None, str | None]:
    """The first error Telnyx gives for the message: its code and its words."""
    if not message.errors:
        return None, None
    first = message.errors[0]
    words = ": ".join(part for part in (first.title, first.detail) if part)
    # Numbers in the provider's words are cut to their last digits, as the sender's are.
    return first.code, sms_providers.mask_numbers(words)[:MAX_ERROR_MESSAGE] or None


@bp.post("/telnyx")
def telnyx_receipt():
    """Record the delivery status a signed Telnyx message event reports."""
    body = security.read_body(MAX_BODY_BYTES)
    verify_signature(body)
    receipt = parse_receipt(body)
    if receipt is None:
        log.info("telnyx webhook ignored: not a message status event")
        return {"result": "ignored", "reason": "not a message status event"}
    event = receipt.data
    status = STATUSES.get(event.payload.to[0].status)
    if status is None:
        log.info("telnyx receipt for %s ignored: unknown status", event.payload.id)
        return {"result": "ignored", "reason": "unknown status"}
    code, words = provider_error(event.payload)
    row = sms_receipts.apply_receipt(
        db.get_conn(), event.payload.id, status, event.occurred_at, code, words
    )
    if row is None:
        log.info("telnyx receipt for %s ignored: no such message", event.payload.id)
        return {"result": "ignored", "reason": "no message has this id"}
    result = "updated" if row["applied"] else "unchanged"
    log.info(
        "telnyx receipt %s for %s (job %s): %s, %s",
        event.event_type,
        event.payload.id,
        row["job_id"],
        status,
        result,
    )
    return {"result": result, "status": status if row["applied"] else row["previous_status"]}
