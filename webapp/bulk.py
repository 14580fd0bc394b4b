"""Bulk actions on jobs: which jobs an action applies to and why not, and carrying it
out, at once (up to ``INLINE_MAX`` jobs) or in the background (``tasks.bulk``).

The rules here are the ones the batches of ``webapp.store.bulk_actions`` check in SQL;
the preview states them in words.
"""

import psycopg

import tasks.app  # a module reference: tasks and webapp import each other
from tasks import bulk as bulk_task
from webapp.queue import get_queue
from webapp.store import bulk_actions as store
from webapp.store import job_search

ACTIONS = {"cancel": "Cancel", "retry": "Retry", "delete": "Delete"}
INLINE_MAX = 1000
PREVIEW_CAP = 10_000  # jobs a preview counts, at most: see count_matching_jobs
SHOWN = ("queue", "state", "task", "error", "since", "until")  # a bulk filter, as its page says it

ACTS, SKIPS = True, False
# Per action and state: whether the action applies, and what the preview says of them.
RULES = {
    "cancel": {
        "waiting": (ACTS, "are waiting and will be cancelled"),
        "scheduled": (ACTS, "are scheduled and will be cancelled"),
        "running": (ACTS, "are running: they will be asked to abort, and stop when they can"),
        "succeeded": (SKIPS, "have succeeded and cannot be cancelled"),
        "failed": (SKIPS, "have failed and cannot be cancelled"),
        "cancelled": (SKIPS, "are cancelled already"),
        "aborted": (SKIPS, "were aborted and cannot be cancelled"),
    },
    "retry": {
        "waiting": (SKIPS, "are waiting and cannot be retried"),
        "scheduled": (SKIPS, "are scheduled and cannot be retried"),
        "running": (SKIPS, "are running and cannot be retried"),
        "succeeded": (SKIPS, "have succeeded and cannot be retried"),
        "failed": (ACTS, "have failed and will go back to their queue"),
        "cancelled": (ACTS, "were cancelled and will run again as new jobs"),
        "aborted": (ACTS, "were aborted and will run again as new jobs"),
    },
    "delete": {
        "waiting": (SKIPS, "are waiting and cannot be deleted (cancel them first)"),
        "scheduled": (SKIPS, "are scheduled and cannot be deleted (cancel them first)"),
        "running": (SKIPS, "are running and cannot be deleted"),
        "succeeded": (ACTS, "have succeeded and will be deleted with their attempts"),
        "failed": (ACTS, "have failed and will be deleted with their attempts"),
        "cancelled": (ACTS, "are cancelled and will be deleted with their attempts"),
        "aborted": (ACTS, "were aborted and will be deleted with their attempts"),
    },
}
ASKED_TO_ABORT = (SKIPS, "are running and were asked to abort already")
RETRIED = (SKIPS, "were retried already (their copy is the job to retry)")
PLATFORM_TASK = (SKIPS, "run platform tasks, which only platform admins may retry")


def barred_tasks(platform: bool) -> list[str]:
    """Tasks a bulk retry by this caller leaves alone (``platform``: a platform admin)."""
    return [] if platform else bulk_task.platform_tasks()


def verdict(action: str, group: dict) -> tuple[bool, str]:
    """Whether ``action`` applies to a group of jobs counted alike, and why (not)."""
    acts, reason = RULES[action][group["state"]]
    if action == "cancel" and group["state"] == "running" and group["abort_requested"]:
        return ASKED_TO_ABORT
    if action == "retry" and acts and group["retried"]:
        return RETRIED
    if action == "retry" and acts and group["platform_task"]:
        return PLATFORM_TASK
    return acts, reason


def summarize(action: str, groups: list[dict]) -> dict:
    """The preview of an action on counted jobs: how many match, how many it acts on,
    and a line per reason, with its count; ``capped``: there may be more than counted."""
    lines: dict[tuple[bool, str], int] = {}
    for group in groups:
        key = verdict(action, group)
        lines[key] = lines.get(key, 0) + group["jobs"]
    reasons = [
        {"acts": acts, "jobs": count, "reason": reason}
        for (acts, reason), count in sorted(lines.items(), key=lambda item: -item[1])
    ]
    acting = sum(line["jobs"] for line in reasons if line["acts"])
    total = sum(lines.values())
    return {
        "total": total,
        "capped": total >= PREVIEW_CAP,
        "acting": acting,
        "skipping": total - acting,
        "reasons": reasons,
    }


def describe(row: dict) -> str:
    """Which jobs a bulk_actions row acts on, in words."""
    if row["job_ids"] is not None:
        chosen = f"{len(row['job_ids'])} selected jobs"
    else:
        shown = [f"{name} = {row['filter'][name]}" for name in SHOWN if name in row["filter"]]
        chosen = "jobs with " + ", ".join(shown) if shown else "every job"
    return f"{chosen}, up to job {row['max_id']}"


def apply_now(
    conn: psycopg.Connection, action: str, jobs: job_search.JobFilter, platform: bool
) -> dict:
    """Act on up to ``INLINE_MAX`` jobs in the caller's transaction: ``{seen, acted, ...}``."""
    return store.apply_batch(conn, action, jobs, INLINE_MAX, barred_tasks(platform))


def start(conn: psycopg.Connection, row: dict) -> int:
    """Record a bulk action and defer its first run, on the caller's connection (so in
    its transaction); returns the bulk action's id."""
    bulk_id = store.insert_bulk_action(conn, row)
    job = tasks.app.app.configure_task(
        bulk_task.NAME, lock=bulk_task.lock_of(bulk_id), task_kwargs={"bulk_id": bulk_id}
    ).job
    get_queue().manager.batch_defer_jobs([job], connection=conn)
    return bulk_id
