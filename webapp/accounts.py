"""Who is calling: people (password, session) and programs (API tokens), and their roles."""

import datetime
import functools
import hashlib
import math
import secrets
import threading
import time
from dataclasses import dataclass

import psycopg
from werkzeug.security import check_password_hash, generate_password_hash

from webapp.store import accounts as store
from webapp.store import audit as audit_store
from webapp.store import tokens as token_store

ROLES = ("admin", "operator", "viewer")
WRITERS = {"admin", "operator"}
TOKEN_PREFIX = "hwd_"  # noqa: S105 - the public marker that starts every token
MIN_PASSWORD = 12
MAX_EMAIL = 320  # what the sign-in form accepts
MAX_ORGANIZATION_NAME = 200
MAX_TOKEN_DAYS = 3650
# How long a process trusts a token it found valid, counted from before the lookup began
# (and never past the token's expiry): a revoked or deleted token stops working in every
# process within this time.
TOKEN_CACHE_SECONDS = 0.5
TOKEN_CACHE_SIZE = 1024  # valid tokens kept per process; past it the oldest entry goes


@functools.cache
def _dummy_hash() -> str:
    """Compared against when the email is unknown, so both failures take as long; made
    on first use, so that importing this module hashes nothing."""
    return generate_password_hash("howdah-timing-equaliser", method="scrypt")


@dataclass(frozen=True)
class Principal:
    """An authenticated caller: a person in a session, or an API token."""

    kind: str  # "user" or "token"
    id: int
    label: str  # the email, or the token's prefix
    role: str
    organization_id: int | None  # None: every organization (platform admin)
    session_id: str | None = None

    is_authenticated = True
    is_active = True
    is_anonymous = False

    def get_id(self) -> str | None:
        """What flask-login keeps in the cookie: the session's id, never the user's."""
        return self.session_id

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    @property
    def can_write(self) -> bool:
        return self.role in WRITERS


def normalize_email(email: str) -> str:
    return email.strip().lower()


def email_problem(email: str) -> str | None:
    """Why ``email`` (normalised) cannot be an account's address; None if it can."""
    local, at, domain = email.rpartition("@")
    if not (at and local and domain) or not email.isprintable() or " " in email:
        return "is not an email address"
    if len(email) > MAX_EMAIL:
        return f"is longer than the {MAX_EMAIL} characters the sign-in form takes"
    return None


def organization_name_problem(name: str) -> str | None:
    """Why ``name`` (stripped) cannot name an organization; None if it can."""
    if not name:
        return "must not be empty"
    if len(name) > MAX_ORGANIZATION_NAME:
        return f"must be at most {MAX_ORGANIZATION_NAME} characters"
    if not name.isprintable():
        return "must not hold control characters"
    return None


def hash_secret(secret: str) -> str:
    """SHA-256 for high-entropy secrets (tokens, session ids); passwords use scrypt."""
    return hashlib.sha256(secret.encode()).hexdigest()


def hash_password(password: str) -> str:
    """werkzeug's scrypt hash."""
    if len(password) < MIN_PASSWORD:
        raise ValueError(f"passwords need at least {MIN_PASSWORD} characters")
    return generate_password_hash(password, method="scrypt")


def check_password(conn: psycopg.Connection, email: str, password: str) -> dict | None:
    """The user if the email and password match, else None (in the same time either way)."""
    user = store.get_user_by_email(conn, normalize_email(email))
    matches = check_password_hash(user["password_hash"] if user else _dummy_hash(), password)
    return user if user and matches else None


@dataclass(frozen=True)
class SignInLimits:
    """How many failed sign-ins are let through before a caller must wait.

    ``per_pair`` failures of one account from one address in ``PAIR_SECONDS``: the
    limit someone guessing from one place meets. ``per_account`` failures of an account
    from anywhere in ``WINDOW_SECONDS``, past which each further try waits twice as long
    as the last (1 s up to ``MAX_BACKOFF_SECONDS``); addresses the account signed in from
    in the last ``KNOWN_DAYS`` are spared that, so a stranger cannot lock its owner out.
    ``per_address`` failures from one address across accounts in ``WINDOW_SECONDS``.
    """

    PAIR_SECONDS = 60
    WINDOW_SECONDS = 900
    MAX_BACKOFF_SECONDS = 900
    KNOWN_DAYS = 30

    per_pair: int
    per_account: int
    per_address: int

    def wait(self, history: dict) -> int | None:
        """Seconds to wait before the next try, given ``sign_in_history``; None: go on."""
        waits = []
        if history["by_pair"] >= self.per_pair:
            waits.append(history["pair_wait"])
        over = history["by_account"] - self.per_account
        if over >= 0 and not history["known_address"]:
            backoff = min(2.0**over, self.MAX_BACKOFF_SECONDS)
            waits.append(backoff - history["since_account_failure"])
        if history["by_address"] >= self.per_address:
            waits.append(history["address_wait"])
        longest = max(waits, default=0.0)
        return max(1, math.ceil(longest)) if longest > 0 else None


