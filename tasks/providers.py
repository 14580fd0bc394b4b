"""Delivery providers. Until real ones are configured, ``console`` logs and sends nothing."""

import logging

log = logging.getLogger(__name__)


class ConsoleSms:
    """Writes the SMS to the worker's log; no message leaves the machine."""

    name = "console"

    async def send(self, to: str, body: str) -> dict:
        log.info(
            "console SMS provider, not sent: to=%s chars=%d",
            to,
            len(body),
            extra={"action": "sms_console"},
        )
        return {"provider": self.name, "sent": False, "to": to, "chars": len(body)}


class ConsoleEmail:
    """Writes the email to the worker's log; no message leaves the machine."""

    name = "console"

    async def send(self, recipients: list[str], subject: str, text: str) -> dict:
        log.info(
            "console email provider, not sent: to=%s subject=%r",
            ",".join(recipients),
            subject,
            extra={"action": "email_console"},
        )
        return {"provider": self.name, "sent": False, "recipients": len(recipients)}


def sms_provider() -> ConsoleSms:
    """The configured SMS provider (console until a real one is added)."""
    return ConsoleSms()


def email_provider() -> ConsoleEmail:
    """The configured email provider (console until a real one is added)."""
    return ConsoleEmail()
