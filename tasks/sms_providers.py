"""SMS providers: ``console`` (the default, for development) logs and sends nothing;
``telnyx`` posts to Telnyx's v2 messages API.

A provider's ``send`` returns ``Accepted`` (the provider's message id and status) or
raises ``ProviderRefused`` (a 4xx that no retry can mend: an invalid or blocked number,
a bad key) or ``ProviderUnavailable`` (429, 5xx, no answer: worth a retry, after the
``retry_after`` the provider asked for, if any).
"""

import datetime
import email.utils
import functools
import logging
import re
import ssl
import uuid
from dataclasses import dataclass
from typing import Protocol

import httpx

from tasks.registry import NotRetryable

log = logging.getLogger(__name__)

ERROR_MESSAGE_LIMIT = 500
# The statuses a message can have in sms_messages once accepted (migration 0024).
KNOWN_STATUSES = {"queued", "sending", "sent", "delivered", "delivery_failed", "sending_failed"}
RETRYABLE_STATUSES = {408, 425, 429}  # and every 5xx


def masked_number(number: str) -> str:
    """A phone number as logs may show it: its last four digits."""
    return "…" + number[-4:]


def mask_numbers(text: str) -> str:
    """``text`` with every run of seven digits or more masked (a provider's error detail
    may quote the number, and job errors reach the worker's log)."""

    def mask(match: re.Match) -> str:
        digits = re.sub(r"\D", "", match[0])
        return masked_number(digits) if len(digits) >= 7 else match[0]

    return re.sub(r"\+?\d[\d ()-]{5,}\d", mask, text)


@dataclass(frozen=True)
class Accepted:
    """The provider took the message: its id there and its first status."""

    message_id: str
    status: str


class ProviderRefused(NotRetryable):
    """The provider refused the message for good; ``code`` and ``message`` are its own."""

    def __init__(self, code: str, message: str):
        super().__init__(f"{code}: {message}")
        self.code, self.message = code, message


class ProviderUnavailable(Exception):
    """The provider could not take the message now; a retry may succeed."""

    def __init__(self, code: str, message: str, retry_after: float | None = None):
        super().__init__(f"{code}: {message}")
        self.code, self.message, self.retry_after = code, message, retry_after


class NoAnswer(NotRetryable):
    """The request left for the provider and no answer came back: the message may have
    gone out, so it is not sent again."""

    def __init__(self, code: str, message: str):
        super().__init__(f"{code}: {message}; it may have been sent, so it is not sent again")
        self.code, self.message = code, message


# httpx's errors that prove the request never reached the provider.
NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


class SmsProvider(Protocol):
    """What the send task needs of a provider."""

    name: str

    async def send(self, to: str, text: str) -> Accepted: ...


class ConsoleSms:
    """Notes in the worker's log that an SMS would go out, with no body and only the end
    of the number (logs keep no payloads); no message leaves the machine."""

    name = "console"

    async def send(self, to: str, text: str) -> Accepted:
        log.info(
            "console SMS provider, not sent: to=%s chars=%d",
            masked_number(to),
            len(text),
            extra={"action": "sms_console"},
        )
        return Accepted(f"console-{uuid.uuid4()}", "logged")


class TelnyxSms:
    """Telnyx's messages API (POST {TELNYX_BASE_URL}/messages).

    A client per send: the worker has no hook to close a client shared across jobs when
    its event loop ends, and an unclosed one leaks its sockets; every send reads the
    settings afresh. The clients share one TLS context, though: loading the CA bundle
    takes about 55 ms of CPU, a client made with a loaded context 0.2 ms, so a send at
    its slot goes out at once instead of after that work.
    """

    name = "telnyx"

    def __init__(self, settings: dict):
        self.settings = settings

    def request_body(self, to: str, text: str) -> dict:
        """The JSON Telnyx expects: to, text, the sender and where receipts go."""
        body = {"to": to, "text": text}
        optional = {
            "from": "TELNYX_FROM",
            "messaging_profile_id": "TELNYX_MESSAGING_PROFILE_ID",
            "webhook_url": "TELNYX_WEBHOOK_URL",
        }
        body.update(
            {field: self.settings[name] for field, name in optional.items() if self.settings[name]}
        )
        return body

    async def send(self, to: str, text: str) -> Accepted:
        settings = self.settings
        headers = {"Authorization": f"Bearer {settings['TELNYX_API_KEY']}"}
        try:
            async with httpx.AsyncClient(
                timeout=settings["TELNYX_TIMEOUT"], verify=tls_context()
            ) as client:
                response = await client.post(
                    f"{settings['TELNYX_BASE_URL']}/messages",
                    json=self.request_body(to, text),
                    headers=headers,
                )
        except NOT_SENT as exc:  # no connection: the request never left
            raise ProviderUnavailable("no_connection", f"{type(exc).__name__}: {exc}") from None
        except httpx.HTTPError as exc:  # it left, and no answer came: sent or not is unknown
            raise NoAnswer("no_answer", f"{type(exc).__name__}: {exc}") from None
        return accepted(response, settings["TELNYX_API_KEY"])


