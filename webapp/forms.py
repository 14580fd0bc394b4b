"""HTML forms (Flask-WTF: every form carries a CSRF token)."""

from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    DateTimeLocalField,
    EmailField,
    HiddenField,
    IntegerField,
    PasswordField,
    RadioField,
    SelectField,
    StringField,
    TextAreaField,
)
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, InputRequired, Length, NumberRange, Optional

from webapp.accounts import MAX_TOKEN_DAYS

WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


class LoginForm(FlaskForm):
    """Email and password; "remember me" is off unless ticked."""

    email = EmailField("Email", validators=[DataRequired(), Length(max=320)])
    password = PasswordField("Password", validators=[DataRequired(), Length(max=1024)])
    remember = BooleanField("Keep me signed in on this device", default=False)
    next = HiddenField()


class LogoutForm(FlaskForm):
    """Signing out is a POST, so it needs only its CSRF token."""


class SwitchOrganizationForm(FlaskForm):
    """Which of the reader's organizations the session acts for."""

    organization_id = IntegerField(
        "Organization", validators=[DataRequired(), NumberRange(min=1, max=2**63 - 1)]
    )


class EditRetryForm(FlaskForm):
    """A failed, cancelled or aborted job's payload, edited, to defer as its retry."""

    payload = TextAreaField("Payload (JSON)", validators=[DataRequired()])
    action = HiddenField()


class ActionForm(FlaskForm):
    """A button that changes something named by its URL: only its CSRF token."""


class TokenCreateForm(FlaskForm):
    """A new API token: a label, and days until it expires (as the CLI bounds them)."""

    name = StringField("Name", validators=[Length(max=100)])
    expires_days = IntegerField(
        "Expires after (days)",
        default=90,
        validators=[DataRequired(), NumberRange(min=1, max=MAX_TOKEN_DAYS)],
    )


def optional_int(value) -> int | None:
    """A select's value as a number; None for its empty "choose one" option."""
    return None if value in ("", None) else int(value)


class OrganizationChoice(FlaskForm):
    """A form that acts for one organization: a platform admin without a filter picks it
    (views drop the field for everyone else)."""

    organization_id = SelectField(
        "Organization",
        coerce=optional_int,
        validators=[InputRequired("Choose the organization.")],
    )


class SendSmsForm(OrganizationChoice):
    """One SMS: the payload's fields, and when to send it. The payload model checks them."""

    to = StringField("Recipient", validators=[DataRequired("Enter the phone number to send to.")])
    body = TextAreaField("Message", validators=[DataRequired("Write the message.")])
    when = RadioField(
        "Send",
        choices=[SelectChoice("now", "Now"), SelectChoice("later", "At a chosen time")],
        default="now",
    )
    run_at = DateTimeLocalField("Time", format="%Y-%m-%dT%H:%M", validators=[Optional()])
    time_zone = StringField("Time zone", default="UTC")  # checked for a chosen time only


class DigestSubscriptionForm(OrganizationChoice):
    """A digest subscription; ``webapp.subscriptions`` checks the values (the time zone's
    too, so both forms say the same about one)."""

    recipients = TextAreaField(
        "Recipients",
        description="One address a line, or separated by commas; up to 100.",
        validators=[DataRequired("Enter at least one address.")],
    )
    frequency = RadioField(
        "Frequency",
        choices=[SelectChoice("daily", "Daily"), SelectChoice("weekly", "Weekly")],
        default="daily",
    )
    weekday = SelectField(
        "Day (weekly digests)",
        coerce=int,
        choices=[SelectChoice(n, day) for n, day in enumerate(WEEKDAYS, start=1)],
        default=1,
    )
    hour = SelectField(
        "Hour", coerce=int, choices=[SelectChoice(h, f"{h:02d}:00") for h in range(24)], default=8
    )
    time_zone = StringField(
        "Time zone", default="UTC", validators=[DataRequired("Name a time zone, such as UTC.")]
    )


def add_errors(form: FlaskForm, errors: list[dict]) -> None:
    """Show ``{field, message}`` errors under the form's fields of those names: the first
    for each field, unless the form's own checks found one there already."""
    for error in errors:
        field = form[error["field"]]
        if not field.errors:
            field.errors = [error["message"]]
