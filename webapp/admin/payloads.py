"""A job's payload for people: formatted, cut when large, edited, checked and compared."""

import difflib
import json
from dataclasses import dataclass
from typing import Any

import pydantic

import tasks.app  # a module reference: tasks and webapp import each other
from webapp.queue import field_errors, organization_of

SHOWN_BYTES = 16 * 1024  # the part of a payload a job's page shows; the rest is a link


@dataclass(frozen=True)
class Shown:
    """The payload as a page shows it: formatted, and cut past ``SHOWN_BYTES``."""

    text: str
    cut: bool
    size: int  # bytes of the whole formatted text


def pretty(args: Any) -> str:
    """JSON for reading: indented, keys sorted (as PostgreSQL's jsonb keeps them anyway)."""
    return json.dumps(args, indent=2, ensure_ascii=False, sort_keys=True)


def shown(args: Any, limit: int = SHOWN_BYTES) -> Shown:
    """The formatted payload, cut at ``limit`` bytes (never inside a character)."""
    data = pretty(args).encode()
    if len(data) <= limit:
        return Shown(data.decode(), False, len(data))
    return Shown(data[:limit].decode(errors="ignore"), True, len(data))


def parse(text: str, max_bytes: int) -> tuple[dict | None, str | None]:
    """The edited payload as a JSON object, or why it is not one."""
    if len(text.encode()) > max_bytes:
        return None, f"The payload is over the {max_bytes:,} bytes a job may carry."
    try:
        value = json.loads(text)
    except (ValueError, RecursionError) as exc:
        return None, f"This is not valid JSON: {exc}."
    if not isinstance(value, dict):
        return None, "The payload must be a JSON object, in braces."
    return value, None


def check(job: dict, value: dict) -> tuple[dict | None, list[dict]]:
    """The edited payload as the task's model stores it, or field errors (the task's
    model's, and a changed organization)."""
    spec = tasks.app.deferrable().get(job["task_name"])
    if spec is None:
        return None, [{"field": "task", "message": f"unknown task {job['task_name']!r}"}]
    try:
        data = spec.payload.model_validate(value)
    except pydantic.ValidationError as exc:
        return None, field_errors(exc, "payload")
    if data.organization_id != organization_of(job["args"]):
        message = "a job stays in its organization; retry it with the same organization_id"
        return None, [{"field": "payload.organization_id", "message": message}]
    return data.model_dump(mode="json"), []


def diff(original: Any, edited: Any, job_id: int) -> list[tuple[str, str]]:
    """A unified diff of the formatted payloads, as (kind, line): kind is ``added``,
    ``removed``, ``hunk`` or ``same``."""
    lines = difflib.unified_diff(
        pretty(original).splitlines(),
        pretty(edited).splitlines(),
        f"job {job_id}",
        "edited",
        lineterm="",
    )
    return [(kind_of(line), line) for line in lines]


def kind_of(line: str) -> str:
    """What a line of a unified diff is."""
    if line.startswith(("+++", "---", "@@")):
        return "hunk"
    return {"+": "added", "-": "removed"}.get(line[:1], "same")


def diff_text(lines: list[tuple[str, str]]) -> str:
    """The diff as text, for the audit entry."""
    return "\n".join(line for _, line in lines)