@functools.cache
def tls_context() -> ssl.SSLContext:
    """The TLS context every send shares (an SSLContext may serve many connections)."""
    return httpx.create_ssl_context()  # what httpx would make for each client


def accepted(response: httpx.Response, api_key: str = "") -> Accepted:
    """The acceptance in Telnyx's answer, or the error it stands for (with ``api_key``
    masked, should the answer quote it)."""
    if response.is_success:
        data = json_of(response).get("data")
        data = data if isinstance(data, dict) else {}
        message_id = data.get("id")
        if not isinstance(message_id, str) or not message_id:
            # It may well have been sent: a retry could send it twice, so none follows.
            raise NoAnswer("unreadable_answer", "accepted with no message id")
        return Accepted(message_id[:200], first_status(data))
    code, message = first_error(response, api_key)
    if response.status_code in RETRYABLE_STATUSES or response.status_code >= 500:
        raise ProviderUnavailable(code, message, retry_after_seconds(response.headers))
    raise ProviderRefused(code, message)


def json_of(response: httpx.Response) -> dict:
    """The answer's JSON object, or an empty one."""
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def first_status(data: dict) -> str:
    """The status of the message's (only) recipient, as sms_messages records it."""
    recipients = data.get("to")
    first = recipients[0] if isinstance(recipients, list) and recipients else {}
    status = first.get("status") if isinstance(first, dict) else None
    return status if status in KNOWN_STATUSES else "queued"


def first_error(response: httpx.Response, api_key: str = "") -> tuple[str, str]:
    """The code and the title and detail of the first error in Telnyx's answer. They go
    to the log and to the attempt record its tenant reads: numbers are masked, and the
    API key, should an answer (a proxy's, a misdirected TELNYX_BASE_URL's) quote the
    request's Authorization header."""
    errors = json_of(response).get("errors")
    first = errors[0] if isinstance(errors, list) and errors else {}
    first = first if isinstance(first, dict) else {}
    code = mask_secret(str(first.get("code") or f"http_{response.status_code}"), api_key)[:50]
    parts = [str(first[k]) for k in ("title", "detail") if first.get(k)]
    if len(parts) == 2 and parts[1].startswith(parts[0]):
        parts = parts[1:]  # a detail that repeats its title
    message = ": ".join(parts) or response.reason_phrase or f"HTTP {response.status_code}"
    return code, mask_numbers(mask_secret(message, api_key))[:ERROR_MESSAGE_LIMIT]


def mask_secret(text: str, secret: str) -> str:
    """``text`` with every copy of ``secret`` masked."""
    return text.replace(secret, "***") if secret else text


def retry_after_seconds(headers: httpx.Headers) -> float | None:
    """Retry-After in seconds (it is either seconds or an HTTP date); None if absent or
    unreadable."""
    value = headers.get("retry-after", "").strip()
    if re.fullmatch(r"\d{1,9}(\.\d+)?", value):
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.UTC)  # HTTP dates are GMT
    return max(0.0, (when - datetime.datetime.now(datetime.UTC)).total_seconds())


def sms_provider(settings: dict) -> SmsProvider:
    """The provider ``settings`` (``webapp.config.sms_settings``) name."""
    return TelnyxSms(settings) if settings["SMS_PROVIDER"] == "telnyx" else ConsoleSms()
