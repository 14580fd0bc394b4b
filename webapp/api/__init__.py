"""The JSON API blueprint, mounted at /api; every error under it is JSON."""

from flask import Blueprint

bp = Blueprint("api", __name__, url_prefix="/api")

from webapp.api import admin, jobs, openapi, tasks  # noqa: E402, F401 - register routes on bp
