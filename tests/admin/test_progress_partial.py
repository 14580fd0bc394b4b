"""The job page's progress partial, rendered through the app with a job dict."""

import datetime
import re

import pytest
from flask import render_template

from webapp.admin import formatting

PARTIAL = "admin/jobs/_progress.html"
AT = datetime.datetime(2026, 11, 29, 21, 35, 12, tzinfo=datetime.UTC)


def render(app, job) -> str:
    with app.test_request_context("/admin/queues/jobs/7"):
        return render_template(PARTIAL, job=job)


def test_progress_shows_a_labelled_bar_with_percentage_message_and_time(app):
    page = render(
        app,
        {
            "id": 7,
            "progress": {"fraction": 0.29, "message": "sent 29 of 100 e-mails", "updated_at": AT},
        },
    )
    bar = re.search(r"<progress ([^>]*)>([^<]*)</progress>", page)
    assert 'id="job-progress-meter"' in bar.group(1)
    assert 'max="1"' in bar.group(1) and 'value="0.29"' in bar.group(1)
    assert bar.group(2) == "29%"  # the fallback text, for browsers that draw no bar
    assert '<label for="job-progress-meter">sent 29 of 100 e-mails</label>' in page
    assert '<span class="job-progress-percent" aria-hidden="true">29%</span>' in page
    assert '<time datetime="2026-11-29 21:35:12Z">2026-11-29 21:35:12 UTC</time>' in page
    assert "ago)" in page


def test_a_finished_job_shows_its_last_progress(app):
    page = render(app, {"progress": {"fraction": 1.0, "message": "", "updated_at": AT}})
    assert 'value="1.0"' in page and "100%" in page
    assert '<label for="job-progress-meter">Progress reported</label>' in page


@pytest.mark.parametrize("job", [{"id": 7, "progress": None}, {"id": 7}], ids=["null", "absent"])
def test_no_progress_shows_nothing(app, job):
    assert render(app, job).strip() == ""


def test_the_message_is_escaped(app):
    message = '<script src="x"></script>'
    page = render(app, {"progress": {"fraction": 0.5, "message": message, "updated_at": AT}})
    assert "<script" not in page
    assert "&lt;script src=&#34;x&#34;&gt;&lt;/script&gt;" in page


@pytest.mark.parametrize(
    ("fraction", "shown"),
    [(None, formatting.NONE), (0, "0%"), (0.29, "29%"), (0.999, "99%"), (1, "100%")],
)
def test_percent_rounds_down_so_only_a_finished_task_shows_100(fraction, shown):
    assert formatting.percent(fraction) == shown
