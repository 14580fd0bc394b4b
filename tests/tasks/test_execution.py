"""Running one job and describing how it ended, whatever the task or its row does."""

import asyncio
import json
import time

import procrastinate
import procrastinate.testing
import pytest
from procrastinate.job_context import AbortReason

from tasks.app import app
from tasks.worker import execution

waiting_app = procrastinate.App(connector=procrastinate.testing.InMemoryConnector())


@waiting_app.task(name="waits", retry=3)
async def waits():
    """Wait to be cancelled."""
    await asyncio.sleep(10)


@waiting_app.task(name="exits")
def exits():
    """Try to end the worker."""
    raise SystemExit(3)


def context_for(task_name: str, attempts: int = 0, reason=None, on=app, **kwargs):
    job = procrastinate.jobs.Job(
        id=7,
        queue="default",
        lock=None,
        queueing_lock=None,
        task_name=task_name,
        task_kwargs=kwargs,
        attempts=attempts,
    )
    return procrastinate.JobContext(
        app=on, job=job, start_timestamp=time.time(), abort_reason=lambda: reason
    )


def run(context) -> execution.Outcome:
    return asyncio.run(execution.run(context))


def test_a_success_records_its_result():
    outcome = run(context_for("diagnostics:fail_then_succeed", organization_id=1, failures=0))
    assert (outcome.status, outcome.retry, outcome.error_class) == ("succeeded", None, None)
    assert json.loads(outcome.result_summary) == {"succeeded_on_attempt": 1}
    assert outcome.attempt_row("w")[:4] == (7, 1, "w", "succeeded")
    # The job's task, queue and organization go with it: recording needs no read of the job.
    assert outcome.attempt_row("w")[-3:] == ("diagnostics:fail_then_succeed", "default", 1)


def test_a_failure_records_its_error_and_the_retry_its_task_decides():
    outcome = run(context_for("diagnostics:fail_then_succeed", organization_id=1, failures=5))
    assert (outcome.status, outcome.error_class) == ("failed", "PlannedFailure")
    assert outcome.error_message == "planned failure 1 of 5"
    assert outcome.attempt_row("w")[-3:] == ("diagnostics:fail_then_succeed", "default", 1)
    assert "Traceback (most recent call last)" in outcome.traceback
    assert outcome.retry is not None and outcome.retry_at > outcome.finished_at
    assert outcome.finish_row()[:4] == (7, 0, "failed", outcome.retry_at)


def test_an_unknown_task_fails_for_good():
    outcome = run(context_for("nope:nope"))
    assert (outcome.status, outcome.error_class, outcome.retry) == ("failed", "TaskNotFound", None)


def test_an_invalid_payload_fails_without_a_retry():
    outcome = run(context_for("sms:send_notification", organization_id=1, to="+1", body="x"))
    assert outcome.error_class == "InvalidPayload"  # retrying cannot change the payload
    assert outcome.retry is None


def test_a_task_that_exits_the_process_only_fails_its_job():
    outcome = run(context_for("exits", on=waiting_app))
    assert (outcome.status, outcome.error_class) == ("failed", "SystemExit")


@pytest.mark.parametrize(
    ("reason", "retried"), [(AbortReason.USER_REQUEST, False), (AbortReason.SHUTDOWN, True)]
)
def test_an_abort_is_final_on_request_and_retried_after_a_shutdown(reason, retried):
    context = context_for("waits", reason=reason, on=waiting_app)

    async def cancelled():
        task = asyncio.ensure_future(execution.run(context))
        await asyncio.sleep(0.01)
        task.cancel()
        return await task

    outcome = asyncio.run(cancelled())
    assert outcome.status == "aborted"
    assert (outcome.retry is not None) is retried


class Unprintable(Exception):
    def __str__(self):
        raise RuntimeError("no")


def test_errors_that_cannot_be_shown_or_stored_are_cleaned():
    outcome = execution.Outcome.of_error(1, 0, "t", execution.now(), Unprintable())
    assert outcome.error_message == "<a message that cannot be shown>"
    dirty = execution.Outcome.of_error(1, 0, "t", execution.now(), ValueError("a\x00b\ud800c"))
    assert dirty.error_message == "a\\x00b\\ud800c"
    dirty.error_message.encode("utf-8")  # storable as UTF-8
    long = execution.Outcome.of_error(1, 0, "t", execution.now(), ValueError("x" * 10_000))
    assert len(long.error_message) == execution.MESSAGE_LIMIT
    assert execution.summarize({"s": "\ud800"}) is not None
    assert execution.clean(None, 5) is None


@pytest.mark.parametrize(
    ("args", "why"),
    [
        ('["a", "list"]', "not a JSON object"),
        ("[" * 5000 + "]" * 5000, "cannot be loaded"),
    ],
)
def test_rows_that_cannot_be_loaded_become_failed_outcomes(args, why):
    row = {
        "id": 3,
        "queue_name": "default",
        "priority": 0,
        "lock": None,
        "queueing_lock": None,
        "task_name": "diagnostics:noop",
        "args": args,
        "scheduled_at": None,
        "attempts": 0,
    }
    with pytest.raises(execution.UnloadableJob, match=why) as caught:
        execution.load_job(row, worker_id=1)
    outcome = execution.unloadable(row, caught.value)
    assert (outcome.job_id, outcome.status, outcome.retry) == (3, "failed", None)
    assert outcome.error_class == "UnloadableJob"
    assert outcome.attempt_row("w")[-3:] == ("diagnostics:noop", "default", None)


def test_an_unloadable_row_still_names_its_organization_when_it_can():
    row = {"id": 3, "attempts": 0, "queue_name": "default", "task_name": "gone"}
    row["args"] = '[{"organization_id": 4}]'
    assert execution.unloadable(row, execution.UnloadableJob("x")).organization_id is None
    row["args"] = '{"organization_id": 4, "when": "never"}'
    assert execution.unloadable(row, execution.UnloadableJob("x")).attempt_row("w")[-1] == 4
