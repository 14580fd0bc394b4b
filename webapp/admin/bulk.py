"""Bulk actions from the job list: a preview, then the action, at once or in the background."""

from dataclasses import dataclass

import psycopg
from flask import abort, flash, redirect, render_template, request
from flask_login import current_user

from webapp import audit, bulk, db
from webapp.admin import bp, job_filters, jobs_list, scope
from webapp.admin.layout import admin_url
from webapp.api import params
from webapp.store import bulk_actions as bulk_store
from webapp.store import job_search

SAMPLE = 20
DONE = {"cancel": "Cancelled", "retry": "Retried", "delete": "Deleted"}


@dataclass(frozen=True)
class Chosen:
    """A bulk action as asked for: the action, the jobs, and the newest job it may touch
    (``max_id``: jobs deferred after the preview are not part of it)."""

    action: str
    target: str  # "selected" (the ticked rows) or "matching" (every job the filters match)
    ids: list[int] | None
    filters: job_filters.Filters
    max_id: int
    jobs: job_search.JobFilter

    def fields(self) -> list[tuple[str, object]]:
        """The hidden fields that carry it from the preview to the confirmation."""
        ticked = [("job_id", job_id) for job_id in self.ids or []]
        chosen = [("action", self.action), ("target", self.target), ("max_id", self.max_id)]
        return chosen + ticked + self.filters.fields()

    def details(self) -> dict:
        """What the audit entry records of the selection."""
        if self.ids is not None:
            return {"job_ids": self.ids, "max_id": self.max_id}
        return {"filter": self.filters.query(), "max_id": self.max_id}

    def stored_filter(self) -> dict | None:
        """The filter a background run applies, times already turned into ids."""
        if self.ids is not None:
            return None
        kept = {name: getattr(self.jobs, name) for name in job_search.KEPT_FILTERS}
        kept |= self.filters.query()  # as the reader gave them, for the page to show
        return {name: value for name, value in kept.items() if value is not None}


def ticked_ids(form) -> list[int]:
    """The ids of the ticked rows (a 400 page if none or too many)."""
    raw = form.getlist("job_id")
    ids = sorted({params.parse_id(value) or 0 for value in raw})
    if not raw or ids[0] < 1:
        abort(400, "Tick at least one job, or act on every job matching the filters.")
    if len(ids) > bulk.INLINE_MAX:
        abort(400, f"Tick at most {bulk.INLINE_MAX:,} jobs, or act on every matching job.")
    return ids


def read_chosen(conn: psycopg.Connection, form, max_id: int) -> Chosen:
    """The bulk action a form asks for (a 400 page for a bad one)."""
    action, target = form.get("action"), form.get("target")
    if action not in bulk.ACTIONS:
        abort(400, "Choose an action: cancel, retry or delete.")
    filters = job_filters.read(form)
    if target == "selected":
        ids = ticked_ids(form)
        jobs = job_search.JobFilter(organization=scope.organization(), ids=ids, below_id=max_id + 1)
        return Chosen(action, target, ids, filters, max_id, jobs)
    if target == "matching":
        if filters.q:  # a jump to jobs by id or key, not a filter: it names them
            abort(400, "A job id or key picks jobs to look at: tick the ones to act on.")
        jobs = job_filters.jobs_of(conn, filters, max_id + 1)
        return Chosen(action, target, None, filters, max_id, jobs)
    abort(400, "Act on the selected jobs or on every job matching the filters.")


def preview_of(conn: psycopg.Connection, chosen: Chosen) -> dict:
    """How many jobs the action matches and acts on, and why it leaves the others."""
    barred = bulk.barred_tasks(current_user.is_admin)
    groups = job_search.count_matching_jobs(conn, chosen.jobs, barred, bulk.PREVIEW_CAP)
    return bulk.summarize(chosen.action, groups)


@bp.post("/bulk/preview")
def bulk_preview():
    """What a bulk action would do, before anything is done: counts, reasons, a sample."""
    conn = db.get_conn()
    chosen = read_chosen(conn, request.form, job_search.newest_job_id(conn))
    return render_template(
        "admin/jobs/bulk_preview.html",
        chosen=chosen,
        summary=preview_of(conn, chosen),
        sample=job_search.list_jobs(conn, chosen.jobs, SAMPLE),
        job_url=jobs_list.job_url,
        back_url=admin_url("admin.job_list", **chosen.filters.query()),
        inline_max=bulk.INLINE_MAX,
        cap=bulk.PREVIEW_CAP,
        label=bulk.ACTIONS[chosen.action],
    )


