"""The HTML home page; the admin pages arrive in webapp/admin/."""

from flask import Blueprint, render_template

bp = Blueprint("views", __name__)


@bp.get("/")
def index():
    """A landing page that points at the API and the health endpoints."""
    return render_template("index.html")
