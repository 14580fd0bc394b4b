"""What a digest says: its values read from the store, prepared for the templates.

The templates (``templates/email/digest.txt`` and ``digest.html``) only loop over and
test these prepared values; every number, time and link is made here.
"""

import datetime
import functools
import urllib.parse
import zoneinfo
from dataclasses import dataclass

import jinja2
import psycopg

from tasks import queues
from tasks.payloads import DigestPayload
from webapp import paths
from webapp.store import digests as store

TOP_FAILURES = 10  # failure groups listed; the failures page has the rest
ADMIN = "/admin/queues"  # the admin pages' prefix (webapp.admin's blueprint)
PERIODS = {"daily": datetime.timedelta(days=1), "weekly": datetime.timedelta(days=7)}


@dataclass(frozen=True)
class Stat:
    label: str
    value: str
    alert: bool = False  # shown in the colour of trouble


@dataclass(frozen=True)
class Failure:
    task: str
    error: str
    counts: str
    url: str


@dataclass(frozen=True)
class Link:
    label: str
    url: str


@dataclass(frozen=True)
class Digest:
    """Everything the templates show."""

    subject: str
    title: str
    window: str
    sms: list[Stat]
    sms_note: str
    sms_url: str
    failed_summary: str
    failures: list[Failure]
    more_failures: str
    failures_url: str
    links: list[Link]
    footer: str


def plural(count: int, word: str, many: str | None = None) -> str:
    """``1 job``, ``2 jobs``, with a thousands separator."""
    return f"{count:,} {word if count == 1 else many or word + 's'}"


def moment(value: datetime.datetime, zone: datetime.tzinfo) -> str:
    """``Sun 8 Mar 2026, 09:00``, on the clock of ``zone``."""
    local = value.astimezone(zone)
    return f"{local:%a} {local.day} {local:%b %Y, %H:%M}"


def stamp(value: datetime.datetime) -> str:
    """A time as the job list's filters take it: ``2026-03-08T14:00:00``, in UTC."""
    return value.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S")


class Links:
    """Absolute links to one organization's admin pages."""

    def __init__(self, public_url: str, organization_id: int):
        self.base = public_url.rstrip("/") + ADMIN
        self.organization_id = organization_id

    def page(self, path: str = "", **query: str) -> str:
        values = {"org": self.organization_id, **query}
        return f"{self.base}{path}?{urllib.parse.urlencode(values)}"

    def jobs(self, **query: str) -> str:
        return self.page("/jobs", **query)


def sms_stats(counts: dict) -> tuple[list[Stat], str]:
    """The SMS figures, and a note on the messages in none of them."""
    stats = [
        Stat("Sent", f"{counts['sent']:,}"),
        Stat("Delivered", f"{counts['delivered']:,}"),
        Stat("Failed", f"{counts['failed']:,}", alert=counts["failed"] > 0),
    ]
    notes = []
    if counts["pending"]:
        notes.append(f"{plural(counts['pending'], 'message')} not accepted by the provider yet")
    if counts["unknown"]:
        notes.append(
            f"{plural(counts['unknown'], 'message')} whose request got no answer (not sent"
            " again: it may have gone out)"
        )
    if counts["logged"]:
        notes.append(f"{plural(counts['logged'], 'message')} only logged (console provider)")
    return stats, "; ".join(notes)


def error_text(row: dict) -> str:
    """``ProviderError: invalid number <phone>``: the class and the message's pattern."""
    return f"{row['error_class']}: {row['pattern']}" if row["error_class"] else row["pattern"]


def time_zone(name: str | None) -> datetime.tzinfo:
    """The subscription's time zone; UTC for none, or for one this machine does not know."""
    try:
        return zoneinfo.ZoneInfo(name) if name else datetime.UTC
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return datetime.UTC


def failure_counts(jobs: int, runs: int) -> str:
    """``2 jobs failed, 3 failed runs``, or ``1 failed run, all retried`` when no job
    ended failed."""
    if jobs == 0:
        return f"{plural(runs, 'failed run')}, all retried"
    return f"{plural(jobs, 'job')} failed, {plural(runs, 'failed run')}"


