"""Fixtures for the admin pages: people of each role, signed in through the real form."""

import re

import pytest

from tests.conftest import AuthActions


@pytest.fixture
def sign_in(app, make_user):
    """Sign a new person in with a role in an organization; returns their AuthActions."""

    def factory(role="operator", organization_id=1, email=None):
        email = email or f"{role}{organization_id}@example.com"
        make_user(email, organization_id, role)
        actions = AuthActions(app.test_client())
        assert actions.login(email).status_code == 302
        return actions

    return factory


def csrf_of(page: str) -> str:
    """The CSRF token of the first form on a page."""
    return re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)


@pytest.fixture
def job_page(app):
    """A stand-in at the job page's address while its view is not registered, so that
    pages linking to jobs can be tested on their own."""
    if "admin.job_detail" not in app.view_functions:
        app.add_url_rule("/admin/queues/jobs/<int:job_id>", "admin.job_detail", lambda job_id: "")
