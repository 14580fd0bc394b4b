"""The overview: every queue, its counts and its pulse.

Waiting, scheduled and running jobs are counted live; finished ones come from the
counts housekeeping keeps (``job_state_counts``), shown with their time; the last
hour from the per-minute rollup the worker keeps (``job_minutes``).
"""

from collections import defaultdict

from flask import current_app, render_template
from flask_login import current_user

from tasks import queues
from webapp import db
from webapp.admin import bp, scope, sparkline
from webapp.store import overview as store

FINISHED = ("succeeded", "failed", "cancelled", "aborted")
CONTROLS = ("admin.pause_queue", "admin.resume_queue", "admin.retry_failed", "admin.job_list")


def queue_rows(org: int | None) -> tuple[list[dict], object]:
    """One row per queue in scope, and the time of the finished jobs' count."""
    conn = db.get_conn()
    key = None if org is None else str(org)
    live = {row["queue_name"]: row for row in store.count_live_jobs(conn, key)}
    finished = defaultdict(dict)
    counted_at = None
    for row in store.list_finished_counts(conn, key):
        finished[row["queue_name"]][row["status"]] = row["jobs"]
        counted_at = min(filter(None, (counted_at, row["counted_at"])))
    minutes = defaultdict(dict)
    for row in store.list_last_hour(conn, key):
        minutes[row["queue_name"]][row["minutes_ago"]] = row
    names = sorted({*queues.ALL, *live, *finished, *minutes} - {queues.HOUSEKEEPING})
    if org is None:
        names.append(queues.HOUSEKEEPING)  # every organization: housekeeping too, apart
    stale = current_app.config["WORKER_STALE_SECONDS"]
    states = {row["queue_name"]: row for row in store.list_queue_states(conn, names, stale)}
    oldest = {row["queue_name"]: row for row in store.list_oldest_waiting(conn, names, key)}
    rows = []
    for name in names:
        hour = minutes[name].values()
        rows.append(
            {
                "name": name,
                **{state: 0 for state in ("waiting", "scheduled", "running")},
                **live.get(name, {}),
                **{state: finished[name].get(state, 0) for state in FINISHED},
                **states[name],
                "waiting_since": oldest[name]["waiting_since"],
                "finished_last_hour": sum(m["finished"] for m in hour),
                "failed_last_hour": sum(m["failed"] for m in hour),
                "sparkline": sparkline.draw({k: m["finished"] for k, m in minutes[name].items()}),
            }
        )
    return rows, counted_at


@bp.get("")
def overview():
    """Every queue with its counts by state, oldest waiting job, workers and throughput."""
    rows, counted_at = queue_rows(scope.organization())
    tenants = [row for row in rows if row["name"] != queues.HOUSEKEEPING]
    housekeeping = [row for row in rows if row["name"] == queues.HOUSEKEEPING]
    views = current_app.view_functions
    controls = {name.split(".")[1]: name in views for name in CONTROLS}
    return render_template(
        "admin/overview.html",
        queues=tenants,
        housekeeping=housekeeping,
        counted_at=counted_at,
        controls=controls,
        may_pause=current_user.is_admin,
    )
