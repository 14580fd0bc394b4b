"""Log lines: JSON and text formats, the context they carry, and request ids."""

import asyncio
import io
import json
import logging
import os
import re

import pytest

from webapp import logs


@pytest.fixture
def capture():
    """A logger writing through Howdah's handler; ``capture(fmt)`` returns its output."""
    stream = io.StringIO()
    logger = logging.getLogger("howdah.test_logs")
    logger.propagate = False
    logger.setLevel(logging.INFO)

    def use(log_format: str, several: bool = False) -> tuple[logging.Logger, io.StringIO]:
        logger.handlers[:] = [logs.handler(log_format, stream, several)]
        return logger, stream

    yield use
    logger.handlers.clear()


def lines(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_a_json_line_holds_the_fields_the_context_and_the_extras(capture):
    log, out = capture("json")
    token = logs.bind(request_id="abc", organization_id=3)
    try:
        log.warning("sent %s to …%s", "sms", "0123", extra={"action": "sent", "count": 2})
    finally:
        logs.reset(token)
    log.info("after the request")
    first, second = lines(out)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}\+00:00", first["time"])
    assert first == {
        "time": first["time"],
        "level": "WARNING",
        "logger": "howdah.test_logs",
        "pid": first["pid"],
        "message": "sent sms to …0123",
        "action": "sent",
        "count": 2,
        "request_id": "abc",
        "organization_id": 3,
    }
    assert "request_id" not in second and "organization_id" not in second


def test_a_traceback_stays_inside_its_json_line(capture):
    log, out = capture("json")
    try:
        raise ValueError("line one\nline two")
    except ValueError:
        log.exception("it failed")
    (record,) = lines(out)  # one line, however many the traceback has
    assert record["message"] == "it failed"
    assert record["traceback"].startswith("Traceback (most recent call last):\n")
    assert record["traceback"].endswith("ValueError: line one\nline two")


def test_characters_some_readers_split_lines_at_are_escaped(capture):
    log, out = capture("json")
    agent = "agent\u0085one\u2028two\u2029three, é …"  # as a client may send it
    log.info("request from %s", agent, extra={"user_agent": agent})
    text = out.getvalue()
    assert text.count("\n") == 1 and len(text.splitlines()) == 1
    (record,) = lines(out)
    assert record["message"] == f"request from {agent}" and record["user_agent"] == agent
    assert "é …" in text  # other characters stay readable


def test_a_field_passed_in_extra_wins_over_the_context(capture):
    log, out = capture("json")
    token = logs.bind(job_id=1)
    try:
        log.info("about another job", extra={"job_id": 2})
    finally:
        logs.reset(token)
    assert lines(out)[0]["job_id"] == 2


def test_text_lines_show_the_context_compactly(capture):
    log, out = capture("text", several=True)
    token = logs.bind(job_id=12, task="sms:send", organization_id=3, attempt=2)
    try:
        log.info("sent", extra={"action": "sent"})
    finally:
        logs.reset(token)
    log.info("idle")
    first, second = out.getvalue().splitlines()
    pid = f"[{os.getpid()}]"
    context = "[org=3 job=12 task=sms:send attempt=2]"
    assert first.endswith(f"INFO {pid} howdah.test_logs: {context} sent")
    assert second.endswith(f"INFO {pid} howdah.test_logs: idle")


def test_nothing_is_formatted_below_the_level(capture):
    log, out = capture("json")
    rendered = []

    class Payload:
        def __str__(self):
            rendered.append(1)
            return "payload"

    log.debug("job %s", Payload())
    assert rendered == [] and out.getvalue() == ""


def test_each_asyncio_task_keeps_its_own_context(capture):
    log, out = capture("json")

    async def job(job_id: int) -> None:
        logs.bind(job_id=job_id)
        await asyncio.sleep(0)  # the other job binds its own meanwhile
        log.info("running")

    async def both() -> None:
        await asyncio.gather(job(1), job(2))
        log.info("between jobs")

    asyncio.run(both())
    assert [record.get("job_id") for record in lines(out)] == [1, 2, None]


@pytest.mark.parametrize(
    ("sent", "kept"),
    [
        ("abc-123_x.y", True),
        ("a" * 128, True),
        ("a" * 129, False),
        ("", False),
        (None, False),
        ("has space", False),
        ("new\nline", False),
        ('{"json": 1}', False),
        ("é", False),
    ],
)
def test_a_request_id_is_kept_only_when_short_and_plain(sent, kept):
    value = logs.request_id(sent)
    if kept:
        assert value == sent
    else:
        assert re.fullmatch("[0-9a-f]{32}", value)


@pytest.fixture
def probe_app(app):
    """The app with a route that logs a line, as any view may."""

    def probe():
        logging.getLogger("webapp.probe").warning("probe", extra={"action": "probe"})
        return {"ok": True}

    app.add_url_rule("/api/v1/log-probe", "api.log_probe", probe)
    app.add_url_rule("/log-probe", "log_probe", probe)
    stream = io.StringIO()
    handler = logs.handler("json", stream)
    logging.getLogger("webapp.probe").addHandler(handler)
    yield app, stream
    logging.getLogger("webapp.probe").removeHandler(handler)


def test_a_request_s_lines_carry_its_id_and_the_token_s_organization(probe_app, make_token):
    app, out = probe_app
    secret = make_token(2)
    answer = app.test_client().get(
        "/api/v1/log-probe",
        headers={"Authorization": f"Bearer {secret}", "X-Request-ID": "router-7"},
    )
    assert answer.status_code == 200 and answer.headers["X-Request-ID"] == "router-7"
    (record,) = lines(out)
    assert (record["request_id"], record["organization_id"]) == ("router-7", 2)
    assert secret not in out.getvalue()


def test_an_anonymous_request_s_lines_carry_a_new_id(probe_app):
    app, out = probe_app
    answer = app.test_client().get("/log-probe", headers={"X-Request-ID": "x" * 129})
    sent_back = answer.headers["X-Request-ID"]
    assert re.fullmatch("[0-9a-f]{32}", sent_back)
    (record,) = lines(out)
    assert record["request_id"] == sent_back and "organization_id" not in record


@pytest.mark.parametrize("path", ["/no-such-page", "/api/v1/no-such-thing", "/api/v1/jobs"])
def test_every_answer_carries_a_request_id_errors_included(anon_client, path):
    answer = anon_client.get(path)
    assert answer.status_code in (401, 404)
    assert re.fullmatch("[0-9a-f]{32}", answer.headers["X-Request-ID"])
