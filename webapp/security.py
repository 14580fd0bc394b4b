"""Cross-cutting protections: CSRF, security headers, secure cookies, proxy headers, and
bounds on what a request body may hold."""

from flask import Flask, current_app, request
from flask.json.provider import DefaultJSONProvider
from flask.sessions import SecureCookieSessionInterface
from flask_wtf.csrf import CSRFProtect
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.middleware.proxy_fix import ProxyFix

csrf = CSRFProtect()

CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)
# On every response, the app's and those gunicorn's worker writes itself
# (webapp/gunicorn_worker.py).
HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
}
# On everything but static files: pages and API answers may hold a tenant's data.
NO_STORE = {"Cache-Control": "no-store"}
STATIC_HEADERS = tuple(HEADERS.items())
PAGE_HEADERS = (*STATIC_HEADERS, *NO_STORE.items())


# The HTML forms hold a few short fields. Every body is refused (413) past
# MAX_BODY_BYTES before it is read, unless a view raises the limit for itself, as the
# API's JSON endpoints do (API_MAX_BODY_BYTES, API_BATCH_MAX_BODY_BYTES).
MAX_BODY_BYTES = 64 * 1024
MAX_FORM_FIELD_BYTES = 16 * 1024
MAX_FORM_PARTS = 32


class JSONProvider(DefaultJSONProvider):
    """Flask's JSON, but a body nested deeper than Python parses is malformed (400)
    rather than a ``RecursionError`` (500)."""

    def loads(self, s, **kwargs):
        try:
            return super().loads(s, **kwargs)
        except RecursionError:
            raise ValueError("JSON nested too deeply") from None


class SessionInterface(SecureCookieSessionInterface):
    """Flask's signed-cookie sessions, with the Secure flag whenever the request is HTTPS.

    A request that sends no cookie (an API call with a token, say) gets an empty session
    without building the cookie's signer, and an empty session left unchanged is not
    saved: what Flask's own does in either case, without the work it does first.
    """

    def open_session(self, app: Flask, request):
        if app.secret_key and "HTTP_COOKIE" not in request.environ:
            return self.session_class()
        return super().open_session(app, request)

    def save_session(self, app: Flask, session, response) -> None:
        if session or session.modified:
            super().save_session(app, session, response)
        elif session.accessed:  # the answer may depend on the cookie, as Flask's says
            if "Vary" in response.headers:
                response.vary.add("Cookie")
            else:
                response.headers["Vary"] = "Cookie"  # without parsing a header not there

    def get_cookie_secure(self, app: Flask) -> bool:
        return request.is_secure or super().get_cookie_secure(app)


def read_body(limit: int) -> bytes:
    """The request's body, refused (413) past ``limit`` bytes. A body with a length is
    refused before it is read; a chunked one, which has none, is read to one byte past
    the limit to tell (werkzeug stops reading at a limit without saying so, which would
    hand on a body cut short)."""
    request.max_content_length = limit + 1
    body = request.get_data(cache=True)
    if len(body) > limit:
        raise RequestEntityTooLarge(f"The body is over the {limit:,} bytes this path takes.")
    return body


def bound_form_bodies():
    """Before the CSRF check parses a form: read a chunked body to its bound, then raise
    the limits for a ``wide_form`` view. The API's JSON endpoints bound their bodies
    themselves, with their own limits, and have no forms: nothing to do for them."""
    if request.path.startswith("/api/"):
        return
    chunked = (
        request.content_length is None
        and "chunked" in request.headers.get("Transfer-Encoding", "").lower()
    )
    if chunked:
        read_body(MAX_BODY_BYTES)
    view = current_app.view_functions.get(request.endpoint)
    setting = getattr(view, "form_limit_setting", None)
    if setting is not None:
        limit = current_app.config[setting] * 3 + MAX_FORM_FIELD_BYTES  # %-escaped in transit
        request.max_content_length = limit
        request.max_form_memory_size = limit


def wide_form(setting: str):
    """Let a view's form take a body up to the bytes in config ``setting`` (plus room for
    the form's other fields) instead of MAX_BODY_BYTES, so that the view itself can say
    what is too large; used by the form that edits a job's payload."""

    def mark(view):
        view.form_limit_setting = setting
        return view

    return mark


def add_headers(response):
    """Security headers on every response, no caching of anything but static files, and
    flask-login's remember cookie Secure over HTTPS."""
    present = {name.lower() for name, _ in response.headers.items()}
    for name, value in STATIC_HEADERS if request.endpoint == "static" else PAGE_HEADERS:
        if name.lower() not in present:  # one pass: setdefault scans the headers each time
            response.headers.add(name, value)
    if request.is_secure:
        cookies = response.headers.getlist("Set-Cookie")
        response.headers.remove("Set-Cookie")
        for cookie in cookies:
            secure = "; secure" in cookie.lower()
            response.headers.add("Set-Cookie", cookie if secure else f"{cookie}; Secure")
    return response


def init_app(app: Flask) -> None:
    """CSRF on every form, headers on every response, bounded bodies, and the proxy
    headers we trust."""
    app.config.update(
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        REMEMBER_COOKIE_HTTPONLY=True,
        REMEMBER_COOKIE_SAMESITE="Lax",
        WTF_CSRF_TIME_LIMIT=None,  # tied to the session instead of the clock
        MAX_CONTENT_LENGTH=MAX_BODY_BYTES,
        MAX_FORM_MEMORY_SIZE=MAX_FORM_FIELD_BYTES,
        MAX_FORM_PARTS=MAX_FORM_PARTS,
    )
    app.json = JSONProvider(app)
    app.session_interface = SessionInterface()
    app.before_request(bound_form_bodies)  # before the CSRF check parses the form
    csrf.init_app(app)
    # Registered before flask-login's hook, so it runs after it and sees its cookie.
    app.after_request(add_headers)
    proxies = app.config["TRUSTED_PROXIES"]
    if proxies:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=proxies, x_proto=proxies, x_host=proxies)
