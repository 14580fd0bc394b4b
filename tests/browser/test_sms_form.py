"""The "Send SMS" form in a real browser, with JavaScript on and off, against a live
server and a worker: an operator sends an SMS, follows the job's link and sees it succeed."""

import re

import pytest

from tests.browser.test_admin_flows import reload_until
from tests.browser.test_admin_pages import sign_in

pytestmark = pytest.mark.e2e

NUMBER = "+14155550123"


def counter(page) -> str:
    return page.locator("#body-count").inner_text()


def test_an_operator_sends_an_sms_and_sees_its_job_succeed(browse, make_user, conn, worker, orgs):
    page = browse(make_user("op@example.com", 1, "operator"))
    page.goto("/admin/queues")
    page.locator("nav.admin-nav").get_by_role("link", name="Send SMS").click()
    page.wait_for_url("**/admin/queues/sms")
    page.get_by_label("Recipient").fill(NUMBER)
    page.get_by_label("Message").fill("Your code is 123456 €")
    page.get_by_role("button", name="Send SMS").click()
    page.wait_for_url(re.compile(r".*/admin/queues/sms\?sent=\d+$"))
    job_id = int(page.url.rsplit("=", 1)[1])
    assert f"The SMS is queued as job {job_id}." in page.locator("main").inner_text()
    page.get_by_role("link", name=f"Open job {job_id}").click()
    page.wait_for_url(f"**/admin/queues/jobs/{job_id}")
    reload_until(page, "succeeded")
    (status, args) = conn.execute(
        "SELECT status::text, args FROM procrastinate_jobs WHERE id = %s", (job_id,)
    ).fetchone()
    assert status == "succeeded"
    assert args == {"organization_id": 1, "to": NUMBER, "body": "Your code is 123456 €"}
    assert page.console_errors == []


def test_an_error_shows_under_its_field_and_keeps_the_message(browse, make_user, conn, orgs):
    page = browse(make_user("op@example.com", 1, "operator"))
    page.goto("/admin/queues/sms")
    page.get_by_label("Recipient").fill("call me")
    page.get_by_label("Message").fill("Ünïcode ☃ " * 10)
    page.get_by_role("button", name="Send SMS").click()
    recipient = page.locator(".field", has=page.get_by_label("Recipient"))
    assert recipient.locator(".field-error").count() == 1
    assert page.get_by_label("Recipient").input_value() == "call me"
    assert page.get_by_label("Message").input_value() == "Ünïcode ☃ " * 10
    assert counter(page) == "100 characters, 2 segments (UCS-2)"  # rendered by the server
    assert conn.execute("SELECT count(*) FROM procrastinate_jobs").fetchone() == (0,)
    # The page answers 400 (the input was refused), which the browser notes; nothing else.
    assert [e for e in page.console_errors if "status of 400" not in e] == []


def test_the_counter_follows_the_typing(page, make_user, orgs):
    """With the script on, the count changes as the message is typed (counted as
    tasks/sms_text.py counts: the server renders the same text)."""
    sign_in(page, make_user("op@example.com", 1, "operator"))
    page.goto("/admin/queues/sms")
    assert counter(page) == "0 characters, 1 segment (GSM-7)"
    message = page.get_by_label("Message")
    message.fill("a" * 160)
    assert counter(page) == "160 characters, 1 segment (GSM-7)"
    message.fill("a" * 159 + "€")  # the euro sign counts twice
    assert counter(page) == "161 characters, 2 segments (GSM-7)"
    message.fill("a" * 70 + "☃")
    assert counter(page) == "71 characters, 2 segments (UCS-2)"
    message.fill("😀")  # outside the BMP: two UTF-16 units
    assert counter(page) == "2 characters, 1 segment (UCS-2)"
    assert page.console_errors == []
