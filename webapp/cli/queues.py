"""Flask CLI commands for queue settings.

flask --app webapp queues list
flask --app webapp queues limit QUEUE [--max-running N] [--org-max-running N]   (0: no cap)
flask --app webapp queues pause QUEUE
flask --app webapp queues resume QUEUE
"""

import click

from tasks import queues as queue_names
from webapp import queue_controls
from webapp.cli import Commands, audited, connect
from webapp.store import queues as store

queues = Commands("queues", help="Queue settings: caps on running jobs, pauses.")
CAP = click.IntRange(min=0, max=1_000_000)
KNOWN = (*queue_names.ALL, queue_names.HOUSEKEEPING)
CLI_ACTOR = "flask cli"  # who paused a queue, as the audit log names the CLI


def shown(cap: int | None) -> str:
    return "no cap" if cap is None else str(cap)


@queues.command("list")
def list_settings() -> None:
    """Show every queue's caps."""
    with connect() as conn:
        rows = {row["queue_name"]: row for row in store.list_queue_settings(conn)}
    for name in sorted({*KNOWN, *rows}):
        row = rows.get(name, {})
        paused = row.get("paused_at")
        click.echo(
            f"{name}: max running {shown(row.get('max_running'))},"
            f" per organization {shown(row.get('organization_max_running'))}"
            + (f", paused since {paused:%Y-%m-%d %H:%M:%S} by {row['paused_by']}" if paused else "")
        )


@queues.command("limit")
@click.argument("queue", type=click.Choice(KNOWN))
@click.option("--max-running", type=CAP, help="Jobs of the queue running at once (0: no cap).")
@click.option(
    "--org-max-running", type=CAP, help="Jobs of one organization in it at once (0: no cap)."
)
def set_limits(queue: str, max_running: int | None, org_max_running: int | None) -> None:
    """Cap the jobs of QUEUE that run at once, across every worker."""
    if max_running is None and org_max_running is None:
        raise click.UsageError("give --max-running, --org-max-running or both")
    with connect() as conn, conn.transaction():
        current = {r["queue_name"]: r for r in store.list_queue_settings(conn)}.get(queue, {})
        row = store.upsert_queue_limits(
            conn,
            queue,
            current.get("max_running") if max_running is None else max_running or None,
            current.get("organization_max_running")
            if org_max_running is None
            else org_max_running or None,
        )
        audited(
            conn,
            "queue.limit",
            target_type="queue",
            target_id=queue,
            details={
                "max_running": row["max_running"],
                "organization_max_running": row["organization_max_running"],
            },
        )
    click.echo(
        f"{queue}: max running {shown(row['max_running'])},"
        f" per organization {shown(row['organization_max_running'])}"
    )


@queues.command("pause")
@click.argument("queue", type=click.Choice(KNOWN))
def pause(queue: str) -> None:
    """Pause QUEUE: Howdah's workers take none of its jobs until it is resumed."""
    with connect() as conn, conn.transaction():
        paused = queue_controls.pause(conn, queue, CLI_ACTOR)
        if paused:
            audited(conn, "queue.paused", target_type="queue", target_id=queue)
    click.echo(f"{queue}: paused" if paused else f"{queue}: paused already")


@queues.command("resume")
@click.argument("queue", type=click.Choice(KNOWN))
def resume(queue: str) -> None:
    """Resume QUEUE and wake the workers that serve it."""
    with connect() as conn, conn.transaction():
        pause = queue_controls.resume(conn, queue)
        if pause is not None:
            details = {"paused_at": pause["paused_at"].isoformat(), "paused_by": pause["paused_by"]}
            audited(conn, "queue.resumed", target_type="queue", target_id=queue, details=details)
    click.echo(f"{queue}: resumed" if pause else f"{queue}: not paused")
