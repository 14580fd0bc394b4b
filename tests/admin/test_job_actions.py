"""Actions on one job from its page: each is a POST with CSRF, changes the job with its
audit entry in one transaction, and answers with a message and a redirect."""

import json

import pytest

from tests.admin.conftest import csrf_of
from tests.admin.job_rows import add_attempt, add_job, audit_rows, sms_args, status_of

JOB = "/admin/queues/jobs/{}"


@pytest.fixture
def refuse_audit(conn):
    """Make inserts into the audit log fail from when it is called, as a full disk or a
    bad grant would (signing in writes an entry too, so it is called after)."""
    refused = []

    def start():
        conn.execute(
            """
            CREATE FUNCTION refuse_audit_entries() RETURNS trigger
            LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'audit log refused'; END $$;
            CREATE TRIGGER refuse_audit_entries BEFORE INSERT ON audit_log
                FOR EACH ROW EXECUTE FUNCTION refuse_audit_entries();
            """
        )
        refused.append(True)

    yield start
    if refused:
        conn.execute(
            "DROP TRIGGER refuse_audit_entries ON audit_log; DROP FUNCTION refuse_audit_entries()"
        )


ACTIONS = ("retry", "cancel", "abort", "delete")


def post(person, job_id: int, verb: str, **data):
    page = person.client.get("/admin/queues").get_data(as_text=True)
    return person.client.post(
        f"{JOB.format(job_id)}/{verb}", data={"csrf_token": csrf_of(page), **data}
    )


def followed(person, response) -> str:
    assert response.status_code == 302
    return person.client.get(response.headers["Location"]).get_data(as_text=True)


def test_retry_a_failed_job_puts_it_back(sign_in, conn):
    job_id = add_job(conn, status="failed")
    person = sign_in("operator")
    response = post(person, job_id, "retry")
    assert response.headers["Location"] == JOB.format(job_id)
    assert f"Job {job_id} is back in its queue." in followed(person, response)
    assert status_of(conn, job_id) == "todo"
    assert audit_rows(conn, "job.retry") == [(str(job_id), 1, {})]


def test_retry_a_cancelled_job_makes_a_new_one(sign_in, conn):
    job_id = add_job(conn, status="cancelled")
    person = sign_in("operator")
    response = post(person, job_id, "retry")
    new_id = conn.execute(
        "SELECT retry_job_id FROM job_retries WHERE job_id = %s", (job_id,)
    ).fetchone()[0]
    assert response.headers["Location"] == JOB.format(new_id)
    assert f"Job {job_id} was retried as job {new_id}." in followed(person, response)
    assert status_of(conn, new_id) == "todo"
    assert audit_rows(conn, "job.retry") == [(str(job_id), 1, {"job_id": new_id})]


def test_a_second_retry_is_a_message_not_an_error(sign_in, conn):
    job_id = add_job(conn, status="cancelled")
    person = sign_in("operator")
    post(person, job_id, "retry")
    response = post(person, job_id, "retry")
    assert response.headers["Location"] == JOB.format(job_id)
    assert "This job was retried already, as job" in followed(person, response)
    assert len(audit_rows(conn, "job.retry")) == 1


def test_a_tenant_cannot_retry_a_platform_task(sign_in, conn):
    job_id = add_job(
        conn, task="diagnostics:noop", queue="default", status="failed", args={"organization_id": 1}
    )
    person = sign_in("operator")
    page = followed(person, post(person, job_id, "retry"))
    assert "may be deferred by platform admins only" in page
    assert status_of(conn, job_id) == "failed"


def test_cancel_a_waiting_job(sign_in, conn):
    job_id = add_job(conn)
    person = sign_in("operator")
    assert f"Job {job_id} was cancelled." in followed(person, post(person, job_id, "cancel"))
    assert status_of(conn, job_id) == "cancelled"
    assert audit_rows(conn, "job.cancel") == [(str(job_id), 1, {})]


def test_a_running_job_asked_to_abort_offers_no_abort_again(sign_in, conn):
    job_id = add_job(conn, status="doing")
    conn.execute("UPDATE procrastinate_jobs SET abort_requested = true WHERE id = %s", (job_id,))
    page = sign_in("operator").client.get(JOB.format(job_id)).get_data(as_text=True)
    assert f"/jobs/{job_id}/abort" not in page
    assert "<dt>Abort requested</dt><dd>yes</dd>" in page


