"""Flask CLI commands: ``migrate``, and ``orgs``, ``users``, ``tokens`` and ``queues``."""

import click
import psycopg
from flask import Flask, current_app
from flask.cli import AppGroup

from webapp import audit, errors
from webapp.config import DATABASE_URL_REQUIRED, ConfigError


def connect() -> psycopg.Connection:
    """A dedicated autocommit connection for a command (never the request pool), to
    DIRECT_DATABASE_URL (by default DATABASE_URL): straight to PostgreSQL where it is set."""
    config = current_app.config
    if config["DIRECT_DATABASE_URL"] is None:
        raise ConfigError("DATABASE_URL", DATABASE_URL_REQUIRED)
    try:
        return psycopg.connect(
            config["DIRECT_DATABASE_URL"],
            autocommit=True,
            connect_timeout=config["DB_CONNECT_TIMEOUT"],
            application_name="howdah-cli",
        )
    except psycopg.OperationalError as exc:
        name = (
            "DATABASE_URL"
            if config["DIRECT_DATABASE_URL"] == config["DATABASE_URL"]
            else "DIRECT_DATABASE_URL"
        )
        raise click.ClickException(f"cannot connect to {name}: {exc}".strip()) from None


class Commands(AppGroup):
    """A command group whose commands end in one line, not a traceback, on a database
    that is not migrated or goes away."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except psycopg.errors.UndefinedTable:
            raise click.ClickException(
                "the database schema is not installed; run `flask --app webapp migrate`"
            ) from None
        except psycopg.OperationalError as exc:
            raise click.ClickException(f"the database failed: {exc}".strip()) from None
        except (psycopg.IntegrityError, psycopg.DataError) as exc:
            reason = errors.database_reason(exc)
            raise click.ClickException(f"the database refused a value: {reason}") from None


def audited(conn: psycopg.Connection, action: str, **entry) -> None:
    """Write a command's audit entry in the transaction of its change: if the entry
    cannot be written, the command fails and the change is rolled back with it."""
    try:
        audit.record_cli(conn, action, **entry)
    except audit.AuditFailed as exc:
        raise click.ClickException(f"{exc}; nothing was changed") from None


def init_app(app: Flask) -> None:
    """Register every command on the app."""
    app.cli.add_command(migrate.migrate_command)
    for group in accounts.COMMANDS:
        app.cli.add_command(group)
    app.cli.add_command(queues.queues)


from webapp.cli import accounts, migrate, queues  # noqa: E402 - they import connect() from here
