"""The workers page: who is running, where, on which queues, and with which jobs.

Workers serve every organization, so everyone sees all of them; the jobs they run are
shown only to those who may see the jobs, and counted for the others.
"""

from collections import defaultdict

from flask import current_app, render_template

from webapp import db
from webapp.admin import bp, scope
from webapp.store import workers as store

STOPPED_HOURS = 24  # how far back the page lists workers that stopped cleanly
JOBS_SHOWN = 20  # running jobs listed per worker; the others are counted


def with_jobs(workers: list[dict], running: list[dict], hidden: list[dict]) -> list[dict]:
    """Each worker with the running jobs shown to this reader, how many more of those it
    runs (``more``), and the count of the others (``hidden``)."""
    jobs = defaultdict(list)
    for job in running:
        jobs[job["worker_id"]].append(job)
    counts = {row["worker_id"]: row for row in hidden}
    none = {"others": 0, "platform": 0}
    shown = []
    for worker in workers:
        mine = jobs[worker["worker_id"]]
        more = mine[0]["in_scope"] - len(mine) if mine else 0
        shown.append(
            {**worker, "jobs": mine, "more": more, "hidden": counts.get(worker["worker_id"], none)}
        )
    return shown


@bp.get("/workers")
def worker_list():
    """Every worker with its heartbeat, queues and the jobs it runs now."""
    conn = db.get_conn()
    organization = scope.organization()
    workers = with_jobs(
        store.list_live_workers(conn, current_app.config["WORKER_STALE_SECONDS"]),
        store.list_running_jobs(conn, organization, JOBS_SHOWN),
        store.count_hidden_running_jobs(conn, organization),
    )
    return render_template(
        "admin/workers/list.html",
        workers=workers,
        stopped=store.list_stopped_workers(conn, STOPPED_HOURS),
        stopped_hours=STOPPED_HOURS,
        stale_seconds=current_app.config["WORKER_STALE_SECONDS"],
    )
