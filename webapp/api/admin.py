"""Platform-wide status endpoints under /api/admin."""

import logging

from flask import current_app

from webapp import db, monitoring
from webapp.api import bp
from webapp.api.documents import PlatformStatus, PlatformUnavailable, QueueHealth, respond
from webapp.queue import get_queue

log = logging.getLogger(__name__)


@bp.get("/admin/status")
def get_status():
    """Database, workers and versions; 503 (same shape) when the database is unreachable."""
    try:
        conn = db.get_conn()
        database = monitoring.database_status(conn)
        workers = monitoring.worker_status(conn, current_app.config["WORKER_STALE_SECONDS"])
    except db.UNAVAILABLE_ERRORS as exc:
        log.warning("status: database unreachable: %s", exc, extra={"action": "admin_status"})
        return respond(unreachable(), 503)
    status = {
        "database": database,
        "workers": workers,
        "versions": monitoring.versions(database["server_version"]),
    }
    return respond(PlatformStatus.model_validate(status))


def unreachable() -> PlatformUnavailable:
    """The status when the database does not answer."""
    return PlatformUnavailable.model_validate(
        {
            "error": "Service Unavailable",
            "message": "database unreachable",
            "database": {"reachable": False, "server_version": None, "pending_migrations": None},
            "workers": None,
            "versions": monitoring.versions(None),
        }
    )


@bp.get("/admin/queues/health")
def get_queues_health():
    """Per-queue counts, oldest waiting job and a healthy flag: 200 if all healthy, else 503."""
    health = QueueHealth.model_validate(get_queue().health())
    return respond(health, 200 if health.healthy else 503)
