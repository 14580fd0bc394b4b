"""HTML forms (Flask-WTF: every form carries a CSRF token)."""

from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    EmailField,
    HiddenField,
    IntegerField,
    PasswordField,
    StringField,
    TextAreaField,
)
from wtforms.validators import DataRequired, Length, NumberRange

from webapp.accounts import MAX_TOKEN_DAYS


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
