"""Log lines for every process: JSON objects (production) or text (development), each
carrying the context it was logged in.

The context (a request's id and organization, a job's id, task, organization and
attempt) lives in one ``ContextVar``: the web binds it around each request, the worker
inside each job's asyncio task, which has a context of its own. A filter on the handler
copies it onto each record that is written; a record below the level is never built,
so binding costs a job or a request one small dict and nothing is formatted.
"""

import contextvars
import logging
import re
import sys
import threading
import uuid

from pythonjsonlogger.json import JsonFormatter as BaseJsonFormatter

_context: contextvars.ContextVar[dict | None] = contextvars.ContextVar(
    "howdah_log_context", default=None
)
# The process's own fields (the worker's name and id), on every line it writes.
_process_fields: dict = {}

# Context fields, in the order the text format shows them, with their short names there.
TEXT_FIELDS = (
    ("request_id", "req"),
    ("organization_id", "org"),
    ("job_id", "job"),
    ("task", "task"),
    ("attempt", "attempt"),
)
# What the JSON lines call the record's own attributes.
JSON_NAMES = {"levelname": "level", "name": "logger", "process": "pid", "exc_info": "traceback"}

# Characters JSON leaves unescaped that some readers take for line ends (str.splitlines,
# JavaScript before ES2019): escaped, so one event stays one line for every reader.
LINE_BREAKS = ("\u0085", "\u2028", "\u2029")
ESCAPED_LINE_BREAKS = str.maketrans({char: f"\\u{ord(char):04x}" for char in LINE_BREAKS})

REQUEST_ID_MAX = 128
REQUEST_ID = re.compile(rf"[A-Za-z0-9._-]{{1,{REQUEST_ID_MAX}}}")
REQUEST_ID_HEADER = "X-Request-ID"
REQUEST_ID_ENVIRON = "HTTP_X_REQUEST_ID"  # the header, as WSGI names it


def bind(**fields) -> contextvars.Token:
    """Add ``fields`` to the context of every line logged from here on in this context."""
    return _context.set({**(_context.get() or {}), **fields})


def reset(token: contextvars.Token) -> None:
    """Put the context back as it was before the ``bind`` that gave ``token``."""
    _context.reset(token)


def current(name: str):
    """The context's field ``name`` (None when unbound)."""
    return (_context.get() or {}).get(name)


def bind_process(**fields) -> None:
    """Fields on every line this process writes from now on (its worker's name or id)."""
    _process_fields.update(fields)


def request_id(sent: str | None) -> str:
    """The id a client sent, when it is short and plain enough to log and echo (at most
    128 of letters, digits, ``.``, ``_`` and ``-``); else a new one."""
    if sent and REQUEST_ID.fullmatch(sent):
        return sent
    return uuid.uuid4().hex


class ContextFilter(logging.Filter):
    """Copies the context onto each record a handler writes; a field the call passed in
    ``extra`` wins."""

    def filter(self, record: logging.LogRecord) -> bool:
        fields = record.__dict__
        for name, value in (_context.get() or {}).items():
            fields.setdefault(name, value)
        for name, value in _process_fields.items():
            fields.setdefault(name, value)
        return True


class JsonFormatter(BaseJsonFormatter):
    """One JSON object a line: time (ISO 8601, UTC), level, logger, message, then the
    context and whatever ``extra`` the call passed; a traceback is a field, not lines."""

    def __init__(self):
        super().__init__(
            "%(levelname)s %(name)s %(process)d %(message)s",
            rename_fields=JSON_NAMES,
            timestamp="time",
            json_ensure_ascii=False,
        )

    def add_fields(self, log_data: dict, record: logging.LogRecord, message_dict: dict) -> None:
        """The time first, for a reader's eye."""
        log_data["time"] = None
        super().add_fields(log_data, record, message_dict)

    def jsonify_log_record(self, log_data) -> str:
        """The line, with the characters some readers split lines at escaped."""
        line = super().jsonify_log_record(log_data)
        if any(char in line for char in LINE_BREAKS):
            return line.translate(ESCAPED_LINE_BREAKS)
        return line


