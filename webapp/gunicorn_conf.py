"""gunicorn settings for the web process (Procfile ``web``).

A module of the package, not a file beside it, so an installed Howdah serves from any
directory: ``gunicorn -c python:webapp.gunicorn_conf "webapp:create_app()"``. gunicorn
reads these names when it loads the module; nothing here opens the database.
"""

import os

from webapp import db
from webapp.config import parse_bool, parse_int, parse_log_level, web_settings

bind = f"0.0.0.0:{parse_int(os.environ, 'PORT', 8000, minimum=1)}"
workers = parse_int(os.environ, "WEB_CONCURRENCY", 2 * (os.cpu_count() or 1), minimum=1)
# Threads overlap the time a request waits on PostgreSQL, and gthread keeps
# client connections alive (the sync worker closes each one). Ours answers the requests
# gunicorn refuses with the app's headers and error shape.
worker_class = "webapp.gunicorn_worker.ThreadWorker"
threads = parse_int(os.environ, "WEB_THREADS", 4, minimum=1)
timeout = parse_int(os.environ, "WEB_TIMEOUT", 30, minimum=1)
graceful_timeout = timeout
keepalive = 5
# What gunicorn parses before the app sees a request (past them: 414, 431). URLs here are
# short (ids, filters, a cursor): 4 KiB is gunicorn's default and plenty. A header field
# may be 8 KiB, room for a browser's cookies; 50 fields is three times what a browser
# behind two proxies sends, and bounds what gunicorn buffers for one request's head.
limit_request_line = 4094
limit_request_fields = 50
limit_request_field_size = 8190
# Off by default: the router or load balancer in front logs requests, and
# gunicorn's access log cost about 15 % of API throughput in bench/.
accesslog = "-" if parse_bool(os.environ, "WEB_ACCESS_LOG", False) else None
# Its own lines in LOG_FORMAT, at LOG_LEVEL, like the app's (README: Logs).
logger_class = "webapp.gunicorn_logging.Logger"
loglevel = parse_log_level(os.environ).lower()
# No runtime control interface: nothing outside the process manager steers it.
control_socket_disable = True
# The app (and so its pool) is built in each worker after fork, never in the master.
preload_app = False


def on_starting(server):
    """Check the settings once in the master: a bad one stops start-up with one line,
    instead of every worker failing to boot in a loop."""
    web_settings(os.environ)


def post_worker_init(worker):
    """Open this worker's database pool before it takes its first request."""
    db.get_db(worker.wsgi).open()


def worker_exit(server, worker):
    """Close this worker's pool on the way out."""
    if getattr(worker, "wsgi", None) is not None:
        db.get_db(worker.wsgi).close()
