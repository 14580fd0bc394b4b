"""The job list: every job in scope, newest first, filtered, a page at a time."""

from urllib.parse import urlencode

from flask import current_app, redirect, render_template, request

from webapp import bulk, db
from webapp.admin import bp, job_filters, scope
from webapp.admin.layout import admin_url
from webapp.api import params
from webapp.store import job_search

PAGE = 50
JUMP_MATCHES = PAGE


def job_url(job_id: int) -> str:
    """A job's page (its view may not be registered in every build of the blueprint)."""
    if "admin.job_detail" in current_app.view_functions:
        return admin_url("admin.job_detail", job_id=job_id)
    query = urlencode(scope.carried())
    return f"{request.script_root}{bp.url_prefix}/jobs/{job_id}" + (f"?{query}" if query else "")


def page_values(filters: job_filters.Filters, rows: list[dict], **extra) -> dict:
    """What the list's template shows, beyond the rows."""
    return {
        "filters": filters,
        "filter_args": filters.fields(),
        "queues": job_filters.queue_choices(),
        "states": job_filters.STATES,
        "task_names": job_filters.task_choices(),
        "actions": bulk.ACTIONS,
        "jobs": rows[:PAGE],
        "job_url": job_url,
        "older": rows[PAGE - 1]["id"] if len(rows) > PAGE else None,
        **extra,
    }


def jump(filters: job_filters.Filters):
    """Go to the one job ``q`` names (an id or an idempotency key), or list the matches."""
    conn = db.get_conn()
    ids = job_search.find_job_ids(
        conn, scope.organization(), params.parse_id(filters.q), filters.q, JUMP_MATCHES + 1
    )
    if len(ids) == 1:
        return redirect(job_url(ids[0]))
    matches = job_search.JobFilter(organization=scope.organization(), ids=ids)
    rows = job_search.list_jobs(conn, matches, PAGE + 1) if ids else []
    return render_template("admin/jobs/list.html", **page_values(filters, rows, jumped=True))


@bp.get("/jobs")
def job_list():
    """Jobs newest first, filtered by queue, state, task, organization and time."""
    filters = job_filters.read(request.args)
    if filters.q:
        return jump(filters)
    conn = db.get_conn()
    before = job_filters.cursor(request.args)
    rows = job_search.list_jobs(conn, job_filters.jobs_of(conn, filters, before), PAGE + 1)
    return render_template("admin/jobs/list.html", **page_values(filters, rows, before=before))
