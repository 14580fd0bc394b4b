"""Settings, parsed from the environment (or a mapping of the same names).

Nothing here runs at import time: entry points call ``web_settings`` or
``worker_settings`` with ``os.environ`` (or a test mapping) when they start.
"""

import base64
import binascii
import ipaddress
import math
import re
from collections.abc import Mapping

import psycopg.conninfo

ENVIRONMENTS = ("production", "development")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
LOG_FORMATS = ("json", "text")
DEV_SECRET_KEY = "howdah-development-only-secret"  # noqa: S105 - used only when HOWDAH_ENV=development

# Worker processes one command may run (``--processes``): each holds its own connections,
# so a typo such as 200 would take more than PostgreSQL's default 100 connections many
# times over; a host with more cores than this runs several commands.
MAX_WORKER_PROCESSES = 64

TRUE_WORDS = {"1", "true", "yes", "on"}
FALSE_WORDS = {"0", "false", "no", "off", ""}


class ConfigError(SystemExit):
    """A missing or invalid setting.

    It is a ``SystemExit`` so that every entry point (gunicorn, the flask CLI,
    the worker) stops with this one line rather than a traceback.
    """

    def __init__(self, name: str, problem: str):
        self.name = name
        super().__init__(f"howdah: configuration error: {name} {problem}")


class DevExtraMissing(SystemExit):
    """A development tool (``make run``, the embedded PostgreSQL) lacks a library of the
    ``dev`` extra; like ``ConfigError``, it stops with one line, not a traceback."""

    def __init__(self, error: ModuleNotFoundError):
        super().__init__(
            f"howdah: {error.name} is not installed; the development tools need the dev extra:"
            " pip install 'howdah[dev]' (make run installs it)"
        )


def parse_bool(environ: Mapping[str, str], name: str, default: bool) -> bool:
    """Read a yes/no setting; accepts 1/0, true/false, yes/no, on/off."""
    raw = environ.get(name)
    if raw is None:
        return default
    word = raw.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise ConfigError(name, f"must be a boolean (true/false), got {raw!r}")


