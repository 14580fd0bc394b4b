"""SMS providers: ``console`` (the default, for development) logs and sends nothing."""

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


def sms_provider() -> ConsoleSms:
    """The configured SMS provider (console until a real one is added)."""
    return ConsoleSms()