def failure_rows(rows: list[dict], links: Links) -> list[Failure]:
    """One entry per failure group, with its link to the matching failed jobs."""
    return [
        Failure(
            task=row["task_name"],
            error=error_text(row),
            counts=failure_counts(row["jobs"], row["runs"]),
            # The jobs that ended failed; when every one was retried, the retried ones.
            url=links.jobs(
                **({"state": "failed"} if row["jobs"] else {}),
                task=row["task_name"],
                error=row["error_key"],
            ),
        )
        for row in rows
    ]


def failed_summary(rows: list[dict]) -> tuple[str, str]:
    """The headline of the failures, and a note on the groups not listed."""
    if not rows:
        return "No job failed in this period.", ""
    first = rows[0]
    summary = (
        f"{plural(first['total_jobs'], 'job')} failed"
        f" ({plural(first['total_runs'], 'failed run')},"
        f" {plural(first['total_groups'], 'kind')} of error)."
    )
    hidden = first["total_groups"] - len(rows)
    more = f"{plural(hidden, 'more kind')} of error on the failures page." if hidden > 0 else ""
    return summary, more


def build(
    payload: DigestPayload,
    organization: str,
    window: tuple[datetime.datetime, datetime.datetime],
    zone_name: str | None,
    counts: dict,
    failures: list[dict],
    public_url: str,
) -> Digest:
    """The digest of an organization's period, from what the store read."""
    since, until = window
    zone = time_zone(zone_name)
    links = Links(public_url, payload.organization_id)
    period = {"since": stamp(since), "until": stamp(until)}
    stats, note = sms_stats(counts)
    summary, more = failed_summary(failures)
    jobs_failed = failures[0]["total_jobs"] if failures else 0
    return Digest(
        subject=f"{organization}: {payload.period} digest, {plural(counts['sent'], 'SMS', 'SMS')}"
        f" sent, {plural(jobs_failed, 'job')} failed",
        title=f"{payload.period.capitalize()} digest for {organization}",
        window=f"{moment(since, zone)} to {moment(until, zone)} ({zone})",
        sms=stats,
        sms_note=note,
        sms_url=links.jobs(queue=queues.SMS, **period),
        failed_summary=summary,
        failures=failure_rows(failures, links),
        more_failures=more,
        failures_url=links.page("/failures"),
        links=[
            Link("Overview", links.page()),
            Link("Failures", links.page("/failures")),
            Link("Failed jobs", links.jobs(state="failed")),
            Link("Jobs of the period", links.jobs(**period)),
        ],
        footer=f"Sent by Howdah to the {payload.period} digest subscribers of {organization}.",
    )


async def gather(
    conn: psycopg.AsyncConnection, payload: DigestPayload, until: datetime.datetime, public_url: str
) -> Digest | None:
    """Read the organization's period and build its digest; None if the organization or
    the subscription is gone (nobody wants it any more)."""
    organization = await store.get_organization_name(conn, payload.organization_id)
    zone_name = None
    if payload.subscription_id is not None:
        zone_name = await store.get_subscription_time_zone(
            conn, payload.subscription_id, payload.organization_id
        )
        if zone_name is None:
            return None
    if organization is None:
        return None
    since = until - PERIODS[payload.period]
    org = payload.organization_id
    counts = await store.count_messages(conn, org, since, until)
    failures = await store.list_failures(conn, org, since, until, TOP_FAILURES)
    name = " ".join(organization.split())  # one line: it goes in the Subject header
    return build(payload, name, (since, until), zone_name, counts, failures, public_url)


@functools.cache
def environment() -> jinja2.Environment:
    """Jinja on the top-level templates, escaping HTML (not the text templates)."""
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(paths.top_level("templates")),
        autoescape=jinja2.select_autoescape(["html"]),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def render(digest: Digest) -> tuple[str, str]:
    """The digest as text and as HTML."""
    env = environment()
    return (
        env.get_template("email/digest.txt").render(digest=digest),
        env.get_template("email/digest.html").render(digest=digest),
    )
