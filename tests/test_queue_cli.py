"""``flask queues``: caps on running jobs, per queue, kept in the database."""

import pytest


def invoke(runner, *args):
    return runner.invoke(args=["queues", *args])


def test_limit_sets_and_lifts_caps_and_is_audited(runner, conn):
    result = invoke(runner, "limit", "sms-notifications", "--max-running", "20")
    assert result.exit_code == 0, result.output
    assert result.output == "sms-notifications: max running 20, per organization no cap\n"
    invoke(runner, "limit", "sms-notifications", "--org-max-running", "3")
    row = conn.execute(
        "SELECT max_running, organization_max_running FROM queue_settings"
        " WHERE queue_name = 'sms-notifications'"
    ).fetchone()
    assert row == (20, 3)
    invoke(runner, "limit", "sms-notifications", "--max-running", "0")
    listed = invoke(runner, "list").output
    assert "sms-notifications: max running no cap, per organization 3" in listed
    assert "default: max running no cap, per organization no cap" in listed
    actions = conn.execute("SELECT action, target_id FROM audit_log ORDER BY id").fetchall()
    assert actions == [("queue.limit", "sms-notifications")] * 3


@pytest.mark.parametrize(
    "args",
    [
        ["limit", "default"],
        ["limit", "nope", "--max-running", "1"],
        ["limit", "default", "--max-running", "-1"],
    ],
)
def test_bad_limits_are_refused(runner, conn, args):
    assert invoke(runner, *args).exit_code == 2
    assert conn.execute("SELECT count(*) FROM queue_settings").fetchone()[0] == 0


def test_pause_and_resume_are_audited_and_listed(runner, conn):
    conn.execute('LISTEN "procrastinate_queue_v1#sms-notifications"')
    result = invoke(runner, "pause", "sms-notifications")
    assert (result.exit_code, result.output) == (0, "sms-notifications: paused\n")
    assert invoke(runner, "pause", "sms-notifications").output.endswith("paused already\n")
    assert "paused since" in invoke(runner, "list").output
    row = "SELECT paused_at IS NOT NULL, paused_by FROM queue_settings"
    assert conn.execute(row).fetchone() == (True, "flask cli")
    result = invoke(runner, "resume", "sms-notifications")
    assert (result.exit_code, result.output) == (0, "sms-notifications: resumed\n")
    assert invoke(runner, "resume", "sms-notifications").output.endswith("not paused\n")
    assert conn.execute(row).fetchone() == (False, None)
    assert [n.channel for n in conn.notifies(timeout=0.5, stop_after=1)] == [
        "procrastinate_queue_v1#sms-notifications"
    ]
    actions = conn.execute(
        "SELECT action, actor_type, target_id FROM audit_log ORDER BY id"
    ).fetchall()
    assert actions == [
        ("queue.paused", "cli", "sms-notifications"),
        ("queue.resumed", "cli", "sms-notifications"),
    ]


def test_pausing_an_unknown_queue_is_refused(runner, conn):
    assert invoke(runner, "pause", "nope").exit_code == 2
    assert conn.execute("SELECT count(*) FROM queue_settings").fetchone()[0] == 0
