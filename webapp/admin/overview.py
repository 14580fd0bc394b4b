"""The overview: every queue, its counts and its pulse."""

from flask import render_template

from webapp.admin import bp


@bp.get("")
def overview():
    """Every queue with its counts by state, oldest waiting job and throughput."""
    return render_template("admin/overview.html")
