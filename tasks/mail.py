"""Email: compose a message, and send it through the configured provider.

``console`` (the default, for development) logs that a message would go out and sends
nothing. ``smtp`` sends with smtplib, in a thread (smtplib blocks), over one connection
per job: ``async with email_provider(settings).session() as session``.

What a failure means, by the server's reply code:
- a recipient refused with 5xx: that recipient is refused for good (``Refused``, the
  caller records it and goes on with the others);
- a recipient refused with 4xx: worth another try later (``Refused`` too, ``permanent``
  false);
- the server refusing the sender, the sign-in or the connection with 5xx:
  ``PermanentFailure``, no retry can help; with 4xx or 421 (closing): ``TemporaryFailure``;
- anything else (no connection, a timeout, a dropped connection) is raised as it is.
Everything but ``PermanentFailure`` is worth retrying.
"""

import asyncio
import contextlib
import datetime
import email.utils
import logging
import smtplib
import ssl
from dataclasses import dataclass
from email.message import EmailMessage

log = logging.getLogger(__name__)

CONSOLE_SENDER = "howdah@localhost"


class PermanentFailure(Exception):
    """The SMTP server refused something that no retry will change."""


class TemporaryFailure(Exception):
    """The SMTP server asked to try again later (4xx), or closed the connection."""


@dataclass(frozen=True)
class Outcome:
    """What became of one recipient's message: sent, logged (console) or refused."""

    kind: str
    code: int | None = None

    @property
    def permanent(self) -> bool:
        """A refusal the server called permanent (5xx)."""
        return self.kind == "refused" and self.code is not None and self.code >= 500


SENT = Outcome("sent")
LOGGED = Outcome("logged")


def masked(address: str) -> str:
    """An address as logs may show it: ``j***@example.com``."""
    local, _, domain = address.rpartition("@")
    return f"{local[:1]}***@{domain}"


def ascii_address(address: str) -> str:
    """The address with its domain in ASCII (IDNA) where its local part is ASCII, which
    any server takes; otherwise as it is (only an SMTPUTF8 server takes it)."""
    local, _, domain = address.rpartition("@")
    if not local.isascii() or domain.isascii():
        return address
    try:
        return f"{local}@{domain.encode('idna').decode('ascii')}"
    except UnicodeError:
        return address


def compose(sender: str, recipient: str, subject: str, text: str, html: str) -> EmailMessage:
    """One recipient's message: multipart/alternative, the text first, then the HTML."""
    message = EmailMessage()
    message["Subject"] = subject
    message["From"] = sender
    message["To"] = ascii_address(recipient)
    message["Date"] = email.utils.format_datetime(datetime.datetime.now(datetime.UTC))
    message["Message-ID"] = email.utils.make_msgid(domain=sender.rpartition("@")[2] or None)
    message.set_content(text)
    message.add_alternative(html, subtype="html")
    return message


class ConsoleSession:
    """Logs each message (its size and a masked recipient); sends nothing."""

    async def send(self, message: EmailMessage) -> Outcome:
        log.info(
            "console email provider, not sent: to %s, %d bytes",
            masked(message["To"]),
            len(message.as_bytes()),
            extra={"action": "email_console"},
        )
        return LOGGED


class ConsoleEmail:
    """The development provider: nothing leaves the machine."""

    name = "console"
    sender = CONSOLE_SENDER

    @contextlib.asynccontextmanager
    async def session(self):
        yield ConsoleSession()


def refusal(exc: smtplib.SMTPResponseException, what: str) -> Exception:
    """A refusal as a Permanent- or TemporaryFailure, by its code; only the code is kept,
    since the server's words may quote addresses."""
    kind = PermanentFailure if exc.smtp_code >= 500 else TemporaryFailure
    return kind(f"the SMTP server refused {what}: {exc.smtp_code}")


class SmtpSession:
    """One SMTP connection, used from one thread at a time."""

    def __init__(self, settings: dict):
        self.settings = settings
        self.client: smtplib.SMTP | None = None

    def open(self) -> None:
        """Connect, secure the connection as configured, and sign in if a user is set."""
        s = self.settings
        host, port, timeout = s["SMTP_HOST"], s["SMTP_PORT"], s["SMTP_TIMEOUT"]
        try:
            if s["SMTP_SECURITY"] == "tls":
                context = ssl.create_default_context()
                self.client = smtplib.SMTP_SSL(host, port, timeout=timeout, context=context)
            else:
                self.client = smtplib.SMTP(host, port, timeout=timeout)
            if s["SMTP_SECURITY"] == "starttls":
                self.client.starttls(context=ssl.create_default_context())
            if s["SMTP_USER"]:
                self.client.login(s["SMTP_USER"], s["SMTP_PASSWORD"])
        except smtplib.SMTPNotSupportedError as exc:
            raise PermanentFailure(f"the SMTP server does not support it: {exc}") from None
        except smtplib.SMTPResponseException as exc:
            raise refusal(exc, "the connection or the sign-in") from None

    def send(self, message: EmailMessage) -> Outcome:
        """Send one message to its one recipient."""
        envelope = message["To"]  # ascii_address'd by compose
        try:
            self.client.send_message(message, self.settings["SMTP_FROM"], [envelope])
        except smtplib.SMTPNotSupportedError:
            # An address that needs SMTPUTF8 (a non-ASCII local part) on a server without
            # it: this recipient cannot be reached through it, the others still can.
            return Outcome("refused", 553)
        except smtplib.SMTPRecipientsRefused as exc:
            code = exc.recipients[envelope][0]
            if code == 421:  # the server closes the connection: nothing more goes on it
                raise TemporaryFailure("the SMTP server closed the connection: 421") from None
            return Outcome("refused", code)
        except smtplib.SMTPSenderRefused as exc:
            raise refusal(exc, "the sender") from None
        except smtplib.SMTPDataError as exc:
            if exc.smtp_code == 421:
                raise TemporaryFailure("the SMTP server closed the connection: 421") from None
            return Outcome("refused", exc.smtp_code)
        return SENT

    def close(self) -> None:
        """Say goodbye; a connection that is gone already is no error."""
        if self.client is not None:
            with contextlib.suppress(smtplib.SMTPException, OSError):
                self.client.quit()


class AsyncSmtpSession:
    """An ``SmtpSession`` driven from the event loop, each call in a thread."""

    def __init__(self, session: SmtpSession):
        self.inner = session

    async def send(self, message: EmailMessage) -> Outcome:
        outcome = await asyncio.to_thread(self.inner.send, message)
        log.info(
            "email to %s: %s%s",
            masked(message["To"]),
            outcome.kind,
            f" ({outcome.code})" if outcome.code else "",
            extra={"action": "email_sent"},
        )
        return outcome


class SmtpEmail:
    """Sends through the SMTP server of the settings."""

    name = "smtp"

    def __init__(self, settings: dict):
        self.settings = settings
        self.sender = settings["SMTP_FROM"]

    @contextlib.asynccontextmanager
    async def session(self):
        inner = SmtpSession(self.settings)
        try:
            await asyncio.to_thread(inner.open)
            yield AsyncSmtpSession(inner)
        finally:
            await asyncio.to_thread(inner.close)


def email_provider(settings: dict) -> ConsoleEmail | SmtpEmail:
    """The provider ``EMAIL_PROVIDER`` names (``webapp.config.email_settings``)."""
    if settings["EMAIL_PROVIDER"] == "smtp":
        return SmtpEmail(settings)
    return ConsoleEmail()
