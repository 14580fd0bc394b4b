"""gunicorn's gthread worker, answering what must not wait for the app as the app would.

A plain ``GET`` or ``HEAD /healthz`` is answered on the worker's main loop, before it
would be queued for a thread, with the answer the Flask route gave when the worker booted:
liveness never waits for a free thread, though every thread may wait on PostgreSQL.

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

import gunicorn
from gunicorn import util
from gunicorn.http import errors as http
from gunicorn.http.message import Request
from gunicorn.http.wsgi import Response, default_environ
from gunicorn.workers import gthread
from werkzeug.exceptions import HTTPException, default_exceptions
from werkzeug.test import Client

from webapp import errors, health, logs, security

# The most of a request the main loop looks at: a liveness probe's whole head, and
# enough of any other for its path and Accept header.
PEEK_BYTES = 8192
# How much longer than the keep-alive time a request head may take to arrive in full.
HEAD_GRACE = 5.0

PROBE_LINE = re.compile(
    rb"(GET|HEAD) %s HTTP/1\.([01])\r\n" % re.escape(health.LIVENESS_PATH.encode())
)
FIELD = re.compile(rb"([!#$%&'*+.^_`|~0-9A-Za-z-]+):[ \t]*([\t\x20-\x7e\x80-\xff]*?)[ \t]*")
# Fields that make a request more than a probe: a body, an upgrade or an expectation,
# or a cookie, which the app might answer with one of its own.
NOT_A_PROBE = {b"content-length", b"transfer-encoding", b"upgrade", b"expect", b"cookie"}

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

SENT_REQUEST_ID = re.compile(
    rb"^x-request-id[ \t]*:[ \t]*([!-~]*)[ \t]*\r?$", re.IGNORECASE | re.MULTILINE
)
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
    """JSON for the API's and the webhooks' paths, as the app decides
    (errors.wants_json), or when the client accepts JSON."""
    return errors.json_path(request_path(head) or "") or ACCEPTS_JSON.search(head) is not None


def request_id(head: bytes) -> str:
    """The id of the request that starts with ``head``: the one it sent, if the app
    would keep it (``logs.request_id``), or a new one."""
    sent = SENT_REQUEST_ID.search(head)
    return logs.request_id(sent[1].decode("ascii") if sent else None)


def error_answer(
    status: int, message: str | None, head: bytes, request_id: str
) -> tuple[HTTPException, bytes]:
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
        logs.REQUEST_ID_HEADER: request_id,
    }
    lines = [f"HTTP/1.1 {error.code} {error.name}", *(f"{k}: {v}" for k, v in headers.items())]
    return error, ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def liveness_probe(head: bytes, max_fields: int) -> tuple[bytes, bytes, bool, int] | None:
    """``(method, HTTP minor version, keep-alive, length)`` when ``head`` starts with a
    whole, plain ``GET`` or ``HEAD /healthz``; None for anything else, which gunicorn's
    parser and the app then take as usual."""
    line = PROBE_LINE.match(head)
    end = head.find(b"\r\n\r\n", line.end() - 2) if line else -1
    if end < 0:
        return None
    fields = head[line.end() : end + 2].split(b"\r\n")[:-1]
    if len(fields) > max_fields:
        return None
    keep_alive = line[2] == b"1"
    for field in fields:
        match = FIELD.fullmatch(field)
        if match is None:
            return None
        name, value = match[1].lower(), match[2].lower()
        if name in NOT_A_PROBE and (name, value) != (b"content-length", b"0"):
            return None
        if name == b"connection":
            tokens = {token.strip() for token in value.split(b",")}
            keep_alive = b"close" not in tokens and (keep_alive or b"keep-alive" in tokens)
    return line[1], line[2], keep_alive, end + 4


class Liveness:
    """The app's answer to ``GET /healthz``, recorded when the worker boots."""

    def __init__(self, status: str, headers: list[tuple[str, str]], body: bytes):
        self.status, self.headers, self.body = status, headers, body

    @classmethod
    def record(cls, app, log) -> "Liveness | None":
        """Ask the app once; None (threads answer probes) if it does not say 200."""
        try:
            response = Client(app).get(health.LIVENESS_PATH)
        except Exception:
            log.exception("GET %s failed at boot; request threads answer it", health.LIVENESS_PATH)
            return None
        if response.status_code != 200:
            log.warning("GET %s answered %s at boot", health.LIVENESS_PATH, response.status)
            return None
        del response.headers[logs.REQUEST_ID_HEADER]  # each answer has its own
        return cls(response.status, response.headers.to_wsgi_list(), response.get_data())

    def answer(self, method: bytes, minor: bytes, keep_alive: bool, request_id: str) -> bytes:
        """The recorded answer, with the headers gunicorn adds to every answer and the
        request's id."""
        lines = [
            f"HTTP/1.{minor.decode()} {self.status}",
            f"Server: {gunicorn.SERVER}",
            f"Date: {util.http_date()}",
            f"Connection: {'keep-alive' if keep_alive else 'close'}",
            f"{logs.REQUEST_ID_HEADER}: {request_id}",
            *(f"{name}: {value}" for name, value in self.headers),
        ]
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        return head if method == b"HEAD" else head + self.body


