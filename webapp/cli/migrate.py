"""``flask --app webapp migrate [--status]``.

The release step reports through the log (LOG_FORMAT, on stderr), like the processes it
runs before; ``--status`` answers a person, on stdout.
"""

import logging

import click

from webapp import migrations
from webapp.cli import connect

log = logging.getLogger("webapp.migrate")


@click.command("migrate")
@click.option("--status", "show_status", is_flag=True, help="List applied and pending files.")
def migrate_command(show_status: bool) -> None:
    """Apply Procrastinate's schema and migrations, then migrations/*.sql."""
    with connect() as conn:
        if show_status:
            print_status(migrations.status(conn))
            return
        try:
            applied = migrations.migrate(conn)
        except migrations.MigrationError as exc:
            raise click.ClickException(str(exc)) from None
    log.info(
        f"Applied {len(applied)} migration(s)." if applied else "Nothing to migrate.",
        extra={"action": "migrate", "applied": len(applied)},
    )


def print_status(status: migrations.Status) -> None:
    """Print one line per applied file, then one per pending file."""
    for row in status.applied:
        when = f"{row['applied_at']:%Y-%m-%d %H:%M:%S%z}"
        click.echo(f"applied  {when:24}  {row['source']}/{row['name']}")
    for migration in status.pending:
        click.echo(f"pending  {'':24}  {migration.source}/{migration.name}")
    for name in status.modified:
        click.echo(f"warning: howdah/{name} changed after it was applied")
    click.echo(f"{len(status.applied)} applied, {len(status.pending)} pending.")
