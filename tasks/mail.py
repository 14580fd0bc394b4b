"""Email providers: ``console`` (the default, for development) logs and sends nothing."""

import logging

log = logging.getLogger(__name__)


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


def email_provider() -> ConsoleEmail:
    """The configured email provider (console until a real one is added)."""
    return ConsoleEmail()
