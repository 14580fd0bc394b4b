"""Liveness and readiness probes, open to load balancers and orchestrators."""

import logging

from flask import Blueprint

from webapp import db, monitoring

log = logging.getLogger(__name__)

bp = Blueprint("health", __name__)

# gunicorn's worker answers a plain GET or HEAD of it on its main loop, with the answer
# this route gave when the worker booted (webapp/gunicorn_worker.py): keep it constant.
LIVENESS_PATH = "/healthz"


@bp.get(LIVENESS_PATH)
def liveness():
    """200 while the process serves requests; touches nothing else."""
    return {"status": "ok"}


@bp.get("/readyz")
def readiness():
    """200 when the database answers and migrations are current, else 503 with a reason."""
    try:
        result = monitoring.readiness(db.get_conn())
    except db.UNAVAILABLE_ERRORS as exc:
        log.warning("readiness: database unreachable: %s", exc, extra={"action": "readyz"})
        result = monitoring.Readiness(False, "database unreachable")
    if result.ready:
        return {"status": "ready"}
    return {"status": "unavailable", "reason": result.reason}, 503
