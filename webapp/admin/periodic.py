"""The periodic tasks page: each schedule, its last run and outcome, and its next run.

Everyone sees it: the schedules are code, not data, and whether housekeeping runs
(stalled-job recovery above all) matters to every tenant. The jobs themselves belong to
no organization, so only platform admins get their ids and links.
"""

import datetime

import croniter
from flask import render_template

import tasks.app  # a module reference: tasks and webapp import each other
from webapp import db
from webapp.admin import bp
from webapp.store import periodic as store


def every(step: str, unit: str) -> str | None:
    """``*`` -> "every minute", ``*/5`` -> "every 5 minutes"; None for anything else."""
    if step == "*":
        return f"every {unit}"
    count = step.removeprefix("*/")
    if step.startswith("*/") and count.isdigit():
        return f"every {unit}" if count == "1" else f"every {count} {unit}s"
    return None


def describe(cron: str) -> str | None:
    """The cron schedule in words for the common shapes (UTC); None for the others."""
    fields = cron.split()
    if len(fields) not in (5, 6) or fields[2:5] != ["*", "*", "*"]:
        return None
    minute, hour = fields[0], fields[1]
    second = fields[5] if len(fields) == 6 else "0"
    if minute == hour == "*":
        return every(second, "second") if second != "0" else "every minute"
    if second != "0":
        return None
    if hour == "*":
        return f"every hour at minute {minute}" if minute.isdigit() else every(minute, "minute")
    if minute.isdigit() and hour.isdigit():
        return f"every day at {int(hour):02}:{int(minute):02} UTC"
    return None


def schedules(last_defers: list[dict]) -> list[dict]:
    """Every periodic task of the App with its cron, its last defer and its next run."""
    now = datetime.datetime.now(datetime.UTC)
    last = {(row["task_name"], row["periodic_id"]): row for row in last_defers}
    return [
        {
            "task_name": task_name,
            "periodic_id": periodic_id,
            "queue": periodic.task.queue,
            "cron": periodic.cron,
            "in_words": describe(periodic.cron),
            "next_run": croniter.croniter(periodic.cron, now).get_next(datetime.datetime),
            "last": last.get((task_name, periodic_id)),
        }
        for (task_name, periodic_id), periodic in sorted(registry().items())
    ]


def registry() -> dict:
    """The App's periodic tasks by (task name, periodic id)."""
    return tasks.app.app.periodic_registry.periodic_tasks


@bp.get("/periodic")
def periodic_list():
    """Every periodic task with its schedule, last run and outcome, and next run."""
    last = store.list_last_defers(db.get_conn(), sorted(registry()))
    return render_template("admin/periodic/list.html", tasks=schedules(last))
