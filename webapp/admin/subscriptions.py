"""Digest subscriptions of the organization: list, create, edit, delete, and send now.

The values go through ``webapp.subscriptions.DigestSubscriptionFields``, the model the
JSON API validates with, and each change is made there, with its audit entry. Another
organization's subscription is not found (404).
"""

import pydantic
from flask import abort, flash, redirect, render_template, request
from flask_login import current_user

from webapp import db
from webapp import subscriptions as domain
from webapp.admin import bp, deferred, scope, writer_page
from webapp.admin.layout import admin_url
from webapp.forms import WEEKDAYS, ActionForm, DigestSubscriptionForm
from webapp.queue import field_errors
from webapp.store import subscriptions as store

SHOWN = 200  # subscriptions listed, newest first; the API pages through them all
SHOWN_RECIPIENTS = 3


def not_found(subscription_id: int):
    """404: no such subscription in the organization the page shows."""
    abort(404, f"There is no digest subscription {subscription_id} here.")


def get_subscription_or_404(subscription_id: int) -> dict:
    """The subscription, if it belongs to the organization the page shows."""
    row = store.get_subscription(db.get_conn(), subscription_id, scope.organization())
    if row is None:
        not_found(subscription_id)
    return row


def schedule_text(row: dict) -> str:
    """ "Weekly on Monday at 08:00 (Europe/Paris)": when the digest is due."""
    day = f" on {WEEKDAYS[row['weekday'] - 1]}" if row["frequency"] == "weekly" else ""
    return f"{row['frequency'].capitalize()}{day} at {row['hour']:02d}:00 ({row['time_zone']})"


def recipients_text(recipients: list[str]) -> str:
    """The first few addresses, and how many more."""
    shown = ", ".join(recipients[:SHOWN_RECIPIENTS])
    more = len(recipients) - SHOWN_RECIPIENTS
    return f"{shown} and {more} more" if more > 0 else shown


def checked(form: DigestSubscriptionForm) -> domain.DigestSubscriptionFields | None:
    """The submitted subscription, or None with every error found put on the form."""
    valid = form.validate()
    addresses = domain.split_recipients(form.recipients.data or "")
    values = {
        "recipients": addresses,
        "frequency": form.frequency.data,
        "weekday": form.weekday.data,
        "hour": form.hour.data,
        "time_zone": (form.time_zone.data or "").strip(),
    }
    try:
        fields = domain.DigestSubscriptionFields.model_validate(values)
    except pydantic.ValidationError as exc:
        errors = field_errors(exc)
        for error in errors:  # "recipients.3": name the address at fault
            name, _, index = error["field"].partition(".")
            if name == "recipients" and index.isdigit():
                address, message = addresses[int(index)], deferred.sentence(error["message"])
                error.update(field=name, message=f"“{address}”: {message}")
        deferred.show_errors(form, errors, {name: name for name in values})
        return None
    return fields if valid else None


def render_form(form: DigestSubscriptionForm, subscription: dict | None = None, status=200):
    page = render_template(
        "admin/subscriptions/form.html",
        form=form,
        subscription=subscription,
        time_zones=domain.time_zones(),
    )
    return page, status


def saved(row: dict):
    """Back to the list, saying what was saved."""
    flash(f"Subscription {row['id']} is saved: {schedule_text(row)}.", "success")
    return redirect(admin_url("admin.subscription_list"))


@bp.get("/subscriptions")
@writer_page
def subscription_list():
    """The organization's digest subscriptions (every one for an admin without a filter)."""
    rows = store.list_subscriptions(db.get_conn(), scope.organization(), SHOWN + 1)
    shown = [
        {**row, "schedule": schedule_text(row), "to": recipients_text(row["recipients"])}
        for row in rows[:SHOWN]
    ]
    return render_template(
        "admin/subscriptions/list.html",
        subscriptions=shown,
        more=len(rows) > SHOWN,
        shown=SHOWN,
        action_form=ActionForm(formdata=None),
        sent=deferred.sent_job(),
        show_organization=current_user.is_admin and scope.organization() is None,
    )


@bp.route("/subscriptions/new", methods=["GET", "POST"])
@writer_page
def subscription_new():
    """A new subscription of the organization."""
    form = DigestSubscriptionForm()
    deferred.offer_organizations(form)
    if request.method == "GET":
        return render_form(form)
    fields = checked(form)
    if fields is None:
        return render_form(form, status=400)
    return saved(domain.create(db.get_conn(), deferred.chosen_organization(form), fields))


@bp.route("/subscriptions/<int:subscription_id>/edit", methods=["GET", "POST"])
@writer_page
def subscription_edit(subscription_id: int):
    """Change a subscription's recipients and schedule; the last period sent stays."""
    subscription = get_subscription_or_404(subscription_id)
    form = DigestSubscriptionForm(
        data={**subscription, "recipients": "\n".join(subscription["recipients"])}
    )
    deferred.offer_organizations(form, fixed=subscription["organization_id"])
    if request.method == "GET":
        return render_form(form, subscription)
    fields = checked(form)
    if fields is None:
        return render_form(form, subscription, 400)
    row = domain.update(db.get_conn(), subscription, scope.organization(), fields)
    if row is None:  # deleted since it was read
        not_found(subscription_id)
    return saved(row)


@bp.post("/subscriptions/<int:subscription_id>/delete")
@writer_page
def subscription_delete(subscription_id: int):
    """Delete a subscription: no more digests for it."""
    if domain.delete(db.get_conn(), subscription_id, scope.organization()) is None:
        not_found(subscription_id)
    flash(f"Subscription {subscription_id} is deleted.", "success")
    return redirect(admin_url("admin.subscription_list"))


@bp.post("/subscriptions/<int:subscription_id>/send")
@writer_page
def subscription_send(subscription_id: int):
    """Defer one digest for the subscription now; the list then shows its job."""
    subscription = get_subscription_or_404(subscription_id)
    job = domain.send_now(db.get_conn(), subscription, current_user.is_admin)
    flash(f"A {subscription['frequency']} digest is queued as job {job.id}.", "success")
    return redirect(admin_url("admin.subscription_list", **{deferred.SENT_PARAM: job.id}))