def head_unfinished(received: bytes) -> bool:
    """Whether ``received`` is the start of a request head that has not ended yet. A head
    longer than what is peeked goes to a thread as it is: gunicorn reads it there."""
    return len(received) < PEEK_BYTES and b"\r\n\r\n" not in received and b"\n\n" not in received


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
    """gunicorn's gthread worker, answering liveness probes on its main loop and refusing
    requests in the app's shape."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.liveness: Liveness | None = None
        self.current = threading.local()  # the start of the request this thread serves

    def load_wsgi(self):
        """Load the app, then record its answer to a liveness probe."""
        super().load_wsgi()
        self.liveness = Liveness.record(self.wsgi, self.log)

    def enqueue_req(self, conn):
        """Answer a liveness probe here, or keep the start of the request before a thread
        reads it. A new connection with nothing to read yet waits on the main loop."""
        if self.cfg.is_ssl or conn.is_http2:
            return super().enqueue_req(conn)
        unreader = getattr(conn.parser, "unreader", None)
        buffered = unreader.buf.getvalue() if unreader is not None else b""
        received = peek(conn.sock)
        if received is None and not buffered and not conn.initialized and self.cfg.keepalive:
            return self.wait_for_request(conn)
        if received and not buffered and self.answer_liveness(conn, received):
            return None
        if received and not buffered and head_unfinished(received) and self.cfg.keepalive:
            return self.wait_for_head(conn)
        conn.head = buffered + (received or b"")
        return super().enqueue_req(conn)

    def answer_liveness(self, conn, received: bytes) -> bool:
        """Answer a liveness probe on the main loop; False when it is not one."""
        probe = liveness_probe(received, self.cfg.limit_request_fields)
        if probe is None or self.liveness is None:
            return False
        method, minor, keep_alive, length = probe
        room = len(self.keepalived_conns) < self.max_keepalived
        keep_alive = keep_alive and self.alive and self.cfg.keepalive > 0 and room
        answer = self.liveness.answer(method, minor, keep_alive, request_id(received[:length]))
        try:
            conn.sock.recv(length, socket.MSG_DONTWAIT)  # the probe, peeked already
            sent = conn.sock.send(answer, socket.MSG_DONTWAIT)
        except OSError:
            sent = 0
        if keep_alive and sent == len(answer):
            self.keep_alive(conn)
        else:
            # Not gthread's graceful close, which may wait 2 s for the client on this loop:
            # the probe was read whole, so closing sends no reset unless the client sent
            # more after saying it would not.
            self.nr_conns -= 1
            conn.close()
        return True

    def keep_alive(self, conn):
        """Watch an answered connection for its next request, as gthread does."""
        conn.sock.setblocking(False)
        conn.set_timeout()
        self.keepalived_conns.append(conn)
        readable = partial(self.on_client_socket_readable, conn)
        self.poller.register(conn.sock, selectors.EVENT_READ, readable)

    def wait_for_head(self, conn):
        """Watch a connection whose request head has begun but not ended on the main loop,
        until it ends or its time is up (then it is closed): a client sending its head a
        byte at a time must not hold a request thread. The time runs from the first wait
        and is not renewed by the bytes that trickle in."""
        if getattr(conn, "head_deadline", None) is None:
            conn.head_deadline = time.monotonic() + self.cfg.keepalive + HEAD_GRACE
        conn.sock.setblocking(False)
        conn.timeout = conn.head_deadline
        self.pending_conns.append(conn)
        readable = partial(self.on_pending_socket_readable, conn)
        self.poller.register(conn.sock, selectors.EVENT_READ, readable)

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
        head = getattr(self.current, "head", b"")
        token = logs.bind(request_id=request_id(head))
        try:
            self.refuse(req, client, addr, exc, head)
        finally:
            logs.reset(token)

    def refuse(self, req, client, addr, exc, head: bytes) -> None:
        """``handle_error``'s work, with the request's id bound for its log lines."""
        refused = refusal(exc, self.cfg)
        if refused is None:
            # The path, not the URI: a query string may hold what a client should not send.
            method, path = getattr(req, "method", None), getattr(req, "path", "(no path read)")
            self.log.exception("Error handling request %s %s", method or "", path)
            refused = 500, None
        else:
            # The refusal's kind, not gunicorn's message, which quotes the offending line
            # (a malformed Authorization header, a request line with its query string).
            self.log.warning("Invalid request from ip=%s: %s", addr[0], type(exc).__name__)
        if getattr(self.current, "answered", False):
            return  # a body the app left unread, which gunicorn could not drain: just close
        if req is None and isinstance(getattr(exc, "req", None), Request):
            req = exc.req  # a header gunicorn refused after parsing the rest, for the access log
        error, answer = error_answer(*refused, head, logs.current("request_id"))
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
        response.headers = [(logs.REQUEST_ID_HEADER, logs.current("request_id"))]
        response.sent = len(answer) - answer.index(b"\r\n\r\n") - 4
        self.log.access(response, req, environ, timedelta(0))
