"""Delivery providers. Until real ones are configured, ``console`` logs and sends nothing."""

import logging

log = logging.getLogger(__name__)


def masked_number(number: str) -> str:
    """A phone number as logs may show it: its last four digits."""
    return "…" + number[-4:]


class ConsoleSms:
    """Notes in the worker's log that an SMS would go out, with no body and only the end
    of the number (logs keep no payloads); no message leaves the machine."""

    name = "console"

    async def send(self, to: str, body: str) -> dict:
        log.info(
            "console SMS provider, not sent: to=%s chars=%d",
            masked_number(to),
            len(body),
            extra={"action": "sms_console"},
        )
        return {"provider": self.name, "sent": False, "to": to, "chars": len(body)}


class ConsoleEmail:
    """Notes in the worker's log that an email would go out, with only the number of
    recipients; no message leaves the machine."""

    name = "console"

    async def send(self, recipients: list[str], subject: str, text: str) -> dict:
        log.info(
            "console email provider, not sent: %d recipient(s), %d characters",
            len(recipients),
            len(text),
            extra={"action": "email_console"},
        )
        return {"provider": self.name, "sent": False, "recipients": len(recipients)}


def sms_provider() -> ConsoleSms:
    """The configured SMS provider (console until a real one is added)."""
    return ConsoleSms()


def email_provider() -> ConsoleEmail:
    """The configured email provider (console until a real one is added)."""
    return ConsoleEmail()