def test_abort_a_running_job(sign_in, conn):
    job_id = add_job(conn, status="doing")
    person = sign_in("operator")
    assert "was asked to abort" in followed(person, post(person, job_id, "abort"))
    row = conn.execute(
        "SELECT status::text, abort_requested FROM procrastinate_jobs WHERE id = %s", (job_id,)
    ).fetchone()
    assert row == ("doing", True)
    assert audit_rows(conn, "job.abort") == [(str(job_id), 1, {})]


def test_delete_a_finished_job_with_its_attempts_and_events(sign_in, conn):
    original = add_job(conn, status="failed")
    add_attempt(conn, original)
    copy = add_job(conn)
    conn.execute("INSERT INTO job_retries VALUES (%s, %s)", (original, copy))
    person = sign_in("operator")
    response = post(person, original, "delete")
    assert response.headers["Location"] in ("/admin/queues", "/admin/queues/jobs")
    assert f"Job {original} was deleted" in followed(person, response)
    assert status_of(conn, original) is None
    for table in ("job_attempts", "procrastinate_events", "job_retries"):
        count = conn.execute(f"SELECT count(*) FROM {table} WHERE job_id = %s", (original,))
        assert count.fetchone()[0] == 0
    assert status_of(conn, copy) == "todo"
    details = {"status": "failed", "task": "sms:send_notification"}
    assert audit_rows(conn, "job.delete") == [(str(original), 1, details)]


def test_a_periodic_job_can_be_deleted(sign_in, conn):
    job_id = add_job(conn, status="succeeded")
    conn.execute(
        "INSERT INTO procrastinate_periodic_defers (task_name, defer_timestamp, job_id)"
        " VALUES ('sms:send_notification', 1, %s)",
        (job_id,),
    )
    person = sign_in("operator")
    assert "was deleted" in followed(person, post(person, job_id, "delete"))
    assert status_of(conn, job_id) is None


@pytest.mark.parametrize(
    ("status", "action", "message"),
    [
        ("todo", "delete", "A waiting or running job cannot be deleted"),
        ("doing", "delete", "A waiting or running job cannot be deleted"),
        ("succeeded", "retry", "A succeeded job cannot be retried"),
        ("todo", "retry", "A todo job cannot be retried"),
        ("failed", "cancel", "Only a waiting job can be cancelled"),
        ("todo", "abort", "Only a running job can be aborted"),
        ("succeeded", "abort", "Only a running job can be aborted"),
    ],
)
def test_an_action_that_does_not_apply_is_a_message(sign_in, conn, status, action, message):
    job_id = add_job(conn, status=status)
    person = sign_in("operator")
    response = post(person, job_id, action)
    assert response.headers["Location"] == JOB.format(job_id)
    page = followed(person, response)
    assert f'<p class="flash flash-error" role="status">{message}' in page
    assert status_of(conn, job_id) == status
    assert (
        conn.execute("SELECT count(*) FROM audit_log WHERE action LIKE 'job.%'").fetchone()[0] == 0
    )


@pytest.mark.parametrize("action", [*ACTIONS, "edit"])
def test_viewers_are_refused_every_action(sign_in, conn, action):
    job_id = add_job(conn, status="failed")
    person = sign_in("viewer")
    data = {"payload": json.dumps(sms_args()), "action": "defer"} if action == "edit" else {}
    assert post(person, job_id, action, **data).status_code == 403
    assert status_of(conn, job_id) == "failed"
    assert conn.execute("SELECT count(*) FROM procrastinate_jobs").fetchone()[0] == 1


@pytest.mark.parametrize("action", [*ACTIONS, "edit"])
def test_another_organizations_job_is_a_404_for_every_action(sign_in, conn, action):
    job_ids = {s: add_job(conn, organization_id=2, status=s) for s in ("todo", "doing", "failed")}
    person = sign_in("operator")
    for status, job_id in job_ids.items():
        assert post(person, job_id, action).status_code == 404
        assert status_of(conn, job_id) == status
    assert person.client.get(f"{JOB.format(job_ids['failed'])}/edit").status_code == 404


