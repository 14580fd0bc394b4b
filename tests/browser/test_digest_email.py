"""The HTML digest in a real browser, as a mail client would show it: at the 600 px of a
desktop client's reading pane and at phone widths.

webapp/static/digest.png (the README's picture) is this test's 600 px shot, taken with
SCREENSHOT_DIR set.
"""

import asyncio
import concurrent.futures
import os
from pathlib import Path

import psycopg_pool
import pytest

import tasks.app  # the digest task gets its namespace from the App
from tasks import digest_view
from tasks.payloads import DigestPayload
from tests.tasks import digest_rows

assert tasks.app  # imported for its side effect


def digest_of(db_url, subscription_id: int) -> digest_view.Digest:
    """The digest of Acme's day before ``UNTIL``, read from the database.

    In a thread of its own: the browser's event loop runs in this one.
    """

    async def read():
        payload = DigestPayload(
            organization_id=1,
            period="daily",
            recipients=["ops@example.com"],
            subscription_id=subscription_id,
            until=digest_rows.UNTIL,
        )
        async with (
            psycopg_pool.AsyncConnectionPool(db_url, min_size=1, max_size=1) as pool,
            pool.connection() as conn,
        ):
            return await digest_view.gather(
                conn, payload, digest_rows.UNTIL, "https://howdah.example.com"
            )

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, read()).result()


@pytest.fixture
def digest(db_url, conn, orgs):
    digest_rows.week_of_activity(conn)
    return digest_of(db_url, digest_rows.insert_subscription(conn))


@pytest.mark.parametrize(("name", "width"), [("600", 600), ("phone", 375), ("narrow", 320)])
def test_the_html_digest_reads_well_at_any_width(browser, digest, tmp_path, name, width):
    html = digest_view.render(digest)[1]
    assert "<script" not in html and "<link" not in html and "<style" not in html
    context = browser.new_context(viewport={"width": width, "height": 480})
    page = context.new_page()
    requests = []
    page.on("request", lambda request: requests.append(request.url))
    page.set_content(html)
    for heading in ["Daily digest for Acme", "SMS messages", "Failed jobs", "Admin pages"]:
        assert page.get_by_role("heading", name=heading, exact=True).is_visible(), heading
    for shown in [
        "Sun 8 Mar 2026, 09:00 to Mon 9 Mar 2026, 09:00 (Europe/Berlin)",
        "2 jobs failed (4 failed runs, 2 kinds of error).",
        "sms:send_notification",
        "ProviderError: invalid number <phone>",
    ]:
        assert page.get_by_text(shown, exact=True).is_visible(), shown
    for label, value in [("Sent", "5"), ("Delivered", "3"), ("Failed", "2")]:
        cell = page.locator("td", has=page.get_by_text(label, exact=True)).last
        assert cell.locator("p").first.inner_text() == value
    for link in digest.links:
        button = page.get_by_role("link", name=link.label, exact=True)
        assert button.is_visible() and button.get_attribute("href") == link.url
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"{overflow} px wider than the window"
    assert requests == []  # nothing fetched: no image, font or style from elsewhere
    folder = Path(os.environ.get("SCREENSHOT_DIR") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(folder / f"digest-{name}.png"), full_page=True)
    context.close()