def sign_in_wait(
    conn: psycopg.Connection, email: str, ip: str | None, limits: SignInLimits
) -> int | None:
    """Seconds this caller must wait before trying this account again, or None.

    Call it in the transaction that checks the password and records the outcome: it
    takes the account's sign-in lock, so concurrent tries at one account are counted one
    by one and its limits hold exactly. (Tries from one address at different accounts
    are not serialised, which would cap sign-ins from behind one proxy: the per-address
    limit can be passed by as many tries as arrive at the same moment.)
    """
    email = normalize_email(email)
    audit_store.lock_sign_ins(conn, email)
    history = audit_store.sign_in_history(
        conn,
        email,
        ip,
        pair_seconds=limits.PAIR_SECONDS,
        window_seconds=limits.WINDOW_SECONDS,
        known_days=limits.KNOWN_DAYS,
    )
    return limits.wait(history)


def start_session(conn: psycopg.Connection, user_id: int, lifetime: datetime.timedelta) -> str:
    """A new session id for this user (only its hash is stored)."""
    session_id = secrets.token_urlsafe(32)
    expires = datetime.datetime.now(datetime.UTC) + lifetime
    store.insert_session(conn, hash_secret(session_id), user_id, expires)
    return session_id


def load_session(conn: psycopg.Connection, session_id: str) -> Principal | None:
    """The person behind a live session id, or None."""
    row = store.get_session_user(conn, hash_secret(session_id))
    if row is None:
        return None
    organization = None if row["role"] == "admin" else row["organization_id"]
    return Principal("user", row["id"], row["email"], row["role"], organization, session_id)


def switch_organization(conn: psycopg.Connection, session_id: str, organization_id: int) -> bool:
    """Make the session act for another of its user's organizations; False if not theirs."""
    return store.set_session_organization(conn, hash_secret(session_id), organization_id)


def end_session(conn: psycopg.Connection, session_id: str) -> None:
    store.revoke_session(conn, hash_secret(session_id))


def new_token(
    conn: psycopg.Connection, organization_id: int | None, name: str, expires_days: int | None
) -> tuple[str, dict]:
    """Create a token; return its secret (shown once) and its stored row."""
    prefix = TOKEN_PREFIX + secrets.token_hex(4)
    secret = f"{prefix}_{secrets.token_urlsafe(32)}"
    expires = None
    if expires_days is not None:
        expires = datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=expires_days)
    row = token_store.insert_token(
        conn, organization_id, name, prefix, hash_secret(secret), expires
    )
    return secret, row


class TokenCache:
    """Valid tokens this process looked up in the last ``TOKEN_CACHE_SECONDS``, by the hash
    of their secret, so a busy client costs one lookup per period rather than per request.

    Only valid tokens are kept (a new token works at once; a wrong secret is looked up
    each time), never past their expiry. Revoking a token drops it here at once
    (``forget``); other processes stop trusting it when its entry runs out.
    """

    def __init__(self, seconds: float = TOKEN_CACHE_SECONDS, size: int = TOKEN_CACHE_SIZE):
        self.seconds, self.size = seconds, size
        self._entries: dict[str, tuple[float, Principal]] = {}
        self._lock = threading.Lock()

    def get(self, token_hash: str) -> Principal | None:
        """The token's principal while its entry lasts, else None."""
        entry = self._entries.get(token_hash)
        if entry is None or time.monotonic() >= entry[0]:
            return None
        return entry[1]

    def put(self, token_hash: str, principal: Principal, until: float) -> None:
        """Keep a principal until the monotonic time ``until``."""
        with self._lock:
            self._entries.pop(token_hash, None)  # re-inserted last: the newest entry
            if len(self._entries) >= self.size:
                now = time.monotonic()
                self._entries = {k: e for k, e in self._entries.items() if e[0] > now}
                if len(self._entries) >= self.size:
                    del self._entries[next(iter(self._entries))]
            self._entries[token_hash] = (until, principal)

    def forget(self, token_id: int) -> None:
        """Drop a token (revoked in this process) at once."""
        with self._lock:
            self._entries = {k: e for k, e in self._entries.items() if e[1].id != token_id}


def load_token(conn: psycopg.Connection, secret: str, cache: TokenCache) -> Principal | None:
    """The program behind a valid token, or None: from ``cache``, or looked up (and then
    kept there). A lookup notes the token's use, at most once a minute."""
    if not secret.startswith(TOKEN_PREFIX):
        return None
    token_hash = hash_secret(secret)
    if (principal := cache.get(token_hash)) is not None:
        return principal
    asked = time.monotonic()  # before the lookup: what it reads holds at this time or later
    row = token_store.get_token_by_hash(conn, token_hash)
    if row is None or not row["valid"]:
        return None
    if row["stale_use"]:
        token_store.touch_token(conn, row["id"])
    # A token acts for its organization with operator rights; one without is a platform token.
    role = "admin" if row["organization_id"] is None else "operator"
    principal = Principal("token", row["id"], row["prefix"], role, row["organization_id"])
    lasts = cache.seconds
    if row["seconds_left"] is not None:
        lasts = min(lasts, row["seconds_left"])
    cache.put(token_hash, principal, asked + lasts)
    return principal
