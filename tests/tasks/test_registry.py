"""Task declarations: defaults next to each task, capped backoff, time limits."""

import asyncio
import datetime

import procrastinate
import procrastinate.testing
import pytest
from procrastinate.job_context import AbortReason

from tasks import queues, registry
from tasks.app import app, deferrable


def test_deferrable_tasks_and_their_queues():
    assert {name: spec.queue for name, spec in deferrable().items()} == {
        "sms:send_notification": queues.SMS,
        "email:send_digest": queues.EMAIL,
        "diagnostics:noop": queues.DEFAULT,
        "diagnostics:sleep": queues.DEFAULT,
        "diagnostics:work_in_steps": queues.DEFAULT,
        "diagnostics:fail_then_succeed": queues.DEFAULT,
    }
    for name, spec in deferrable().items():
        assert app.tasks[name] is spec.task
        assert spec.task.queue == spec.queue
        assert spec.time_limit > 0
        assert spec.description


def test_deferrable_tasks_are_read_from_the_apps_own_registry():
    bp = procrastinate.Blueprint()

    @registry.job_task(bp, name="declared", payload=registry.JobPayload, queue="default")
    async def declared(payload, context):
        """A task of another App."""

    @bp.task(name="plain")
    def plain():
        """Declared without job_task: it runs, but the API does not offer it."""

    # Declaring a task puts it nowhere but its blueprint: the real App is unchanged.
    assert "declared" not in deferrable()
    other = procrastinate.App(connector=procrastinate.testing.InMemoryConnector())
    assert registry.deferrable(other) == {}
    other.add_tasks_from(bp, namespace="extra")
    assert list(registry.deferrable(other)) == ["extra:declared"]
    assert registry.deferrable(other)["extra:declared"].task is other.tasks["extra:declared"]


def test_housekeeping_tasks_are_periodic_and_not_deferrable():
    periodic = {
        task.name
        for task, _ in [
            (p.task, p.periodic_id) for p in app.periodic_registry.periodic_tasks.values()
        ]
    }
    assert periodic == {
        "maintenance:retry_stalled_jobs",
        "maintenance:purge_finished_jobs",
        "maintenance:count_finished_jobs",
        "email:schedule_digests",
    }
    assert not periodic & set(deferrable())


def job(attempts: int) -> procrastinate.jobs.Job:
    return procrastinate.jobs.Job(
        id=1, queue="default", lock=None, queueing_lock=None, task_name="t", attempts=attempts
    )


@pytest.mark.parametrize(("attempts", "seconds"), [(0, 2), (1, 4), (2, 8), (6, 128), (7, 200)])
def test_backoff_doubles_up_to_its_cap(attempts, seconds):
    backoff = registry.Backoff(max_retries=10, base=2, cap=200)
    decision = backoff.get_retry_decision(exception=ValueError(), job=job(attempts))
    expected = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=seconds)
    assert abs((decision.retry_at - expected).total_seconds()) < 1


def test_backoff_stops_after_max_retries_and_on_invalid_payloads():
    backoff = registry.Backoff(max_retries=2)
    assert backoff.get_retry_decision(exception=ValueError(), job=job(2)) is None
    invalid = registry.InvalidPayload("bad")
    assert backoff.get_retry_decision(exception=invalid, job=job(0)) is None


class Refusal(Exception):
    def __init__(self, retry_after):
        super().__init__("try later")
        self.retry_after = retry_after


def seconds_of(decision) -> float:
    return (decision.retry_at - datetime.datetime.now(datetime.UTC)).total_seconds()


@pytest.mark.parametrize(
    ("retry_after", "attempts", "seconds"),
    [
        (30, 0, 30),  # longer than the backoff's delay: Retry-After wins
        (1, 3, 16),  # shorter: the backoff's delay
        (900, 0, 900),  # beyond the backoff's cap (300 s), within retry_after_cap
        (86_400, 0, 3600),  # a day: held to retry_after_cap
        (None, 0, 2),
        ("soon", 0, 2),  # not a number: ignored
    ],
)
def test_backoff_honours_retry_after(retry_after, attempts, seconds):
    backoff = registry.Backoff(max_retries=5, base=2, cap=300)
    decision = backoff.get_retry_decision(exception=Refusal(retry_after), job=job(attempts))
    assert abs(seconds_of(decision) - seconds) < 1