def parse_int(
    environ: Mapping[str, str],
    name: str,
    default: int,
    minimum: int = 0,
    maximum: int | None = None,
) -> int:
    """Read a whole number from ``minimum`` to ``maximum`` (None: no upper bound)."""
    raw = environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(name, f"must be a whole number, got {raw!r}") from None
    if value < minimum:
        raise ConfigError(name, f"must be at least {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ConfigError(name, f"must be at most {maximum}, got {value}")
    return value


def parse_seconds(environ: Mapping[str, str], name: str, default: float) -> float:
    """Read a positive duration in seconds (decimals allowed)."""
    raw = environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(name, f"must be a number of seconds, got {raw!r}") from None
    if not 0 < value < math.inf:
        raise ConfigError(name, f"must be a finite number greater than 0, got {raw!r}")
    return value


def parse_log_level(environ: Mapping[str, str]) -> str:
    """Read LOG_LEVEL: one of Python's level names (INFO by default)."""
    value = environ.get("LOG_LEVEL", "").strip().upper() or "INFO"
    if value not in LOG_LEVELS:
        raise ConfigError("LOG_LEVEL", f"must be one of {', '.join(LOG_LEVELS)}, got {value!r}")
    return value


def parse_log_format(environ: Mapping[str, str]) -> str:
    """Read LOG_FORMAT: json (one object a line, the default in production) or text (the
    default in development)."""
    default = "text" if parse_environment(environ) == "development" else "json"
    value = environ.get("LOG_FORMAT", "").strip().lower() or default
    if value not in LOG_FORMATS:
        raise ConfigError("LOG_FORMAT", f"must be one of {', '.join(LOG_FORMATS)}, got {value!r}")
    return value


DATABASE_URL_REQUIRED = "is required (for example postgresql://postgres@localhost/howdah)"


def url_problem(raw: str, exc: Exception) -> str:
    """libpq's reason for refusing a URL, with its user and password part left out: the
    reason may quote that part (``invalid percent-encoded token: "<password>"``) or the
    whole URL, and it reaches the log."""
    reason = str(exc).strip()
    credentials = raw.partition("://")[2].rpartition("@")[0]
    if not credentials:
        return reason
    for quoted in re.findall(r'"([^"]*)"', reason):
        if credentials in quoted:
            reason = reason.replace(f'"{quoted}"', f'"{quoted.replace(credentials, "***")}"')
        elif quoted and quoted in credentials:
            return "its user or password is malformed; percent-encode special characters"
    return reason


def parse_database_url(environ: Mapping[str, str], name: str = "DATABASE_URL") -> str:
    """Read a required PostgreSQL URL (postgresql://user@host:port/dbname)."""
    raw = environ.get(name, "").strip()
    if not raw:
        raise ConfigError(name, DATABASE_URL_REQUIRED)
    if not raw.startswith(("postgresql://", "postgres://")):
        raise ConfigError(name, "must be a postgresql:// URL")
    try:
        params = psycopg.conninfo.conninfo_to_dict(raw)
    except psycopg.ProgrammingError as exc:
        problem = url_problem(raw, exc)
        raise ConfigError(name, f"is not a valid PostgreSQL URL ({problem})") from None
    if not str(params.get("port", "5432")).isdigit():
        raise ConfigError(name, f"has an invalid port {params['port']!r}")
    return raw


def parse_environment(environ: Mapping[str, str]) -> str:
    """Read HOWDAH_ENV: production (the default) or development."""
    value = environ.get("HOWDAH_ENV", "production").strip().lower() or "production"
    if value not in ENVIRONMENTS:
        raise ConfigError("HOWDAH_ENV", f"must be one of {', '.join(ENVIRONMENTS)}, got {value!r}")
    return value


def parse_secret_key(environ: Mapping[str, str], environment: str) -> str:
    """Read SECRET_KEY: required, and at least 16 characters, outside development."""
    raw = environ.get("SECRET_KEY", "")
    if environment == "development" and not raw:
        return DEV_SECRET_KEY
    if not raw:
        raise ConfigError("SECRET_KEY", "is required outside development (HOWDAH_ENV=development)")
    if len(raw) < 16:
        raise ConfigError("SECRET_KEY", "must be at least 16 characters long")
    if environment != "development" and (raw == DEV_SECRET_KEY or "change-me" in raw.lower()):
        raise ConfigError(
            "SECRET_KEY",
            "is a placeholder; set a random one, e.g. from"
            " python3 -c 'import secrets; print(secrets.token_urlsafe(32))'",
        )
    return raw


def parse_direct_url(environ: Mapping[str, str], database_url: str | None) -> str | None:
    """Read DIRECT_DATABASE_URL: straight to PostgreSQL, for what needs a session of its
    own (the worker's LISTEN, the migrations' advisory lock); DATABASE_URL by default,
    which a transaction pooler in front of PostgreSQL cannot stand in for."""
    if environ.get("DIRECT_DATABASE_URL", "").strip():
        return parse_database_url(environ, "DIRECT_DATABASE_URL")
    if parse_bool(environ, "DATABASE_TRANSACTION_POOLING", False):
        raise ConfigError(
            "DIRECT_DATABASE_URL",
            "is required with DATABASE_TRANSACTION_POOLING=true (a URL straight to"
            " PostgreSQL, for the worker's LISTEN and the migrations' lock)",
        )
    return database_url


def database_settings(
    environ: Mapping[str, str], prefix: str, max_size: int, url_required: bool = True
) -> dict:
    """Connection-pool settings shared by the web and worker processes. Without
    ``url_required``, a missing DATABASE_URL is None, for the command that uses it to
    refuse (so ``--help`` needs none)."""
    min_size = parse_int(environ, f"{prefix}_POOL_MIN_SIZE", 1, minimum=0)
    max_size = parse_int(environ, f"{prefix}_POOL_MAX_SIZE", max_size, minimum=1)
    if max_size < min_size:
        raise ConfigError(f"{prefix}_POOL_MAX_SIZE", f"must be at least {prefix}_POOL_MIN_SIZE")
    database_url = (
        parse_database_url(environ)
        if url_required or environ.get("DATABASE_URL", "").strip()
        else None
    )
    return {
        "DATABASE_URL": database_url,
        "DIRECT_DATABASE_URL": parse_direct_url(environ, database_url),
        # DATABASE_URL goes through PgBouncer (or another pooler) in transaction mode: the
        # web pool then prepares no statements and sends no startup options.
        "DATABASE_TRANSACTION_POOLING": parse_bool(environ, "DATABASE_TRANSACTION_POOLING", False),
        "DB_POOL_MIN_SIZE": min_size,
        "DB_POOL_MAX_SIZE": max_size,
        "DB_CONNECT_TIMEOUT": parse_int(environ, "DB_CONNECT_TIMEOUT", 5, minimum=1),
        "DB_STATEMENT_TIMEOUT_MS": parse_int(environ, "DB_STATEMENT_TIMEOUT_MS", 30_000),
        # A request waiting on a lock holds a thread and a connection; 0 waits as long as
        # the statement timeout allows.
        "DB_LOCK_TIMEOUT_MS": parse_int(environ, "DB_LOCK_TIMEOUT_MS", 5_000),
    }


def web_settings(environ: Mapping[str, str], serving: bool = True) -> dict:
    """Everything the web process needs, as Flask config keys. Only ``serving`` requests
    needs a SECRET_KEY (for sessions and CSRF); a command such as ``migrate`` does not."""
    environment = parse_environment(environ)
    secret_key = (
        parse_secret_key(environ, environment) if serving or environ.get("SECRET_KEY") else None
    )
    return {
        # One connection per gunicorn thread by default (webapp/gunicorn_conf.py reads
        # WEB_THREADS too).
        **database_settings(
            environ,
            "WEB",
            max_size=parse_int(environ, "WEB_THREADS", 4, 1),
            url_required=serving,
        ),
        "HOWDAH_ENV": environment,
        "SECRET_KEY": secret_key,
        "DB_POOL_TIMEOUT": parse_seconds(environ, "DB_POOL_TIMEOUT", 1.5),
        "QUEUE_MAX_WAIT_SECONDS": parse_int(environ, "QUEUE_MAX_WAIT_SECONDS", 300, minimum=1),
        "WORKER_STALE_SECONDS": parse_worker_stale_seconds(environ),
        "API_MAX_BODY_BYTES": parse_int(environ, "API_MAX_BODY_BYTES", 256 * 1024, minimum=1024),
        "API_BATCH_MAX_BODY_BYTES": parse_int(
            environ, "API_BATCH_MAX_BODY_BYTES", 4 * 1024 * 1024, minimum=1024
        ),
        "TRUSTED_PROXIES": parse_int(environ, "TRUSTED_PROXIES", 0),
        "LOGIN_MAX_FAILURES": parse_int(environ, "LOGIN_MAX_FAILURES", 5, minimum=1),
        "LOGIN_ACCOUNT_MAX_FAILURES": parse_int(
            environ, "LOGIN_ACCOUNT_MAX_FAILURES", 50, minimum=1
        ),
        "LOGIN_ADDRESS_MAX_FAILURES": parse_int(
            environ, "LOGIN_ADDRESS_MAX_FAILURES", 100, minimum=1
        ),
        "SESSION_HOURS": parse_int(environ, "SESSION_HOURS", 12, minimum=1),
        "REMEMBER_DAYS": parse_int(environ, "REMEMBER_DAYS", 30, minimum=1),
        "LOG_LEVEL": parse_log_level(environ),
        "LOG_FORMAT": parse_log_format(environ),
        **webhook_settings(environ),
        **metrics_settings(environ, environment),
    }


SMS_PROVIDERS = ("console", "telnyx")
EMAIL_PROVIDERS = ("console", "smtp")
SMTP_SECURITY = ("starttls", "tls", "none")
TELNYX_BASE_URL = "https://api.telnyx.com/v2"


def parse_choice(environ: Mapping[str, str], name: str, choices: tuple[str, ...]) -> str:
    """Read one of ``choices`` (the first is the default)."""
    value = environ.get(name, "").strip().lower() or choices[0]
    if value not in choices:
        raise ConfigError(name, f"must be one of {', '.join(choices)}, got {value!r}")
    return value


def parse_url(environ: Mapping[str, str], name: str, default: str) -> str:
    """Read an http(s) URL, without its trailing slash."""
    value = environ.get(name, "").strip() or default
    if not value.startswith(("http://", "https://")):
        raise ConfigError(name, f"must be an http:// or https:// URL, got {value!r}")
    return value.rstrip("/")


def require(environ: Mapping[str, str], name: str, why: str) -> str:
    """Read a setting that ``why`` makes required."""
    value = environ.get(name, "").strip()
    if not value:
        raise ConfigError(name, f"is required {why}")
    return value


def sms_settings(environ: Mapping[str, str]) -> dict:
    """How the worker sends SMS: the console (the default) or Telnyx's messages API."""
    provider = parse_choice(environ, "SMS_PROVIDER", SMS_PROVIDERS)
    settings = {
        "SMS_PROVIDER": provider,
        "TELNYX_API_KEY": environ.get("TELNYX_API_KEY", "").strip(),
        "TELNYX_FROM": environ.get("TELNYX_FROM", "").strip(),
        "TELNYX_MESSAGING_PROFILE_ID": environ.get("TELNYX_MESSAGING_PROFILE_ID", "").strip(),
        "TELNYX_BASE_URL": parse_url(environ, "TELNYX_BASE_URL", TELNYX_BASE_URL),
        # Sent with each message, so that Telnyx posts its receipts there (optional: the
        # messaging profile's own webhook URL serves as well).
        "TELNYX_WEBHOOK_URL": environ.get("TELNYX_WEBHOOK_URL", "").strip(),
        "TELNYX_TIMEOUT": parse_seconds(environ, "TELNYX_TIMEOUT", 10.0),
    }
    if provider == "telnyx":
        require(environ, "TELNYX_API_KEY", "with SMS_PROVIDER=telnyx")
        if not (settings["TELNYX_FROM"] or settings["TELNYX_MESSAGING_PROFILE_ID"]):
            raise ConfigError(
                "TELNYX_FROM",
                "or TELNYX_MESSAGING_PROFILE_ID is required with SMS_PROVIDER=telnyx",
            )
    return settings


def email_settings(environ: Mapping[str, str]) -> dict:
    """How the worker sends email: the console (the default) or an SMTP server."""
    provider = parse_choice(environ, "EMAIL_PROVIDER", EMAIL_PROVIDERS)
    security = parse_choice(environ, "SMTP_SECURITY", SMTP_SECURITY)
    settings = {
        "EMAIL_PROVIDER": provider,
        "SMTP_HOST": environ.get("SMTP_HOST", "").strip(),
        "SMTP_PORT": parse_int(
            environ, "SMTP_PORT", {"starttls": 587, "tls": 465, "none": 25}[security], 1
        ),
        "SMTP_SECURITY": security,
        "SMTP_USER": environ.get("SMTP_USER", "").strip(),
        "SMTP_PASSWORD": environ.get("SMTP_PASSWORD", ""),
        "SMTP_FROM": environ.get("SMTP_FROM", "").strip(),
        "SMTP_TIMEOUT": parse_seconds(environ, "SMTP_TIMEOUT", 10.0),
        # Where the digests' links to the admin pages point.
        "PUBLIC_URL": parse_url(environ, "PUBLIC_URL", "http://localhost:8000"),
    }
    if provider == "smtp":
        require(environ, "SMTP_HOST", "with EMAIL_PROVIDER=smtp")
        require(environ, "SMTP_FROM", "with EMAIL_PROVIDER=smtp")
    return settings


def parse_public_key(environ: Mapping[str, str], name: str) -> str:
    """Read an Ed25519 public key: the base64 of its 32 bytes (empty: none)."""
    value = environ.get(name, "").strip()
    try:
        raw = base64.b64decode(value, validate=True)
    except binascii.Error:
        raw = b""
    if value and len(raw) != 32:
        raise ConfigError(name, "must be the base64 of a 32-byte Ed25519 public key")
    return value


def webhook_settings(environ: Mapping[str, str]) -> dict:
    """What the web process checks Telnyx's delivery receipts with."""
    return {
        # Telnyx's public key (base64, from the portal's Keys & Credentials page); without
        # it, every receipt is refused.
        "TELNYX_PUBLIC_KEY": parse_public_key(environ, "TELNYX_PUBLIC_KEY"),
        "TELNYX_WEBHOOK_TOLERANCE_SECONDS": parse_int(
            environ, "TELNYX_WEBHOOK_TOLERANCE_SECONDS", 300, minimum=1
        ),
    }


METRICS_TOKEN_LENGTHS = (16, 256)
# Loopback only under development: behind a proxy on the same host, with TRUSTED_PROXIES
# unset, every client would come from 127.0.0.1.
METRICS_ALLOW_FROM_DEFAULTS = {"development": "127.0.0.1/32,::1/128", "production": "none"}
METRICS_ALLOW_FROM_MAX = 64


def parse_networks(environ: Mapping[str, str], name: str, default: str) -> tuple:
    """Read comma-separated IP addresses or CIDR networks (``none``: an empty list)."""
    raw = environ.get(name)
    raw = default if raw is None else raw.strip()
    if raw.lower() == "none":
        return ()
    entries = [entry.strip() for entry in raw.split(",") if entry.strip()]
    if len(entries) > METRICS_ALLOW_FROM_MAX:
        raise ConfigError(name, f"may list at most {METRICS_ALLOW_FROM_MAX} networks")
    try:
        return tuple(ipaddress.ip_network(entry) for entry in entries)
    except ValueError as exc:
        raise ConfigError(name, f"must be IP addresses or networks (10.0.0.0/8): {exc}") from None


def metrics_settings(environ: Mapping[str, str], environment: str) -> dict:
    """Who may read GET /metrics: a bearer token, and addresses that need none (by
    default, none but loopback under development)."""
    token = environ.get("METRICS_TOKEN", "").strip() or None
    low, high = METRICS_TOKEN_LENGTHS
    if token is not None and not low <= len(token) <= high:
        raise ConfigError("METRICS_TOKEN", f"must be {low} to {high} characters long")
    if token is not None and not all("!" <= char <= "~" for char in token):
        raise ConfigError(
            "METRICS_TOKEN", "must be printable ASCII without spaces (it travels in a header)"
        )
    return {
        "METRICS_TOKEN": token,
        "METRICS_ALLOW_FROM": parse_networks(
            environ, "METRICS_ALLOW_FROM", METRICS_ALLOW_FROM_DEFAULTS[environment]
        ),
    }


def housekeeping_settings(environ: Mapping[str, str]) -> dict:
    """What the housekeeping tasks read, in whichever worker runs them."""
    return {
        "WORKER_STALLED_AFTER": parse_int(environ, "WORKER_STALLED_AFTER", 30, minimum=15),
        "LOST_JOB_MAX_ATTEMPTS": parse_int(environ, "LOST_JOB_MAX_ATTEMPTS", 5, minimum=1),
        "JOB_RETENTION_DAYS": parse_int(environ, "JOB_RETENTION_DAYS", 7, minimum=1),
        "SIGN_IN_RETENTION_DAYS": parse_int(environ, "SIGN_IN_RETENTION_DAYS", 30, minimum=1),
        # The digests count a week of messages; the admin pages show a job's message
        # for as long as the job is kept.
        "SMS_RETENTION_DAYS": parse_int(environ, "SMS_RETENTION_DAYS", 90, minimum=7),
    }


def parse_worker_stale_seconds(environ: Mapping[str, str]) -> int:
    """The heartbeat age past which a worker is stale (status page and health check)."""
    return parse_int(environ, "WORKER_STALE_SECONDS", 30, minimum=1)


def worker_flag_settings(environ: Mapping[str, str]) -> dict:
    """The settings the worker's command-line flags default to (no database needed, so
    ``--help`` works anywhere)."""
    queues = [q.strip() for q in environ.get("WORKER_QUEUES", "").split(",") if q.strip()]
    return {
        "WORKER_CONCURRENCY": parse_int(environ, "WORKER_CONCURRENCY", 10, minimum=1),
        "WORKER_QUEUES": queues,
        "WORKER_NAME": environ.get("WORKER_NAME", "").strip() or None,
        "WORKER_SHUTDOWN_TIMEOUT": parse_seconds(environ, "WORKER_SHUTDOWN_TIMEOUT", 30.0),
        "WORKER_PROCESSES": parse_int(
            environ, "WORKER_PROCESSES", 1, minimum=1, maximum=MAX_WORKER_PROCESSES
        ),
    }


def worker_settings(environ: Mapping[str, str]) -> dict:
    """Everything the worker process needs; a worker needs no SECRET_KEY."""
    return {
        **database_settings(environ, "WORKER", max_size=8),
        **housekeeping_settings(environ),
        **worker_flag_settings(environ),
        "WORKER_POLL_INTERVAL": parse_seconds(environ, "WORKER_POLL_INTERVAL", 0.5),
        # 0: no cap. Otherwise at most this many jobs of one organization run at once,
        # across every worker and queue.
        "ORG_MAX_RUNNING": parse_int(environ, "ORG_MAX_RUNNING", 5, minimum=0) or None,
        "LOG_LEVEL": parse_log_level(environ),
        "LOG_FORMAT": parse_log_format(environ),
        # Checked at start, so that a worker with a provider half set up refuses to run;
        # the tasks read them again when they run (as the housekeeping tasks do).
        **sms_settings(environ),
        **email_settings(environ),
    }


def worker_check_settings(environ: Mapping[str, str]) -> dict:
    """What ``python -m tasks.worker.healthcheck`` reads: the worker's own settings (its
    database, name and processes) and the heartbeat age past which a worker is stale."""
    return {**worker_settings(environ), "WORKER_STALE_SECONDS": parse_worker_stale_seconds(environ)}
