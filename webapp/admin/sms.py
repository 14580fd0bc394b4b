"""The "Send SMS" form: one sms:send_notification job, now or at a chosen time.

The payload model (``tasks.payloads.SmsPayload``) and the API's schedule window
(``webapp.api.schemas``) check the input, through the queue service that the API uses
too; their errors show under the fields they are about. After a send, the page shows the
new job with a link to its page (``?sent=``), so reloading it sends nothing again.
"""

import datetime
import zoneinfo

import pydantic
from flask import flash, redirect, render_template, request

from tasks.sms_text import count_segments
from webapp import db
from webapp.admin import bp, deferred, writer_page
from webapp.admin.layout import admin_url
from webapp.api.schemas import JobOptionFields
from webapp.forms import SendSmsForm, add_errors
from webapp.queue import JobOptions, JobRejected, get_queue
from webapp.subscriptions import time_zone_problem, time_zones

TASK = "sms:send_notification"
# The payload's fields, and the options', as the form names them.
FIELDS = {
    "payload.to": "to",
    "payload.body": "body",
    "payload.organization_id": "organization_id",
    "run_at": "run_at",
}


def local_run_at(form: SendSmsForm) -> datetime.datetime | None:
    """The chosen time in its time zone, or None (now, or an error put on the form)."""
    if form.when.data != "later":
        return None
    if form.run_at.data is None:
        add_errors(form, [{"field": "run_at", "message": "Choose the date and time to send at."}])
        return None
    zone = (form.time_zone.data or "").strip()
    problem = time_zone_problem(zone)
    if problem:
        add_errors(form, [{"field": "time_zone", "message": problem}])
        return None
    chosen = form.run_at.data.replace(tzinfo=zoneinfo.ZoneInfo(zone))
    if not exists(chosen):
        problem = f"{form.run_at.data:%Y-%m-%d %H:%M} does not exist in {zone}: the clocks"
        add_errors(form, [{"field": "run_at", "message": f"{problem} skip it. Choose another."}])
        return None
    return chosen


def exists(moment: datetime.datetime) -> bool:
    """Whether a wall-clock time happens in its zone: one in the hour skipped when the
    clocks go forward comes back from UTC as another time."""
    back = moment.astimezone(datetime.UTC).astimezone(moment.tzinfo)
    return back.replace(tzinfo=None) == moment.replace(tzinfo=None)


def schedule(form: SendSmsForm) -> JobOptions | None:
    """The job's options, checked as the API checks run_at; None after an error."""
    run_at = local_run_at(form)
    if form.when.data == "later" and run_at is None:
        return None
    try:
        options = JobOptionFields(run_at=None if run_at is None else run_at.isoformat())
    except pydantic.ValidationError as exc:
        message = exc.errors()[0]["msg"].removeprefix("Value error, ")
        add_errors(form, [{"field": "run_at", "message": message.replace("run_at", "The time")}])
        return None
    return JobOptions(run_at=options.run_at)


def send(form: SendSmsForm) -> int | None:
    """Defer the SMS; its job's id, or None with every error found put on the form."""
    valid = form.validate()
    options = schedule(form)
    organization_id = deferred.chosen_organization(form)
    payload = {"organization_id": organization_id, "to": form.to.data, "body": form.body.data}
    try:
        get_queue().build(TASK, payload, options or JobOptions(), organization_id)
    except JobRejected as exc:
        deferred.show_errors(form, exc.errors, FIELDS)
        return None
    if not valid or options is None:
        return None
    with db.get_conn().transaction():
        (job,) = get_queue().defer_many([(TASK, payload, options)], organization_id)
    return job.id


def render(form: SendSmsForm, status: int = 200):
    """The form, its errors, the message's count, and the job just sent if any."""
    page = render_template(
        "admin/sms/new.html",
        form=form,
        count=count_segments(form.body.data or ""),
        sent=deferred.sent_job(),
        time_zones=time_zones(),
    )
    return page, status


@bp.route("/sms", methods=["GET", "POST"])
@writer_page
def sms_new():
    """Send one SMS through the queue; the page then shows its job."""
    form = SendSmsForm()
    deferred.offer_organizations(form)
    if request.method == "GET":
        return render(form)
    # A form's line breaks arrive as CRLF; a text message's are LF, as the counter counts.
    form.body.data = (form.body.data or "").replace("\r\n", "\n")
    job_id = send(form)
    if job_id is None:
        return render(form, 400)
    flash(f"The SMS is queued as job {job_id}.", "success")
    return redirect(admin_url("admin.sms_new", **{deferred.SENT_PARAM: job_id}))
