"""Actions on one job from its page: retry, cancel, abort, delete, and retry with
edited arguments. Each change commits with its audit entry, or neither does."""

from collections.abc import Callable

import psycopg
from flask import current_app, flash, redirect, render_template, request
from flask_login import current_user

from webapp import audit, db, security
from webapp.admin import bp, payloads
from webapp.admin.job_detail import actions_for, get_job_or_404
from webapp.admin.layout import admin_url
from webapp.forms import EditRetryForm
from webapp.queue import InvalidState, TaskNotAllowed, get_queue, organization_of
from webapp.store import job_detail as store

# (message, the job to show next)
Outcome = tuple[str, int | None]


def record(action: str, job: dict, **details) -> None:
    """The audit entry of an action on ``job``."""
    audit.record(
        action,
        target_type="job",
        target_id=job["id"],
        organization_id=organization_of(job["args"]),
        details=details or None,
    )


def sentence(text: str) -> str:
    """A refusal's message as a sentence."""
    return f"{text[:1].upper()}{text[1:]}."


def page_of(job_id: int | None) -> str:
    """Where to go after an action: the job's page, or the list for a job deleted."""
    if job_id is not None:
        return admin_url("admin.job_detail", job_id=job_id)
    listing = "admin.job_list" if "admin.job_list" in current_app.view_functions else None
    return admin_url(listing or "admin.overview")


def act(job_id: int, change: Callable[[dict], Outcome]):
    """Run ``change`` on the job with its audit entry in one transaction; flash, redirect."""
    job = get_job_or_404(job_id)  # the CSRF token was checked before the view
    try:
        with db.get_conn().transaction():
            message, shown = change(job)
    except (InvalidState, TaskNotAllowed) as exc:
        flash(sentence(str(exc)), "error")
        return redirect(page_of(job_id))
    flash(message, "success")
    return redirect(page_of(shown))


def retry(job: dict) -> Outcome:
    """Retry: a failed job goes back to its queue, another is deferred afresh."""
    new_id = get_queue().retry(job, platform=current_user.is_admin)
    if new_id == job["id"]:
        record("job.retry", job)
        return f"Job {job['id']} is back in its queue.", new_id
    record("job.retry", job, job_id=new_id)
    return f"Job {job['id']} was retried as job {new_id}.", new_id


def cancel(job: dict) -> Outcome:
    """Cancel a waiting job (one that started meanwhile is asked to abort)."""
    if job["status"] != "todo":
        raise InvalidState(f"only a waiting job can be cancelled; this one is {job['status']}")
    get_queue().cancel(job)
    after = get_job_or_404(job["id"])  # a worker may have taken it meanwhile
    if after["status"] == "cancelled":
        record("job.cancel", job)
        return f"Job {job['id']} was cancelled.", job["id"]
    record("job.abort", job)
    return f"Job {job['id']} had started: it was asked to abort.", job["id"]


def abort_job(job: dict) -> Outcome:
    """Ask a running job to abort."""
    if job["status"] != "doing":
        raise InvalidState(f"only a running job can be aborted; this one is {job['status']}")
    get_queue().cancel(job)
    record("job.abort", job)
    return f"Job {job['id']} was asked to abort; it stops at its next check.", job["id"]


def delete(job: dict) -> Outcome:
    """Delete a finished job with its attempts."""
    conn = db.get_conn()
    store.unlink_periodic_defer(conn, job["id"])
    status = store.delete_finished_job(conn, job["id"])
    if status is None:
        raise InvalidState("a waiting or running job cannot be deleted; cancel it first")
    record("job.delete", job, status=status, task=job["task_name"])
    return f"Job {job['id']} was deleted, with its attempts and events.", None


@bp.post("/jobs/<int:job_id>/retry")
def job_retry(job_id: int):
    """Run a failed job again, or a cancelled or aborted one as a new job."""
    return act(job_id, retry)


@bp.post("/jobs/<int:job_id>/cancel")
def job_cancel(job_id: int):
    """Cancel a waiting job."""
    return act(job_id, cancel)


@bp.post("/jobs/<int:job_id>/abort")
def job_abort(job_id: int):
    """Ask a running job to abort."""
    return act(job_id, abort_job)


@bp.post("/jobs/<int:job_id>/delete")
def job_delete(job_id: int):
    """Delete a finished job with its attempts and events."""
    return act(job_id, delete)


def defer_edited(job: dict, args: dict, lines: list[tuple[str, str]]) -> int:
    """Defer the edited copy as the job's retry, with its audit entry (and the diff)."""
    if job["retried_as"] is not None:
        raise InvalidState(f"this job was retried already, as job {job['retried_as']}")
    conn = db.get_conn()
    try:
        with conn.transaction():
            new_id = store.defer_edited_copy(conn, job["id"], args)
            record("job.retried_with_edits", job, job_id=new_id, diff=payloads.diff_text(lines))
    except psycopg.errors.UniqueViolation as exc:
        if exc.diag.table_name == "job_retries":
            raise InvalidState("this job was retried already, a moment ago") from None
        raise InvalidState("a job with this job's idempotency key is waiting") from None
    return new_id


def edit_form(job: dict, form: EditRetryForm, **values):
    """The edit page: the form, its errors, and the diff once reviewed."""
    return render_template("admin/jobs/edit.html", job=job, form=form, **values)


def reviewed(job: dict, form: EditRetryForm):
    """The edited payload, checked: the review page, or the new job once deferred."""
    value, error = payloads.parse(form.payload.data, current_app.config["API_MAX_BODY_BYTES"])
    args, errors = payloads.check(job, value) if value is not None else (None, [])
    if error or errors:
        return edit_form(job, form, error=error, errors=errors)
    lines = payloads.diff(job["args"], args, job["id"])
    if form.action.data != "defer":
        form.payload.data = payloads.pretty(args)
        return edit_form(job, form, diff=lines, reviewed=True)
    new_id = defer_edited(job, args, lines)
    flash(f"Job {job['id']} was retried with edited arguments as job {new_id}.", "success")
    return redirect(page_of(new_id))


@bp.route("/jobs/<int:job_id>/edit", methods=["GET", "POST"])
@security.wide_form("API_MAX_BODY_BYTES")
def job_edit_retry(job_id: int):
    """Retry a failed, cancelled or aborted job with edited arguments: review, then defer."""
    job = get_job_or_404(job_id)
    if "edit" not in actions_for(job):
        flash("Only a failed, cancelled or aborted job not retried yet can be edited.", "error")
        return redirect(page_of(job_id))
    form = EditRetryForm()
    if request.method == "GET":
        form.payload.data = payloads.pretty(job["args"])
        return edit_form(job, form)
    if not form.validate_on_submit():
        return edit_form(job, form, error="Write the payload as a JSON object.")
    try:
        return reviewed(job, form)
    except (InvalidState, TaskNotAllowed) as exc:
        flash(sentence(str(exc)), "error")
        return redirect(page_of(job_id))
