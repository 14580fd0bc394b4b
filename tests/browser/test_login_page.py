"""Signing in and out in a real browser."""

import os
from pathlib import Path

from tests.conftest import TEST_PASSWORD


def shot(page, tmp_path, name):
    """Keep a screenshot: in SCREENSHOT_DIR when set (to look at), else with the test."""
    folder = Path(os.environ.get("SCREENSHOT_DIR") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(folder / f"{name}.png"), full_page=True)


def test_sign_in_and_out(page, make_user, tmp_path):
    email = make_user("op@acme.example", 1, "operator")
    page.goto("/login")
    assert page.title() == "Sign in · Howdah"
    assert not page.get_by_label("Keep me signed in on this device").is_checked()
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(TEST_PASSWORD)
    shot(page, tmp_path, "login")
    page.get_by_role("button", name="Sign in").click()

    page.wait_for_url("**/")
    assert page.get_by_text("op@acme.example · operator").is_visible()
    shot(page, tmp_path, "home-signed-in")
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url("**/login")
    assert page.get_by_text("You are signed out.").is_visible()
    assert page.console_errors == []


def test_wrong_password_shows_one_generic_message(page, make_user, tmp_path):
    email = make_user("op@acme.example", 1, "operator")
    page.goto("/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill("not the right password")
    page.get_by_role("button", name="Sign in").click()
    assert page.get_by_role("status").inner_text() == "Invalid email or password."
    shot(page, tmp_path, "login-failed")
    assert page.url.endswith("/login")
    assert page.console_errors == []


def test_signed_in_page_follows_next(page, make_user):
    email = make_user("op@acme.example", 1, "operator")
    page.goto("/login?next=/api/v1/tasks")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(TEST_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/api/v1/tasks")
    assert "sms:send_notification" in page.content()