@bp.post("/bulk")
def bulk_apply():
    """Carry out a previewed bulk action: at once up to 1,000 jobs, else in the background."""
    conn = db.get_conn()
    max_id = job_filters.cursor(request.form, "max_id")
    if max_id is None:
        abort(400, "Preview the bulk action first.")
    chosen = read_chosen(conn, request.form, max_id)
    summary = preview_of(conn, chosen)
    if summary["total"] > bulk.INLINE_MAX:
        return start_in_background(conn, chosen, summary)
    return apply_now(conn, chosen)


def apply_now(conn: psycopg.Connection, chosen: Chosen):
    """Act on the jobs in this request, with one audit entry, in one transaction."""
    try:
        with conn.transaction():
            result = bulk.apply_now(conn, chosen.action, chosen.jobs, current_user.is_admin)
            skipped = result["seen"] - result["acted"]
            audit.record(
                f"jobs.bulk_{chosen.action}",
                target_type="jobs",
                organization_id=scope.organization(),
                details={**chosen.details(), "matched": result["seen"], "acted": result["acted"]}
                | {"skipped": skipped, "abort_requested": result["aborting"]},
            )
    except psycopg.errors.UniqueViolation:
        abort(409, "Another change to these jobs came at the same moment; nothing was done.")
    aborting = f" ({result['aborting']} running, asked to abort)" if result["aborting"] else ""
    flash(
        f"{DONE[chosen.action]} {result['acted']} jobs{aborting}; {skipped} left as they were.",
        "success",
    )
    return redirect(admin_url("admin.job_list", **chosen.filters.query()))


def start_in_background(conn: psycopg.Connection, chosen: Chosen, summary: dict):
    """Record the bulk action, defer its run and audit it, in one transaction."""
    row = {
        "organization_id": scope.organization(),
        "requested_by_id": current_user.id,
        "requested_by_label": current_user.label,
        "platform": current_user.is_admin,
        "action": chosen.action,
        "filter": chosen.stored_filter(),
        "job_ids": chosen.ids,
        "max_id": chosen.max_id,
        "cursor": chosen.jobs.below_id,
        "total": summary["total"],
        "counted": not summary["capped"],
    }
    with conn.transaction():
        bulk_id = bulk.start(conn, row)
        audit.record(
            f"jobs.bulk_{chosen.action}",
            target_type="bulk_action",
            target_id=bulk_id,
            organization_id=scope.organization(),
            details={**chosen.details(), "matched": summary["total"], "background": True},
        )
    flash("The action runs in the background, in batches.", "success")
    return redirect(admin_url("admin.bulk_detail", bulk_id=bulk_id))


def get_bulk_action_or_404(bulk_id: int) -> dict:
    """The bulk action, if the reader's scope holds it; 404 otherwise."""
    row = None
    if bulk_id <= params.BIGINT_MAX:
        row = bulk_store.get_bulk_action(db.get_conn(), bulk_id, scope.organization())
    if row is None:
        abort(404, f"No bulk action {bulk_id}.")
    return row


@bp.get("/bulk/<int:bulk_id>")
def bulk_detail(bulk_id: int):
    """A background bulk action's progress, with a button to stop it."""
    row = get_bulk_action_or_404(bulk_id)
    return render_template(
        "admin/jobs/bulk_detail.html",
        bulk=row,
        label=bulk.ACTIONS[row["action"]],
        selection=bulk.describe(row),
    )


@bp.post("/bulk/<int:bulk_id>/cancel")
def bulk_cancel(bulk_id: int):
    """Stop a bulk action between two batches (what is done stays done)."""
    row = get_bulk_action_or_404(bulk_id)
    conn = db.get_conn()
    with conn.transaction():
        stopped = bulk_store.cancel_bulk_action(conn, bulk_id, scope.organization())
        if stopped:
            audit.record(
                "jobs.bulk_action_cancelled",
                target_type="bulk_action",
                target_id=bulk_id,
                organization_id=row["organization_id"],
                details={"done": row["done"], "total": row["total"]},
            )
    if stopped:
        flash("Stopped: no batch starts after the one under way.", "success")
    else:
        flash("This bulk action had ended already.", "info")
    return redirect(admin_url("admin.bulk_detail", bulk_id=bulk_id))