@pytest.mark.parametrize("action", ACTIONS)
def test_actions_need_the_csrf_token(sign_in, conn, action):
    job_id = add_job(conn, status="failed")
    person = sign_in("operator")
    assert person.client.post(f"{JOB.format(job_id)}/{action}").status_code == 400
    assert status_of(conn, job_id) == "failed"


@pytest.mark.parametrize(
    ("status", "action"),
    [
        ("failed", "retry"),
        ("cancelled", "retry"),
        ("todo", "cancel"),
        ("doing", "abort"),
        ("succeeded", "delete"),
    ],
)
def test_a_change_is_rolled_back_with_its_audit_entry(sign_in, conn, refuse_audit, status, action):
    job_id = add_job(conn, status=status)
    add_attempt(conn, job_id)
    person = sign_in("operator")
    refuse_audit()
    response = post(person, job_id, action)
    assert response.status_code == 500
    assert "could not be recorded in the audit log" in response.get_data(as_text=True)
    assert status_of(conn, job_id) == status
    assert conn.execute("SELECT count(*) FROM procrastinate_jobs").fetchone()[0] == 1
    assert conn.execute("SELECT count(*) FROM job_attempts").fetchone()[0] == 1
    assert not conn.execute(
        "SELECT abort_requested FROM procrastinate_jobs WHERE id = %s", (job_id,)
    ).fetchone()[0]


# Retry with edited arguments


def edit(person, job_id: int, payload, action="review"):
    page = person.client.get("/admin/queues").get_data(as_text=True)
    text = payload if isinstance(payload, str) else json.dumps(payload)
    return person.client.post(
        f"{JOB.format(job_id)}/edit",
        data={"csrf_token": csrf_of(page), "payload": text, "action": action},
    )


def test_the_edit_form_holds_the_payload(sign_in, conn):
    job_id = add_job(conn, status="failed")
    response = sign_in("operator").client.get(f"{JOB.format(job_id)}/edit")
    page = response.get_data(as_text=True)
    assert response.status_code == 200
    assert '<label for="payload">Payload (JSON)</label>' in page
    assert '<textarea id="payload" name="payload"' in page
    assert "+14155550123" in page
    assert "Defer the edited job" not in page


def test_review_shows_the_difference(sign_in, conn):
    job_id = add_job(conn, status="failed")
    response = edit(sign_in("operator"), job_id, sms_args(body="hello again"))
    page = response.get_data(as_text=True)
    assert response.status_code == 200
    assert '<span class="diff-line diff-removed">-  &#34;body&#34;: &#34;hi&#34;,</span>' in page
    assert (
        '<span class="diff-line diff-added">+  &#34;body&#34;: &#34;hello again&#34;,</span>'
        in page
    )
    assert "Defer the edited job" in page
    assert conn.execute("SELECT count(*) FROM procrastinate_jobs").fetchone()[0] == 1


def test_the_edited_job_is_deferred_and_audited_with_the_diff(sign_in, conn):
    job_id = add_job(conn, status="aborted", priority=5)
    person = sign_in("operator")
    response = edit(person, job_id, sms_args(body="hello again"), action="defer")
    new_id = conn.execute(
        "SELECT retry_job_id FROM job_retries WHERE job_id = %s", (job_id,)
    ).fetchone()[0]
    assert response.headers["Location"] == JOB.format(new_id)
    assert f"retried with edited arguments as job {new_id}" in followed(person, response)
    row = conn.execute(
        "SELECT status::text, task_name, queue_name, priority, args FROM procrastinate_jobs"
        " WHERE id = %s",
        (new_id,),
    ).fetchone()
    assert row == (
        "todo",
        "sms:send_notification",
        "sms-notifications",
        5,
        sms_args(body="hello again"),
    )
    ((target, org, details),) = audit_rows(conn, "job.retried_with_edits")
    assert (target, org, details["job_id"]) == (str(job_id), 1, new_id)
    assert '-  "body": "hi",' in details["diff"] and '+  "body": "hello again",' in details["diff"]


