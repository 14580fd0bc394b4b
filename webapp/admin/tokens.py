"""API tokens of the organization: list them, create one (its secret shown once), revoke one.

Viewers see the list; operators manage their organization's tokens; platform admins
any, and without an organization filter they create platform tokens. A new token's
secret is rendered once, in the answer to the POST that made it: it is never stored
(only its hash), kept in the session, or logged.
"""

from flask import abort, flash, redirect, render_template
from flask_login import current_user

from webapp import accounts, audit, auth, db
from webapp.admin import bp, scope
from webapp.admin.layout import admin_url
from webapp.forms import ActionForm, TokenCreateForm
from webapp.store import accounts as account_store
from webapp.store import tokens as store

SHOWN = 200  # tokens listed, newest first; the CLI lists them all


def owner_label(organization_id: int | None) -> str:
    """Whom a token made here acts for: an organization's name, or the platform."""
    if organization_id is None:
        return "the platform (every organization, with admin rights)"
    organization = account_store.get_organization(db.get_conn(), str(organization_id))
    return organization["name"] if organization else f"organization {organization_id}"


def render_list(form: TokenCreateForm, created: dict | None = None, status: int = 200):
    """The token page, with the secret of a token just made when there is one."""
    organization_id = scope.organization()
    tokens = store.list_tokens(db.get_conn(), organization_id, SHOWN + 1)
    page = render_template(
        "admin/tokens/list.html",
        tokens=tokens[:SHOWN],
        more=len(tokens) > SHOWN,
        shown=SHOWN,
        form=form,
        revoke_form=ActionForm(formdata=None),
        owner=owner_label(organization_id),
        created=created,
        show_organization=current_user.is_admin,
    )
    return page, status


@bp.get("/tokens")
def token_list():
    """The organization's API tokens (every token for an admin without a filter)."""
    return render_list(TokenCreateForm(formdata=None))


@bp.post("/tokens")
def token_create():
    """Create a token and show its secret, once, in this answer."""
    form = TokenCreateForm()
    if not form.validate_on_submit():
        return render_list(form, status=400)
    organization_id, name = scope.organization(), form.name.data.strip()
    conn = db.get_conn()
    with conn.transaction():  # the token and its audit entry, or neither
        secret, row = accounts.new_token(conn, organization_id, name, form.expires_days.data)
        audit.record(
            "token.create",
            target_type="token",
            target_id=row["prefix"],
            organization_id=organization_id,
            details={"name": name, "expires_days": form.expires_days.data},
        )
    return render_list(TokenCreateForm(formdata=None), {**row, "secret": secret})


@bp.post("/tokens/<int:token_id>/revoke")
def token_revoke(token_id: int):
    """Revoke a token of the organization; another organization's token answers 404."""
    conn = db.get_conn()
    token = store.get_token(conn, token_id, scope.organization())
    if token is None:
        abort(404, "There is no such token.")
    with conn.transaction():
        revoked = store.revoke_token_by_id(conn, token_id, scope.organization())
        if revoked is not None:
            audit.record(
                "token.revoke",
                target_type="token",
                target_id=revoked["prefix"],
                organization_id=revoked["organization_id"],
            )
    if revoked is None:
        flash(f"Token {token['prefix']} was revoked already.", "info")
    else:
        auth.forget_token(token_id)
        flash(f"Token {token['prefix']} is revoked: it no longer opens the API.", "success")
    return redirect(admin_url("admin.token_list"))
