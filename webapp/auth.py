"""Sign-in for people (sessions) and programs (Bearer tokens), and who may call what.

flask-login keeps a server-side session id in the cookie (``Principal.get_id``),
so signing out or changing a password ends the session on the server.
"""

import datetime
import logging
from urllib.parse import urlsplit

import psycopg
from flask import (
    Blueprint,
    Flask,
    abort,
    current_app,
    flash,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_login import LoginManager, current_user, login_user, logout_user
from werkzeug.datastructures import WWWAuthenticate
from werkzeug.exceptions import Unauthorized

from webapp import accounts, audit, db, errors, logs
from webapp.forms import LoginForm, LogoutForm
from webapp.security import csrf

bp = Blueprint("auth", __name__)
log = logging.getLogger(__name__)
login_manager = LoginManager()
login_manager.login_view = "auth.login"
login_manager.login_message = None

SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}
PUBLIC_API_ENDPOINTS = {"api.openapi"}
CACHE_EXTENSION = "howdah_token_cache"
GENERIC_FAILURE = "Invalid email or password."


@login_manager.user_loader
def load_user(session_id: str):
    """The person behind the cookie's session id; None once it ended or expired."""
    return in_logs(accounts.load_session(db.get_conn(), session_id))


def bearer_secret(req) -> str | None:
    """The secret of ``Authorization: Bearer <token>``, if the request sends one."""
    scheme, _, secret = req.headers.get("Authorization", "").partition(" ")
    return secret.strip() if scheme.lower() == "bearer" and secret.strip() else None


@login_manager.request_loader
def load_token(req):
    """An API token from ``Authorization: Bearer <token>``."""
    secret = bearer_secret(req)
    return None if secret is None else token_principal(secret)


def token_principal(secret: str):
    """The program behind a token's secret, or None (this process's cache, or a lookup)."""
    return in_logs(
        accounts.load_token(db.get_conn(), secret, current_app.extensions[CACHE_EXTENSION])
    )


def in_logs(principal):
    """``principal``, its organization now on the request's log lines (never a secret)."""
    if principal is None:
        return None
    if principal.organization_id is not None:
        logs.bind(organization_id=principal.organization_id)
    log.debug("caller: %s %s", principal.kind, principal.id, extra={"role": principal.role})
    return principal


def forget_token(token_id: int) -> None:
    """Stop trusting a token this process has just revoked; other processes stop within
    ``accounts.TOKEN_CACHE_SECONDS``."""
    current_app.extensions[CACHE_EXTENSION].forget(token_id)


def act_as_the_token():
    """A request that sends a token acts as that token (or as nobody, if it is not
    valid), whatever cookies come with it: flask-login would take a remember cookie first
    and never look at the token."""
    secret = bearer_secret(request)
    if secret is not None:
        # flask-login keeps the request's caller in g._login_user.
        g._login_user = token_principal(secret) or login_manager.anonymous_user()


@login_manager.unauthorized_handler
def unauthorized():
    """JSON 401 with a challenge under /api; the login page everywhere else."""
    if errors.wants_json():
        sent = request.headers.get("Authorization", "")
        params = {"realm": "howdah"}
        message = "send an API token as Authorization: Bearer <token>, or sign in"
        if sent.lower().startswith("bearer "):
            params["error"] = "invalid_token"
            message = "the API token is invalid, revoked or expired"
        raise Unauthorized(message, www_authenticate=WWWAuthenticate("bearer", params))
    return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))


def require_api_access():
    """The API's gate (a before_request of the api blueprint): who may call what.

    Anyone signed in may read their organization's jobs; changes need an operator,
    a token or an admin; /api/admin needs an admin session or a platform token.
    A signed-in browser must also send the CSRF token with a change.
    """
    if request.endpoint in PUBLIC_API_ENDPOINTS:
        return None
    act_as_the_token()
    caller = current_user._get_current_object()  # once, not through the proxy each time
    if not caller.is_authenticated:
        return login_manager.unauthorized()
    if request.path.startswith("/api/admin/") and not caller.is_admin:
        abort(403, "this needs a platform admin")
    if request.method not in SAFE_METHODS:
        if not caller.can_write:
            abort(403, "viewers can read jobs but not change them")
        if caller.kind == "user":
            csrf.protect()
    return None


