"""What the forms that start jobs share: the organization a form acts for, mapping the
queue's refusals onto the form's fields, and the panel showing the job just deferred."""

import datetime

from flask import request
from flask_login import current_user
from wtforms.fields.choices import SelectChoice

from tasks import queues
from webapp import db
from webapp.admin import scope
from webapp.admin.job_detail import shown_state
from webapp.api import params
from webapp.forms import OrganizationChoice, add_errors
from webapp.store import accounts as account_store
from webapp.store import job_detail as job_store

SENT_PARAM = "sent"


def offer_organizations(form: OrganizationChoice, fixed: int | None = None) -> None:
    """Let a platform admin without a filter choose the organization; drop the choice
    for everyone else (and when the organization is ``fixed``, as on an edit)."""
    if fixed is None and scope.organization() is None:
        rows = account_store.list_organizations(db.get_conn())
        form.organization_id.choices = [
            SelectChoice("", "Choose an organization"),
            *(SelectChoice(row["id"], row["name"]) for row in rows),
        ]
    else:
        del form.organization_id


def chosen_organization(form: OrganizationChoice) -> int:
    """The organization the form's submission acts for."""
    if "organization_id" in form:
        return form.organization_id.data
    return scope.organization()


def show_errors(form: OrganizationChoice, errors: list[dict], fields: dict[str, str]) -> None:
    """Errors of the queue or a model (``{field, message}``, fields as the model names
    them) under the form fields ``fields`` maps them to; the others above the form."""
    mapped = [
        {"field": fields.get(e["field"], ""), "message": sentence(e["message"])} for e in errors
    ]
    add_errors(form, [e for e in mapped if e["field"] in form])
    form.form_errors.extend(e["message"] for e in mapped if e["field"] not in form)


def sentence(message: str) -> str:
    """A model's error as a sentence under a field: "Value error, must be ..." -> "Must be ..."."""
    message = message.removeprefix("Value error, ")
    return message[:1].upper() + message[1:]


def sent_job() -> dict | None:
    """The job named by ``?sent=``, as a form shows it after deferring it; None if there
    is none, or the reader may not see it."""
    job_id = params.parse_id(request.args.get(SENT_PARAM, ""))
    if job_id is None:
        return None
    job = job_store.get_job(db.get_conn(), job_id, scope.organization())
    if job is None or (job["queue_name"] == queues.HOUSEKEEPING and not current_user.is_admin):
        return None
    return {**job, "state": shown_state(job, datetime.datetime.now(datetime.UTC))}
