"""The job list's filters, read from a query string or a form: their rules in one place.

A bad value is a 400 page saying which filter and why, never a 500: the values reach
SQL only once they are known queues, states and tasks, ids that fit a bigint and times
psycopg can carry.
"""

import datetime
from dataclasses import asdict, dataclass

from flask import abort
from flask_login import current_user

import tasks.app
from tasks import queues
from webapp.admin import scope
from webapp.api import params
from webapp.store import job_search

STATES = tuple(job_search.STATES)
OURS = set(tasks.app.BLUEPRINTS)  # the namespaces of Howdah's tasks
MAX_TEXT = 200
# Times psycopg reads back whatever the offset: a range outside them is a mistake.
EARLIEST, LATEST = 1970, 9998


@dataclass(frozen=True)
class Filters:
    """What the reader asked for; ``None`` (or "") for a filter not used."""

    queue: str | None = None
    state: str | None = None
    task: str | None = None
    since: datetime.datetime | None = None
    until: datetime.datetime | None = None
    q: str = ""
    error: str = ""  # the error key of a failed attempt (the failures page links with it)

    def query(self) -> dict:
        """The filters in use, as query values (times as they were given, in UTC)."""
        values = {**asdict(self), "since": stamp(self.since), "until": stamp(self.until)}
        return {name: value for name, value in values.items() if value}

    def fields(self) -> list[tuple[str, str]]:
        """The filters in use, as (name, value) pairs for hidden fields and links."""
        return list(self.query().items())


def stamp(value: datetime.datetime | None) -> str | None:
    """A time as the filter form shows it: ``2026-11-29T21:35:12``, in UTC."""
    return None if value is None else value.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S")


def queue_choices() -> tuple[str, ...]:
    """The queues a reader may filter on: housekeeping for platform admins only."""
    return (*queues.ALL, queues.HOUSEKEEPING) if current_user.is_admin else queues.ALL


def task_choices() -> list[str]:
    """The task names a reader may filter on: every task of Howdah's for platform admins
    (not Procrastinate's built-in ones, which it never runs), the tasks a tenant may defer
    for the others."""
    if current_user.is_admin:
        return sorted(name for name in tasks.app.app.tasks if name.split(":")[0] in OURS)
    return sorted(tasks.app.deferrable(platform=False))


def choice(values, name: str, allowed) -> str | None:
    raw = (values.get(name) or "").strip()
    if not raw:
        return None
    if raw not in allowed:
        abort(400, f"The {name} filter must be one of: {', '.join(allowed)}.")
    return raw


def text(values, name: str) -> str:
    raw = (values.get(name) or "").strip()
    if len(raw) > MAX_TEXT or "\x00" in raw:
        abort(400, f"The {name} filter must be at most {MAX_TEXT} characters.")
    return raw


def moment(values, name: str) -> datetime.datetime | None:
    """A time such as ``2026-11-29T21:35`` (UTC unless an offset is given)."""
    raw = text(values, name)
    if not raw:
        return None
    try:
        value = datetime.datetime.fromisoformat(raw)
    except ValueError:
        abort(400, f"The {name} filter must be a time such as 2026-11-29T21:35 (UTC).")
    if value.tzinfo is None:
        value = value.replace(tzinfo=datetime.UTC)
    if not EARLIEST <= value.year <= LATEST:
        abort(400, f"The {name} filter must be a time between {EARLIEST} and {LATEST}.")
    return value


def read(values) -> Filters:
    """The filters of a query string or form (a 400 page for a bad one)."""
    filters = Filters(
        queue=choice(values, "queue", queue_choices()),
        state=choice(values, "state", STATES),
        task=choice(values, "task", task_choices()),
        since=moment(values, "since"),
        until=moment(values, "until"),
        q=text(values, "q"),
        error=text(values, "error"),
    )
    if filters.since and filters.until and filters.since >= filters.until:
        abort(400, "The time range must end after it starts (since before until).")
    return filters


def cursor(values, name: str = "before") -> int | None:
    """A page cursor or id bound: a job id (a 400 page otherwise)."""
    raw = (values.get(name) or "").strip()
    if not raw:
        return None
    value = params.parse_id(raw)
    if value is None or value < 1:
        abort(400, f"The {name} value must be a job id.")
    return value


def jobs_of(conn, filters: Filters, below: int | None = None) -> job_search.JobFilter:
    """The jobs these filters select in the page's scope, with ids below ``below``.

    The time range becomes a range of ids (see migration 0022), and housekeeping runs
    are left out unless their queue is chosen, as the API's list does.
    """
    since = filters.since and job_search.job_id_deferred_from(conn, filters.since)
    until = filters.until and job_search.job_id_deferred_from(conn, filters.until)
    bounds = [bound for bound in (below, until) if bound]
    return job_search.JobFilter(
        organization=scope.organization(),
        queue=filters.queue,
        hidden_queue=None if filters.queue else queues.HOUSEKEEPING,
        state=filters.state,
        task=filters.task,
        error=filters.error or None,
        min_id=since or None,
        below_id=min(bounds) if bounds else None,
    )
