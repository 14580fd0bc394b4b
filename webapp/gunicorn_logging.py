"""gunicorn's error and access logs in ``LOG_FORMAT``, like every other line of Howdah's.

gunicorn keeps its own loggers (``gunicorn.error``, ``gunicorn.access``), which do not
reach the root logger; this class gives their handlers Howdah's formatter and context,
and configures the root logger of the master (the workers' apps do it again). The
access line is fields, not Apache's combined format: the path without its query string
(where a client might put a secret), and no headers but the user agent.
"""

import os

from gunicorn import glogging

from webapp import logs
from webapp.config import parse_log_format, parse_log_level


class Logger(glogging.Logger):
    """gunicorn's logger, writing Howdah's lines."""

    def setup(self, cfg):
        """gunicorn's handlers, then Howdah's formatter and context on them."""
        super().setup(cfg)
        log_format = parse_log_format(os.environ)
        logs.configure(parse_log_level(os.environ), log_format)
        for log in (self.error_log, self.access_log):
            for handler in log.handlers:
                handler.setFormatter(logs.formatter(log_format))
                handler.addFilter(logs.ContextFilter())

    def access(self, resp, req, environ, request_time):
        """One line per answered request: method, path, status, size, time and its id."""
        if not self.access_log_enabled:
            return
        status = str(resp.status).split(" ", 1)[0]
        remote_addr, user_agent = (environ.get(key) for key in ("REMOTE_ADDR", "HTTP_USER_AGENT"))
        request_id = next(
            (value for name, value in resp.headers if name.lower() == "x-request-id"), None
        )
        self.access_log.info(
            "%s %s %s",
            req.method,
            req.path,
            status,
            extra={
                "action": "request",
                "method": req.method,
                "path": req.path,
                "status": int(status) if status.isdigit() else status,
                "bytes": getattr(resp, "sent", None),
                "duration_ms": round(request_time.total_seconds() * 1000, 3),
                "remote_addr": remote_addr,
                "user_agent": user_agent,
                "request_id": request_id,
            },
        )