class TextFormatter(logging.Formatter):
    """``time LEVEL [pid] logger: [req=… org=…] message``: the context compactly."""

    def __init__(self, several: bool = False):
        pid = " [%(process)d]" if several else ""
        super().__init__(f"%(asctime)s %(levelname)s{pid} %(name)s: %(context)s%(message)s")

    def formatMessage(self, record: logging.LogRecord) -> str:
        fields = record.__dict__
        shown = [f"{short}={fields[name]}" for name, short in TEXT_FIELDS if name in fields]
        record.context = f"[{' '.join(shown)}] " if shown else ""
        return super().formatMessage(record)


def formatter(log_format: str, several: bool = False) -> logging.Formatter:
    """The formatter of ``LOG_FORMAT``; ``several`` processes share the output (text
    lines then name their process; JSON lines always do)."""
    return JsonFormatter() if log_format == "json" else TextFormatter(several)


def handler(log_format: str, stream=None, several: bool = False) -> logging.Handler:
    """A stream handler (stderr by default) writing ``log_format`` lines with context."""
    result = logging.StreamHandler(stream)
    result.setFormatter(formatter(log_format, several))
    result.addFilter(ContextFilter())
    result._howdah = True
    return result


def configure(level: str, log_format: str, several: bool = False) -> None:
    """Send every logger's lines to stderr in ``log_format`` at ``level``. Run again, it
    replaces its own handler (an app built twice in one process logs each line once).
    Like ``logging.basicConfig``, it leaves alone a process whose logging something else
    set up (a test runner capturing it, an embedding program)."""
    root = logging.getLogger()
    if any(not getattr(h, "_howdah", False) for h in root.handlers):
        return
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler(log_format, several=several))
    root.setLevel(level)
    logging.captureWarnings(True)
    if log_format == "json":
        # An uncaught exception would print its traceback over many lines.
        sys.excepthook = log_uncaught
        threading.excepthook = log_uncaught_in_thread


class RequestIds:
    """WSGI middleware: binds each request's id (``request_id``) for the lines logged while
    it is served, and echoes it in the answer's ``X-Request-ID``. Around the whole app,
    rather than in Flask hooks, it covers every answer (errors and other hooks' answers
    included) and binds the id before the first hook runs."""

    def __init__(self, wsgi_app):
        self.wsgi_app = wsgi_app

    def __call__(self, environ, start_response):
        value = request_id(environ.get(REQUEST_ID_ENVIRON))

        def start(status, headers, exc_info=None):
            headers.append((REQUEST_ID_HEADER, value))
            return start_response(status, headers, exc_info)

        token = bind(request_id=value)
        try:
            return self.wsgi_app(environ, start)
        finally:
            reset(token)


def init_app(app) -> None:
    """Configure the web process's logging from the app's settings, and give each request
    an id."""
    configure(app.config["LOG_LEVEL"], app.config["LOG_FORMAT"])
    app.wsgi_app = RequestIds(app.wsgi_app)


def log_uncaught(kind, value, tb) -> None:
    """An exception nothing caught, as one line."""
    if issubclass(kind, KeyboardInterrupt):
        sys.__excepthook__(kind, value, tb)
        return
    logging.getLogger("howdah").critical("uncaught exception", exc_info=(kind, value, tb))


def log_uncaught_in_thread(args: threading.ExceptHookArgs) -> None:
    """An exception that ended a thread, as one line."""
    if args.exc_type is SystemExit:
        return
    logging.getLogger("howdah").critical(
        "uncaught exception in thread %s",
        args.thread.name if args.thread else "?",
        exc_info=(args.exc_type, args.exc_value, args.exc_traceback),
    )
