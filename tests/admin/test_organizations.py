"""The organizations page: each organization's load, the noisiest first, for admins only."""

import datetime
import re

import pytest

from tasks import queues
from tests.admin.jobrows import add_job
from webapp.store import accounts as account_store

PAGE = "/admin/queues/organizations"
HOUR = datetime.timedelta(hours=1)
MINUTE = datetime.timedelta(minutes=1)


def rows_of(page: str) -> list[list[str]]:
    """Each table row's organization and counts, as the page shows them."""
    body = page.split('id="organization-load"')[1].split("</tbody>")[0]
    return [
        [
            re.sub(r"<[^>]+>", "", cell).strip()
            for cell in re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row, re.S)
        ]
        for row in body.split("<tr>")[2:]
    ]


@pytest.mark.parametrize("role", ["operator", "viewer"])
def test_only_platform_admins_may_open_it(sign_in, role):
    response = sign_in(role).client.get(PAGE)
    assert response.status_code == 403
    assert "platform admins" in response.get_data(as_text=True)


def test_it_is_in_the_navigation_of_admins_only(sign_in):
    assert f'href="{PAGE}"' in sign_in("admin").client.get("/admin/queues").get_data(as_text=True)
    operator = sign_in("operator").client.get("/admin/queues").get_data(as_text=True)
    assert f'href="{PAGE}"' not in operator


def ended(conn, organization, ago, finished, failed, queue="default"):
    """Runs the worker counted as ended in the minute ``ago`` back."""
    conn.execute(
        "INSERT INTO job_minutes (minute, queue_name, organization, finished, failed)"
        " VALUES (date_trunc('minute', now() - %s), %s, %s, %s, %s)",
        (ago, queue, "" if organization is None else str(organization), finished, failed),
    )


def test_counts_and_order(sign_in, conn, orgs):
    initech = account_store.insert_organization(conn, "Initech")["id"]
    # Acme: 3 waiting (one of them scheduled in the past), 1 running; one scheduled for
    # later, which does not wait yet.
    for _ in range(2):
        add_job(conn, orgs.a, status="todo")
    add_job(conn, orgs.a, status="todo", scheduled_in=-MINUTE)
    add_job(conn, orgs.a, status="todo", scheduled_in=HOUR)
    add_job(conn, orgs.a, status="doing")
    # Globex: 1 waiting; 4 runs ended in the last hour (as the worker counts them per
    # minute), 2 of them failed; older minutes fall out.
    add_job(conn, orgs.b, status="todo")
    ended(conn, orgs.b, 50 * MINUTE, finished=1, failed=1)
    ended(conn, orgs.b, 5 * MINUTE, finished=2, failed=1)
    ended(conn, orgs.b, 2 * HOUR, finished=9, failed=9)
    # Initech: nothing waiting, but the same load as Globex, with more finished runs.
    add_job(conn, initech, status="doing")
    ended(conn, initech, MINUTE, finished=6, failed=0)
    ended(conn, None, MINUTE, finished=5, failed=5)  # housekeeping runs count for nobody
    # Housekeeping belongs to no organization and counts for none.
    add_job(conn, None, "maintenance:purge_finished_jobs", queue=queues.HOUSEKEEPING, status="todo")
    add_job(conn, None, "maintenance:retry_stalled_jobs", queue=queues.HOUSEKEEPING, status="doing")

    rows = rows_of(sign_in("admin").client.get(PAGE).get_data(as_text=True))
    assert rows == [
        ["Acme", "3", "1", "0", "0", "0.0"],
        ["Initech", "0", "1", "0", "6", "0.1"],
        ["Globex", "1", "0", "2", "3", "0.1"],
    ]


def test_each_name_links_to_the_overview_of_that_organization(sign_in, orgs):
    page = sign_in("admin").client.get(f"{PAGE}?org={orgs.a}").get_data(as_text=True)
    assert f'<a href="/admin/queues?org={orgs.b}">Globex</a>' in page
    assert 'id="organization-load" data-refresh' in page


def test_an_organization_without_jobs_shows_zeros(sign_in, orgs):
    rows = rows_of(sign_in("admin").client.get(PAGE).get_data(as_text=True))
    assert rows == [["Acme", "0", "0", "0", "0", "0.0"], ["Globex", "0", "0", "0", "0", "0.0"]]
