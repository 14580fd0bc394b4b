"""The JSON API blueprint, mounted at /api; every error under it is JSON."""

from flask import Blueprint

from webapp import auth
from webapp.api import params

bp = Blueprint("api", __name__, url_prefix="/api")
bp.before_request(auth.require_api_access)
# Recorded before the routes, so the app knows ``<id:...>`` when they are added.
bp.record(lambda state: state.app.url_map.converters.setdefault("id", params.IdConverter))

from webapp.api import (  # noqa: E402, F401 - register routes
    admin,
    audit,
    jobs,
    openapi,
    subscriptions,
    tasks,
)
