"""``flask --app webapp migrate [--status]``."""

import click

from webapp import migrations
from webapp.cli import connect


@click.command("migrate")
@click.option("--status", "show_status", is_flag=True, help="List applied and pending files.")
def migrate_command(show_status: bool) -> None:
    """Apply Procrastinate's schema and migrations, then migrations/*.sql."""
    with connect() as conn:
        if show_status:
            print_status(migrations.status(conn))
            return
        try:
            applied = migrations.migrate(conn, echo=click.echo)
        except migrations.MigrationError as exc:
            raise click.ClickException(str(exc)) from None
    click.echo(f"Applied {len(applied)} migration(s)." if applied else "Nothing to migrate.")


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
