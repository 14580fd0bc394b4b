"""gunicorn's gthread worker, answering what never reaches the app as the app would.

gunicorn answers a request it cannot parse, or one past its limits (``limit_request_*`` in
webapp/gunicorn_conf.py), itself, before Flask sees it. This worker gives those answers
the app's security headers, ``Cache-Control: no-store`` and the app's error shape: JSON
``{error, message}`` under /api or when the client accepts JSON, plain text otherwise.

It looks at the start of each request without consuming it (``MSG_PEEK``) when its main
loop hands a readable connection to the thread pool, and keeps those bytes for the thread
that may have to refuse the request. So a new connection waits for its first bytes on the
main loop, not in a thread as gthread lets it (gthread moves it back to the main loop
after 5 s anyway). Connections over TLS (gunicorn's ``certfile``) are passed on
untouched: their bytes mean nothing before the handshake.
"""

import json
import re
import selectors
import socket
import ssl
import threading
import time
from datetime import timedelta
from functools import partial
from urllib.parse import unquote, urlsplit

from gunicorn import util
from gunicorn.http import errors as http
from gunicorn.http.message import Request
from gunicorn.http.wsgi import Response, default_environ
from gunicorn.workers import gthread
from werkzeug.exceptions import HTTPException, default_exceptions

from webapp import errors, security

# The most of a request the main loop looks at: enough for its path and Accept header.
PEEK_BYTES = 8192

# What gunicorn refuses, with the status it gives each refusal (workers/base.py,
# handle_error) and what to tell the client (None: the status's usual description).
REFUSALS = (
    (
        http.LimitRequestLine,
        414,
        "The request line is longer than the {cfg.limit_request_line} bytes this server accepts.",
    ),
    (http.LimitRequestHeaders, 431, None),  # which limit: HEADER_LIMITS
    (
        (http.InvalidRequestLine, http.InvalidRequestMethod, http.InvalidHTTPVersion),
        400,
        "The request line is malformed.",
    ),
    (
        (http.InvalidHeader, http.InvalidHeaderName, http.ObsoleteFolding),
        400,
        "A header field is malformed.",
    ),
    (
        (http.InvalidChunkSize, http.ChunkMissingTerminator, http.InvalidChunkExtension),
        400,
        "The chunked request body is malformed.",
    ),
    (
        (http.InvalidSchemeHeaders, http.InvalidProxyLine, http.InvalidProxyHeader),
        400,
        None,
    ),
    (http.InvalidH2CPreface, 400, None),
    ((http.ForbiddenProxyRequest, ssl.SSLError), 403, None),
    (http.ExpectationFailed, 417, None),
    (http.UnsupportedTransferCoding, 501, "The request's transfer coding is not supported."),
    (http.ConfigurationProblem, 500, None),
)
# gunicorn tells its header limits apart by message only.
HEADER_LIMITS = {
    "limit request headers fields": "The request has more than the {cfg.limit_request_fields}"
    " header fields this server accepts.",
    "limit request headers fields size": "A header field is longer than the"
    " {cfg.limit_request_field_size} bytes this server accepts.",
}

ACCEPTS_JSON = re.compile(rb"^accept[ \t]*:[^\r\n]*[/+]json", re.IGNORECASE | re.MULTILINE)


def refusal(exc: BaseException, cfg) -> tuple[int, str | None] | None:
    """The status and message for a request gunicorn refused; None for anything else."""
    if isinstance(exc, (http.InvalidResponseHeader, http.InvalidResponseHeaderName)):
        return None  # a header the app tried to send: the app's fault, a 500
    for classes, status, message in REFUSALS:
        if isinstance(exc, classes):
            if isinstance(exc, http.LimitRequestHeaders):
                message = HEADER_LIMITS.get(str(exc))
            return status, message and message.format(cfg=cfg)
    return None


def request_path(head: bytes) -> str | None:
    """The path the request line in ``head`` names, as far as it arrived."""
    line = re.split(rb"\r?\n", head.removeprefix(b"\r\n"), maxsplit=1)[0]
    parts = line.split(b" ")
    if len(parts) < 2:
        return None
    try:  # origin form (/api/v1/jobs?x) or absolute form (http://host/api/v1/jobs)
        return unquote(urlsplit(parts[1].decode("latin-1")).path)
    except ValueError:
        return None


def wants_json(head: bytes) -> bool:
    """JSON for /api paths, as the app decides (errors.wants_json), or when the client
    accepts JSON."""
    path = request_path(head) or ""
    under_api = path == "/api" or path.startswith("/api/")
    return under_api or ACCEPTS_JSON.search(head) is not None


