"""A job's page: its payload, state, attempts and events, the actions that apply to it,
and, while it waits, why it is not running."""

import datetime

from flask import abort, current_app, render_template
from flask_login import current_user

import tasks.app  # a module reference: tasks and webapp import each other
from tasks import queues
from webapp import db
from webapp.admin import bp, diagnosis, payloads, scope
from webapp.forms import ActionForm
from webapp.queue import RETRYABLE
from webapp.store import attempts as attempts_store
from webapp.store import job_detail as store

FINISHED = frozenset(store.FINISHED)
SHOWN_STATES = {"doing": "running"}  # todo is waiting or scheduled, by its time


def get_job_or_404(job_id: int) -> dict:
    """The job, if the reader may see it: in scope, and housekeeping for admins only."""
    job = store.get_job(db.get_conn(), job_id, scope.organization())
    hidden = job is not None and job["queue_name"] == queues.HOUSEKEEPING
    if job is None or (hidden and not current_user.is_admin):
        abort(404, f"There is no job {job_id} here.")
    return job


def shown_state(job: dict, now: datetime.datetime) -> str:
    """The state as the pages name it: waiting, scheduled, running, succeeded, ..."""
    if job["status"] == "todo":
        later = job["scheduled_at"] is not None and job["scheduled_at"] > now
        return "scheduled" if later else "waiting"
    return SHOWN_STATES.get(job["status"], job["status"])


def actions_for(job: dict) -> set[str]:
    """The actions that apply to the job now, for a reader who may change things."""
    if not current_user.can_write:
        return set()
    found = {"todo": {"cancel"}, "doing": {"abort"}}.get(job["status"], set())
    if job["abort_requested"]:
        found.discard("abort")  # asked already; the job stops at its next check
    if job["status"] in FINISHED:
        found.add("delete")
    if job["status"] in RETRYABLE and job["retried_as"] is None:
        allowed = tasks.app.deferrable(platform=current_user.is_admin)
        found |= {"retry", "edit"} if job["task_name"] in allowed else set()
    return found


def visible_attempts(job_id: int) -> list[dict]:
    """The job's attempts; tracebacks (server paths, library versions) for admins only."""
    rows = attempts_store.list_attempts(db.get_conn(), job_id)
    hidden = {} if current_user.is_admin else {"traceback": None}
    return [{**row, **hidden} for row in rows]


def why_waiting(job: dict, now: datetime.datetime) -> list[diagnosis.Reason]:
    """Why a waiting job is not running; nothing for a job in another state."""
    if job["status"] != "todo":
        return []
    stale = current_app.config["WORKER_STALE_SECONDS"]
    return diagnosis.reasons(
        job, diagnosis.gather(db.get_conn(), job, stale, scope.organization()), now
    )


@bp.get("/jobs/<int:job_id>")
def job_detail(job_id: int):
    """One job: payload, state, attempts, events, actions, and why it waits."""
    job = get_job_or_404(job_id)
    now = datetime.datetime.now(datetime.UTC)
    return render_template(
        "admin/jobs/detail.html",
        job=job,
        state=shown_state(job, now),
        payload=payloads.shown(job["args"]),
        attempts=visible_attempts(job_id),
        events=store.list_events(db.get_conn(), job_id),
        message=store.get_sms_message(db.get_conn(), job_id),
        reasons=why_waiting(job, now),
        actions=actions_for(job),
        form=ActionForm(),
    )


@bp.get("/jobs/<int:job_id>/payload")
def job_payload(job_id: int):
    """The job's whole payload, as JSON."""
    job = get_job_or_404(job_id)
    return current_app.response_class(payloads.pretty(job["args"]), mimetype="application/json")
