"""A real browser (Debian's chromium, driven by playwright) against a real gunicorn."""

import os
import shutil

import pytest

from tests import processes
from tests.conftest import TEST_PASSWORD, TEST_SECRET

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def chromium_path() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="package")
def browser():
    """One headless chromium for these tests. CI installs it; elsewhere, a missing one skips.

    Package-scoped: playwright's sync API runs an event loop in the main thread while it
    is open, which later tests calling ``asyncio.run`` must not find.
    """
    path = chromium_path()
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed; .ci/run installs Debian's chromium")
        pytest.skip("no chromium on this machine (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=path, args=CHROMIUM_FLAGS)
        yield instance
        instance.close()


@pytest.fixture
def live_server(db_url, tmp_path):
    """gunicorn on the test database; yields its base URL."""
    port = processes.free_port()
    env = processes.process_env(
        DATABASE_URL=db_url, SECRET_KEY=TEST_SECRET, PORT=str(port), WEB_CONCURRENCY="1"
    )
    web = processes.start_web(env, tmp_path / "web.log")
    base = f"http://127.0.0.1:{port}"
    processes.wait_for(f"{base}/healthz")
    yield base
    processes.stop(web)


@pytest.fixture
def page(browser, live_server):
    """A fresh browser context and page; console errors (CSP refusals included) are kept."""
    context = browser.new_context(base_url=live_server)
    page = context.new_page()
    page.console_errors = []
    page.on("console", lambda m: m.type == "error" and page.console_errors.append(m.text))
    yield page
    context.close()


@pytest.fixture
def worker(db_url, tmp_path):
    """A worker process on the test database (the live server's)."""
    env = processes.process_env(
        DATABASE_URL=db_url, SECRET_KEY=TEST_SECRET, WORKER_SHUTDOWN_TIMEOUT="3"
    )
    process = processes.start_worker(env, tmp_path / "worker.log")
    yield process
    processes.stop(process)


@pytest.fixture(params=[True, False], ids=["js", "no-js"])
def browse(request, browser, live_server):
    """Open a signed-in page as ``email``, in a context with JavaScript on or off."""
    contexts = []

    def open_as(email):
        context = browser.new_context(base_url=live_server, java_script_enabled=request.param)
        contexts.append(context)
        page = context.new_page()
        page.console_errors = []
        page.on("console", lambda m: m.type == "error" and page.console_errors.append(m.text))
        page.goto("/login")
        page.get_by_label("Email").fill(email)
        page.get_by_label("Password").fill(TEST_PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url("**/")
        return page

    yield open_as
    for context in contexts:
        context.close()