def error_answer(status: int, message: str | None, head: bytes) -> tuple[HTTPException, bytes]:
    """The error and the whole HTTP answer for it: the app's headers and error shape."""
    error = default_exceptions[status](message)
    if wants_json(head):
        content_type, text = "application/json", json.dumps(errors.json_body(error))
    else:
        content_type = "text/plain; charset=utf-8"
        text = f"{error.code} {error.name}: {error.description}\n"
    body = text.encode()
    headers = {
        "Date": util.http_date(),
        "Connection": "close",
        "Content-Type": content_type,
        "Content-Length": str(len(body)),
        **security.NO_STORE,
        **security.HEADERS,
    }
    lines = [f"HTTP/1.1 {error.code} {error.name}", *(f"{k}: {v}" for k, v in headers.items())]
    return error, ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def peek(sock: socket.socket) -> bytes | None:
    """What the socket holds, left in place: None when nothing has arrived yet, ``b""``
    at its end or on an error (the thread that reads it will find out which)."""
    try:
        return sock.recv(PEEK_BYTES, socket.MSG_PEEK | socket.MSG_DONTWAIT)
    except BlockingIOError:
        return None
    except OSError:
        return b""


class ThreadWorker(gthread.ThreadWorker):
    """gunicorn's gthread worker, refusing requests in the app's shape."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.current = threading.local()  # the start of the request this thread serves

    def enqueue_req(self, conn):
        """Keep the start of the request before a thread reads it; a new connection with
        nothing to read yet waits on the main loop instead."""
        if self.cfg.is_ssl or conn.is_http2:
            return super().enqueue_req(conn)
        unreader = getattr(conn.parser, "unreader", None)
        buffered = unreader.buf.getvalue() if unreader is not None else b""
        received = peek(conn.sock)
        if received is None and not buffered and not conn.initialized and self.cfg.keepalive:
            return self.wait_for_request(conn)
        conn.head = buffered + (received or b"")
        return super().enqueue_req(conn)

    def wait_for_request(self, conn):
        """Watch a new connection on the main loop until it has something to read, for as
        long as a kept-alive one (gthread's own way with a connection whose thread waited
        for it in vain, in ``finish_request``)."""
        conn.sock.setblocking(False)
        conn.timeout = time.monotonic() + self.cfg.keepalive
        self.pending_conns.append(conn)
        readable = partial(self.on_pending_socket_readable, conn)
        self.poller.register(conn.sock, selectors.EVENT_READ, readable)

    def handle(self, conn):
        """Serve one request in a thread, with its start at hand for handle_error."""
        self.current.head = getattr(conn, "head", b"")
        self.current.answered = False
        return super().handle(conn)

    def handle_request(self, req, conn):
        """Run the app on a request; once it is answered, no error answer may follow."""
        keep_alive = super().handle_request(req, conn)
        self.current.answered = True
        return keep_alive

    def handle_error(self, req, client, addr, exc):
        """Answer what gunicorn refuses as the app answers its own errors. Anything else is
        a 500, logged with its traceback, as gunicorn does."""
        addr = addr or ("", -1)  # a unix socket
        refused = refusal(exc, self.cfg)
        if refused is None:
            method, uri = getattr(req, "method", None), getattr(req, "uri", "(no URI read)")
            self.log.exception("Error handling request %s %s", method or "", uri)
            refused = 500, None
        else:
            self.log.warning("Invalid request from ip=%s: %s", addr[0], exc)
        if getattr(self.current, "answered", False):
            return  # a body the app left unread, which gunicorn could not drain: just close
        if req is None and isinstance(getattr(exc, "req", None), Request):
            req = exc.req  # a header gunicorn refused after parsing the rest, for the access log
        error, answer = error_answer(*refused, getattr(self.current, "head", b""))
        if req is not None:
            self.log_refusal(req, client, addr, error, answer)
        try:
            util.write_nonblock(client, answer)
        except Exception:
            self.log.debug("Failed to send error message.")

    def log_refusal(self, req, client, addr, error: HTTPException, answer: bytes) -> None:
        """An access log line for a refused request, as gunicorn writes one."""
        environ = default_environ(req, client, self.cfg)
        environ["REMOTE_ADDR"], environ["REMOTE_PORT"] = addr[0], str(addr[1])
        response = Response(req, client, self.cfg)
        response.status = f"{error.code} {error.name}"
        response.sent = len(answer) - answer.index(b"\r\n\r\n") - 4
        self.log.access(response, req, environ, timedelta(0))