def test_backoff_retries_try_later_whatever_the_attempts_and_never_not_retryable():
    backoff = registry.Backoff(max_retries=2)
    later = registry.TryLater("slots taken", retry_after=12)
    assert abs(seconds_of(backoff.get_retry_decision(exception=later, job=job(50))) - 12) < 1
    refused = registry.NotRetryable("refused")
    assert backoff.get_retry_decision(exception=refused, job=job(0)) is None
    assert issubclass(registry.InvalidPayload, registry.NotRetryable)


class FakeContext:
    """Just enough of a JobContext for calling a task function directly."""

    def __init__(self, attempts: int = 0):
        self.job = job(attempts)
        self.additional_context = {}  # where progress reports keep their state

    def should_abort(self) -> bool:
        return False


def run(task, attempts: int = 0, **kwargs):
    return asyncio.run(task.func(FakeContext(attempts), **kwargs))


def test_task_validates_its_payload_before_running():
    with pytest.raises(registry.InvalidPayload, match="organization_id"):
        run(app.tasks["sms:send_notification"], to="+14155550123", body="hi")


def test_fail_then_succeed_fails_the_first_attempts():
    task = app.tasks["diagnostics:fail_then_succeed"]
    with pytest.raises(Exception, match="planned failure 2 of 2"):
        run(task, attempts=1, organization_id=1, failures=2)
    assert run(task, attempts=2, organization_id=1, failures=2) == {"succeeded_on_attempt": 3}


def test_time_limit_stops_a_slow_task():
    bp = procrastinate.Blueprint()

    @registry.job_task(
        bp, name="slow", payload=registry.JobPayload, queue="default", time_limit=0.05
    )
    async def slow(payload, context):
        """Sleep too long."""
        await asyncio.sleep(5)

    with pytest.raises(registry.TimeLimitExceeded, match=r"0\.05 s time limit"):
        run(slow, organization_id=1)


def test_a_task_without_a_docstring_has_an_empty_description():

    @registry.job_task(
        procrastinate.Blueprint(), name="bare", payload=registry.JobPayload, queue="default"
    )
    async def bare(payload, context):
        return None

    assert registry.spec_of(bare).description == ""


class AbortingContext(FakeContext):
    def __init__(self, reason):
        super().__init__()
        self.reason = reason

    def abort_reason(self):
        return self.reason


@pytest.mark.parametrize(
    ("reason", "raised"),
    [
        (AbortReason.USER_REQUEST, procrastinate.exceptions.JobAborted),
        (AbortReason.SHUTDOWN, asyncio.CancelledError),
    ],
)
def test_cancellation_ends_as_aborted_only_when_someone_asked(reason, raised):
    bp = procrastinate.Blueprint()

    @registry.job_task(bp, name="waits", payload=registry.JobPayload, queue="default")
    async def waits(payload, context):
        """Wait to be cancelled."""
        await asyncio.sleep(10)

    async def cancel_it():
        task = asyncio.ensure_future(waits.func(AbortingContext(reason), organization_id=1))
        await asyncio.sleep(0.01)
        task.cancel()
        await task

    with pytest.raises(raised):
        asyncio.run(cancel_it())


def test_a_timeout_inside_the_task_is_not_the_time_limit():
    bp = procrastinate.Blueprint()

    @registry.job_task(
        bp, name="provider_times_out", payload=registry.JobPayload, queue="default", time_limit=30
    )
    async def provider_times_out(payload, context):
        """A provider's own timeout."""
        raise TimeoutError("provider took too long")

    with pytest.raises(TimeoutError, match="provider took too long"):
        run(provider_times_out, organization_id=1)
