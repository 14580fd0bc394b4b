"""The JSON API blueprint, mounted at /api; every error under it is JSON."""

from flask import Blueprint

from webapp import auth

bp = Blueprint("api", __name__, url_prefix="/api")
bp.before_request(auth.require_api_access)

from webapp.api import admin, audit, jobs, openapi, tasks  # noqa: E402, F401 - register routes
