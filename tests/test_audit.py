"""A change and its audit entry commit together: when the entry cannot be written, the
change is rolled back and the caller gets a clean error."""

import pytest

from tests.conftest import sms_job

REFUSED = "The change could not be recorded in the audit log, so it was not made."


@pytest.fixture
def refused_audit(conn):
    """Make every insert into the audit log fail, as a full disk or a bad grant would."""

    conn.execute(
        """
        CREATE OR REPLACE FUNCTION refuse_audit_entries() RETURNS trigger
        LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'audit log refused'; END $$;
        CREATE TRIGGER refuse_audit_entries BEFORE INSERT ON audit_log
            FOR EACH ROW EXECUTE FUNCTION refuse_audit_entries();
        """
    )
    yield
    conn.execute(
        "DROP TRIGGER refuse_audit_entries ON audit_log; DROP FUNCTION refuse_audit_entries()"
    )


def status_of(conn, job_id: int) -> str:
    return conn.execute(
        "SELECT status::text FROM procrastinate_jobs WHERE id = %s", (job_id,)
    ).fetchone()[0]


def refused(response) -> bool:
    return response.status_code == 500 and response.get_json()["message"] == REFUSED


def defer(client) -> int:
    response = client.post("/api/v1/jobs", json=sms_job(1))
    assert response.status_code == 202
    return response.get_json()["id"]


def test_a_cancel_is_rolled_back_with_its_audit_entry(client, conn, refused_audit):
    job_id = defer(client)
    assert refused(client.post(f"/api/v1/jobs/{job_id}/cancel"))
    assert status_of(conn, job_id) == "todo"


def test_an_abort_request_is_rolled_back_with_its_audit_entry(client, conn, refused_audit):
    job_id = defer(client)
    conn.execute("UPDATE procrastinate_jobs SET status = 'doing' WHERE id = %s", (job_id,))
    assert refused(client.post(f"/api/v1/jobs/{job_id}/cancel"))
    assert not conn.execute(
        "SELECT abort_requested FROM procrastinate_jobs WHERE id = %s", (job_id,)
    ).fetchone()[0]


def test_retries_are_rolled_back_with_their_audit_entry(client, conn, refused_audit):
    failed, cancelled = defer(client), defer(client)
    conn.execute("UPDATE procrastinate_jobs SET status = 'doing' WHERE id = %s", (failed,))
    conn.execute("UPDATE procrastinate_jobs SET status = 'failed' WHERE id = %s", (failed,))
    conn.execute("UPDATE procrastinate_jobs SET status = 'cancelled' WHERE id = %s", (cancelled,))
    assert refused(client.post(f"/api/v1/jobs/{failed}/retry"))
    assert refused(client.post(f"/api/v1/jobs/{cancelled}/retry"))
    assert status_of(conn, failed) == "failed"
    assert conn.execute("SELECT count(*) FROM procrastinate_jobs").fetchone()[0] == 2
    assert conn.execute("SELECT count(*) FROM job_retries").fetchone()[0] == 0


def test_a_sign_in_is_rolled_back_with_its_audit_entry(auth, make_user, conn, refused_audit):
    email = make_user("op@acme.example", 1, "operator")
    response = auth.login(email)
    assert response.status_code == 500
    assert REFUSED in response.get_data(as_text=True)
    assert conn.execute("SELECT count(*) FROM user_sessions").fetchone()[0] == 0
    assert auth.client.get("/api/v1/jobs").status_code == 401  # nobody is signed in


def test_a_sign_out_is_rolled_back_with_its_audit_entry(auth, make_user, conn):
    email = make_user("op@acme.example", 1, "operator")
    assert auth.login(email).status_code == 302
    conn.execute(
        "ALTER TABLE audit_log ADD CONSTRAINT no_logout CHECK (action <> 'logout') NOT VALID"
    )
    try:
        response = auth.logout()
    finally:
        conn.execute("ALTER TABLE audit_log DROP CONSTRAINT no_logout")
    assert response.status_code == 500
    assert REFUSED in response.get_data(as_text=True)
    live = "SELECT count(*) FROM user_sessions WHERE revoked_at IS NULL"
    assert conn.execute(live).fetchone()[0] == 1
    assert auth.client.get("/api/v1/jobs").status_code == 200  # still signed in


def test_a_cli_change_is_rolled_back_with_its_audit_entry(runner, conn, refused_audit):
    result = runner.invoke(args=["orgs", "create", "Initech"])
    assert result.exit_code == 1
    assert "could not be written; nothing was changed" in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert (
        conn.execute("SELECT count(*) FROM organizations WHERE name = 'Initech'").fetchone()[0] == 0
    )
