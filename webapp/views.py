"""The HTML home page; the admin pages are in webapp/admin/."""

from flask import Blueprint, render_template

from webapp.forms import LogoutForm

bp = Blueprint("views", __name__)


@bp.app_context_processor
def layout_values() -> dict:
    """Values every page's layout needs: the sign-out form (a POST with its CSRF token).
    It never reads the request's own form, which may be what an error page refuses."""
    return {"logout_form": LogoutForm(formdata=None)}


@bp.get("/")
def index():
    """A landing page that points at the API and the health endpoints."""
    return render_template("index.html")