def safe_next(target: str | None) -> str | None:
    """``target`` if it is a path on this site, else None (no open redirects)."""
    if not target:
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return None
    if "\\" in target:
        return None
    return target


def sign_in_limits() -> accounts.SignInLimits:
    config = current_app.config
    return accounts.SignInLimits(
        per_pair=config["LOGIN_MAX_FAILURES"],
        per_account=config["LOGIN_ACCOUNT_MAX_FAILURES"],
        per_address=config["LOGIN_ADDRESS_MAX_FAILURES"],
    )


def too_many_failures(wait: int):
    """429 with Retry-After: this caller failed too often lately."""
    response = current_app.make_response(
        (render_template("auth/login.html", form=LoginForm(), wait=wait), 429)
    )
    response.headers["Retry-After"] = str(wait)
    abort(response)


def sign_in(email: str, password: str, lifetime: datetime.timedelta):
    """The principal of a new session if the password is right, else None; 429 when this
    caller must wait. The count, the check and the record of the outcome happen under the
    account's sign-in lock, and a session commits together with its audit entry."""
    conn = db.get_conn()
    with conn.transaction():
        wait = accounts.sign_in_wait(conn, email, request.remote_addr, sign_in_limits())
        if wait is not None:
            too_many_failures(wait)
        user = accounts.check_password(conn, email, password)
        if user is None:
            audit.record("login.failed", target_type="user", target_id=email)
            return None
        with conn.transaction() as attempt:
            session_id = accounts.start_session(conn, user["id"], lifetime)
            principal = accounts.load_session(conn, session_id)
            if principal is None:  # in no organization: nothing to sign in to
                raise psycopg.Rollback(attempt)
        if principal is None:
            audit.record(
                "login.failed",
                target_type="user",
                target_id=email,
                details={"reason": "the account belongs to no organization"},
            )
            return None
        audit.record(
            "login.succeeded",
            target_type="user",
            target_id=email,
            actor=principal,
            organization_id=principal.organization_id,
        )
    return principal


@bp.route("/login", methods=["GET", "POST"])
def login():
    """The sign-in form; a success starts a new session and follows a local ``next``."""
    form = LoginForm(next=request.args.get("next", ""))
    if not form.validate_on_submit():
        return render_template("auth/login.html", form=form)
    remember = bool(form.remember.data)
    remember_days = datetime.timedelta(days=current_app.config["REMEMBER_DAYS"])
    lifetime = (
        remember_days if remember else datetime.timedelta(hours=current_app.config["SESSION_HOURS"])
    )
    email = accounts.normalize_email(form.email.data)
    principal = sign_in(email, form.password.data, lifetime)
    if principal is None:
        flash(GENERIC_FAILURE, "error")
        return render_template("auth/login.html", form=form)  # 401 would need a challenge
    session.clear()  # a new session: nothing from before the sign-in carries over
    login_user(in_logs(principal), remember=remember, duration=remember_days)
    return redirect(safe_next(form.next.data) or url_for("views.index"))


@bp.post("/logout")
def logout():
    """End the session on the server and in the browser."""
    form = LogoutForm()
    if form.validate_on_submit() and current_user.is_authenticated:
        conn = db.get_conn()
        with conn.transaction():  # the session ends with its audit entry, or not at all
            accounts.end_session(conn, current_user.session_id)
            audit.record("logout", target_type="user", target_id=current_user.label)
        logout_user()
    session.clear()
    flash("You are signed out.", "success")
    return redirect(url_for("auth.login"))


def init_app(app: Flask) -> None:
    """Wire flask-login, this process's cache of valid tokens, and the sign-in routes."""
    login_manager.init_app(app)
    app.extensions[CACHE_EXTENSION] = accounts.TokenCache()
    app.register_blueprint(bp)
