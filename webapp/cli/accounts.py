"""Flask CLI commands for organizations, users and API tokens.

flask --app webapp orgs create NAME
flask --app webapp orgs set-sms-rate ORG PER_SECOND
flask --app webapp users create --email E --org ORG --role ROLE [--password-stdin]
flask --app webapp users set-password --email E [--password-stdin]
flask --app webapp tokens create (--org ORG | --platform) [--name N] [--expires-days D]
flask --app webapp tokens list [--org ORG]
flask --app webapp tokens revoke ID_OR_PREFIX
"""

import sys

import click
import psycopg

from webapp import accounts, auth
from webapp.cli import Commands, audited, connect
from webapp.store import accounts as store
from webapp.store import tokens as token_store

orgs = Commands("orgs", help="Manage organizations.")
users = Commands("users", help="Manage people and their roles.")
tokens = Commands("tokens", help="Manage API tokens.")

MAX_SMS_PER_SECOND = 1000  # as migration 0025's check allows


def read_password(from_stdin: bool) -> str:
    """The new password, from standard input or an interactive prompt."""
    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    if len(password) < accounts.MIN_PASSWORD:
        raise click.ClickException(f"passwords need at least {accounts.MIN_PASSWORD} characters")
    return password


def find_organization(conn: psycopg.Connection, ref: str) -> dict:
    organization = store.get_organization(conn, ref)
    if organization is None:
        raise click.ClickException(f"no organization {ref!r} (give its name or id)")
    return organization


def audit_organization(
    conn: psycopg.Connection, action: str, organization: dict, details: dict | None = None
) -> None:
    """Audit a change to an organization, in that organization's own log."""
    audited(
        conn,
        action,
        target_type="organization",
        target_id=organization["id"],
        organization_id=organization["id"],
        details=details,
    )


@orgs.command("create")
@click.argument("name")
def create_organization(name: str) -> None:
    """Create an organization."""
    name = name.strip()
    problem = accounts.organization_name_problem(name)
    if problem:
        raise click.ClickException(f"the name {problem}")
    with connect() as conn, conn.transaction():
        try:
            organization = store.insert_organization(conn, name)
        except psycopg.errors.UniqueViolation:
            raise click.ClickException(f"an organization named {name!r} exists") from None
        audit_organization(conn, "organization.create", organization)
    click.echo(f"Created organization {organization['id']}: {organization['name']}")


@orgs.command("set-sms-rate")
@click.argument("org_ref", metavar="ORG")
@click.argument("per_second", type=click.IntRange(1, MAX_SMS_PER_SECOND))
def set_sms_rate(org_ref: str, per_second: int) -> None:
    """Set how many SMS a second an organization may send (across every worker)."""
    with connect() as conn, conn.transaction():
        organization = store.update_sms_rate(
            conn, find_organization(conn, org_ref)["id"], per_second
        )
        details = {"sms_per_second": per_second, "previous": organization["previous"]}
        audit_organization(conn, "organization.set_sms_rate", organization, details)
    click.echo(
        f"{organization['name']} may send {per_second} SMS a second"
        f" (was {organization['previous']})"
    )


@users.command("create")
@click.option("--email", required=True)
@click.option("--org", "org_ref", required=True, help="Organization name or id.")
@click.option("--role", type=click.Choice(accounts.ROLES), required=True)
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
def create_user(email: str, org_ref: str, role: str, password_stdin: bool) -> None:
    """Create a person with a role in an organization (admin: every organization)."""
    email = accounts.normalize_email(email)
    problem = accounts.email_problem(email)
    if problem:
        raise click.ClickException(f"{email[:80]!r} {problem}")
    password_hash = accounts.hash_password(read_password(password_stdin))
    with connect() as conn, conn.transaction():
        organization = find_organization(conn, org_ref)
        try:
            user = store.insert_user(conn, email, password_hash)
        except psycopg.errors.UniqueViolation:
            raise click.ClickException(f"a user with email {email} exists") from None
        store.upsert_membership(conn, user["id"], organization["id"], role)
        audited(
            conn,
            "user.create",
            target_type="user",
            target_id=email,
            organization_id=organization["id"],
            details={"role": role},
        )
    click.echo(f"Created {role} {email} in {organization['name']}")


@users.command("set-password")
@click.option("--email", required=True)
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
def set_password(email: str, password_stdin: bool) -> None:
    """Change a person's password and end their sessions."""
    email = accounts.normalize_email(email)
    password_hash = accounts.hash_password(read_password(password_stdin))
    with connect() as conn, conn.transaction():
        user = store.get_user_by_email(conn, email)
        if user is None:
            raise click.ClickException(f"no user with email {email}")
        store.update_password(conn, user["id"], password_hash)
        ended = store.revoke_user_sessions(conn, user["id"])
        audited(conn, "user.set_password", target_type="user", target_id=email)
    click.echo(f"Password changed for {email}; {ended} session(s) ended")


@tokens.command("create")
@click.option("--org", "org_ref", help="Organization name or id.")
@click.option("--platform", is_flag=True, help="A platform token (the /api/admin routes).")
@click.option("--name", default="", help="A label to tell the token apart.")
@click.option(
    "--expires-days",
    type=click.IntRange(1, accounts.MAX_TOKEN_DAYS),
    help="Days until it expires.",
)
def create_token(org_ref: str | None, platform: bool, name: str, expires_days: int | None) -> None:
    """Create an API token; its secret is printed once and never stored."""
    if bool(org_ref) == platform:
        raise click.UsageError("give --org ORG or --platform")
    with connect() as conn, conn.transaction():
        organization_id = None if platform else find_organization(conn, org_ref)["id"]
        secret, row = accounts.new_token(conn, organization_id, name, expires_days)
        audited(
            conn,
            "token.create",
            target_type="token",
            target_id=row["prefix"],
            organization_id=organization_id,
            details={"name": name},
        )
    expiry = row["expires_at"].isoformat() if row["expires_at"] else "never"
    click.echo(f"Token {row['prefix']} (id {row['id']}, expires {expiry}).")
    click.echo("Copy the secret now; it is not shown again:")
    click.echo(secret)


@tokens.command("list")
@click.option("--org", "org_ref", help="Only this organization's tokens.")
def list_tokens(org_ref: str | None) -> None:
    """List tokens (prefixes only; secrets are never stored)."""
    with connect() as conn:
        organization_id = find_organization(conn, org_ref)["id"] if org_ref else None
        rows = token_store.list_tokens(conn, organization_id)
    for row in rows:
        state = "revoked" if row["revoked_at"] else "active"
        owner = row["organization_name"] or "platform"
        click.echo(
            f"{row['id']:>5}  {row['prefix']}  {state:8} {owner:20}"
            f" {row['name'] or '-':20} expires {_when(row['expires_at'], 'never')}"
            f"  last used {_when(row['last_used_at'], 'never')}"
        )
    if not rows:
        click.echo("No tokens.")


@tokens.command("revoke")
@click.argument("ref")
def revoke_token(ref: str) -> None:
    """Revoke a token by its id or prefix."""
    with connect() as conn, conn.transaction():
        row = token_store.revoke_token(conn, ref)
        if row is None:
            raise click.ClickException(f"no active token {ref!r}")
        audited(
            conn,
            "token.revoke",
            target_type="token",
            target_id=row["prefix"],
            organization_id=row["organization_id"],
        )
    auth.forget_token(row["id"])  # a no-op unless this process serves requests too
    click.echo(f"Revoked token {row['prefix']}")


def _when(value, default: str) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if value else default


COMMANDS = (orgs, users, tokens)
