"""The queue service writes jobs with Procrastinate's own function, as its JobManager would."""

import datetime

from webapp import db
from webapp.queue import JobOptions, get_queue

RUN_AT = datetime.datetime.now(datetime.timezone(datetime.timedelta(hours=2))).replace(
    microsecond=123456
) + datetime.timedelta(days=3)
REQUESTS = [
    (
        "sms:send_notification",
        {"organization_id": 1, "to": "+1 415 555 0123", "body": "hi"},
        JobOptions(),
    ),
    (
        "sms:send_notification",
        {"organization_id": 1, "to": "+14155550124", "body": 'Ünïcode ✓ "quoted" \\ {x}'},
        JobOptions(queue="email-digests", priority=-5, run_at=RUN_AT, idempotency_key='k("1")'),
    ),
    (
        "email:send_digest",
        {"organization_id": 1, "period": "weekly", "recipients": ["ops@example.com"]},
        JobOptions(priority=100),
    ),
]
COLUMNS = (
    "queue_name, task_name, priority, lock, queueing_lock, args, scheduled_at,"
    " status::text, attempts, abort_requested, worker_id"
)


def written(conn) -> list[tuple]:
    """Every job: its id, its row and its events, oldest first."""
    return conn.execute(
        f"SELECT id, {COLUMNS}, (SELECT array_agg(e.type::text ORDER BY e.id)"
        " FROM procrastinate_events e WHERE e.job_id = j.id)"
        " FROM procrastinate_jobs j ORDER BY j.id"
    ).fetchall()


def test_jobs_are_written_as_procrastinates_manager_writes_them(app, conn, orgs):
    with app.app_context():
        queue = get_queue()
        ours = queue.defer_many(REQUESTS, 1)
        ours_rows = written(conn)
        conn.execute("DELETE FROM procrastinate_jobs")
        built = [queue.build(task, payload, options, 1) for task, payload, options in REQUESTS]
        theirs = queue.manager.batch_defer_jobs(built, connection=db.get_conn())
    theirs_rows = written(conn)
    assert [row[1:] for row in ours_rows] == [row[1:] for row in theirs_rows]
    assert ours_rows[1][5:8] == ('org:1:k("1")', {**REQUESTS[1][1], "to": "+14155550124"}, RUN_AT)
    assert [(job.id, job.status) for job in ours] == [(row[0], "todo") for row in ours_rows]
    assert [(job.id, job.status) for job in theirs] == [(row[0], "todo") for row in theirs_rows]