def test_a_second_edited_retry_is_refused(sign_in, conn):
    job_id = add_job(conn, status="failed")
    person = sign_in("operator")
    assert edit(person, job_id, sms_args(body="one"), action="defer").status_code == 302
    response = edit(person, job_id, sms_args(body="two"), action="defer")
    assert response.headers["Location"] == JOB.format(job_id)
    assert "can be edited" in followed(person, response)
    assert conn.execute("SELECT count(*) FROM procrastinate_jobs").fetchone()[0] == 2
    assert status_of(conn, job_id) == "failed"
    # Nor may the original be retried as it was once its edited copy exists.
    assert "retried already" in followed(person, post(person, job_id, "retry"))


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ("{not json", "This is not valid JSON"),
        ("[1, 2]", "The payload must be a JSON object"),
        ('"text"', "The payload must be a JSON object"),
        ("", "Write the payload as a JSON object."),
    ],
)
def test_a_payload_that_is_not_an_object_is_the_form_again(sign_in, conn, payload, message):
    job_id = add_job(conn, status="failed")
    response = edit(sign_in("operator"), job_id, payload, action="defer")
    assert response.status_code == 200
    assert message in response.get_data(as_text=True)
    assert conn.execute("SELECT count(*) FROM procrastinate_jobs").fetchone()[0] == 1


def test_an_oversized_payload_is_the_form_again(sign_in, conn, app):
    job_id = add_job(conn, status="failed")
    big = sms_args(body="x" * (app.config["API_MAX_BODY_BYTES"] + 10))
    response = edit(sign_in("operator"), job_id, big, action="defer")
    assert response.status_code == 200
    assert "is over the 262,144 bytes a job may carry" in response.get_data(as_text=True)


def test_a_deeply_nested_payload_is_the_form_again(sign_in, conn):
    job_id = add_job(conn, status="failed")
    nested = '{"organization_id": 1, "x": ' + "[" * 50_000 + "]" * 50_000 + "}"
    response = edit(sign_in("operator"), job_id, nested, action="defer")
    assert response.status_code == 200
    assert "This is not valid JSON" in response.get_data(as_text=True)


def test_field_errors_are_shown_with_the_form(sign_in, conn):
    job_id = add_job(conn, status="failed")
    response = edit(sign_in("operator"), job_id, {"organization_id": 1, "to": "nope"})
    page = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "<code>payload.to</code>" in page
    assert "<code>payload.body</code>: Field required" in page
    assert 'aria-invalid="true"' in page


@pytest.mark.parametrize("role", ["operator", "admin"])
def test_the_organization_may_not_change(sign_in, conn, role):
    job_id = add_job(conn, status="failed")
    response = edit(sign_in(role), job_id, sms_args(2), action="defer")
    assert response.status_code == 200
    assert "<code>payload.organization_id</code>: a job stays in its organization" in (
        response.get_data(as_text=True)
    )
    assert conn.execute("SELECT count(*) FROM procrastinate_jobs").fetchone()[0] == 1


def test_a_job_that_cannot_be_retried_cannot_be_edited(sign_in, conn):
    job_id = add_job(conn, status="succeeded")
    person = sign_in("operator")
    response = person.client.get(f"{JOB.format(job_id)}/edit")
    assert response.headers["Location"] == JOB.format(job_id)
    assert edit(person, job_id, sms_args(), action="defer").status_code == 302
    assert conn.execute("SELECT count(*) FROM procrastinate_jobs").fetchone()[0] == 1


def test_an_edited_retry_is_rolled_back_with_its_audit_entry(sign_in, conn, refuse_audit):
    job_id = add_job(conn, status="failed")
    person = sign_in("operator")
    refuse_audit()
    response = edit(person, job_id, sms_args(body="x"), action="defer")
    assert response.status_code == 500
    assert conn.execute("SELECT count(*) FROM procrastinate_jobs").fetchone()[0] == 1
    assert conn.execute("SELECT count(*) FROM job_retries").fetchone()[0] == 0


def test_a_body_far_past_the_limit_is_a_413(sign_in, conn, app):
    job_id = add_job(conn, status="failed")
    big = sms_args(body="x" * (app.config["API_MAX_BODY_BYTES"] * 4))
    response = edit(sign_in("operator"), job_id, big, action="defer")
    assert response.status_code == 413
    assert conn.execute("SELECT count(*) FROM procrastinate_jobs").fetchone()[0] == 1


def test_other_forms_keep_their_small_limit(sign_in):
    person = sign_in("operator")
    page = person.client.get("/admin/queues").get_data(as_text=True)
    data = {"csrf_token": csrf_of(page), "organization_id": "1", "x": "y" * 70_000}
    assert person.client.post("/admin/queues/organization", data=data).status_code == 413
