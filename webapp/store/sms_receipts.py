"""Delivery receipts: the provider's word on a message it accepted, applied in order."""

import datetime

import psycopg
from psycopg.rows import dict_row

# The statuses a message ends in: those of Telnyx's message.finalized, and our own
# "failed" (refused at once). A late receipt with a status still in transit never
# replaces one of them, even if the provider's clocks put it later.
FINAL_STATUSES = [
    "delivered",
    "delivery_failed",
    "sending_failed",
    "delivery_unconfirmed",
    "failed",
]


def apply_receipt(
    conn: psycopg.Connection,
    provider_message_id: str,
    status: str,
    occurred_at: datetime.datetime,
    error_code: str | None,
    error_message: str | None,
) -> dict | None:
    """Set a message's status from a receipt newer than its own, unless that would undo
    a final status; the message's job_id, its status before, and whether the receipt
    applied; None for a message id we never recorded."""
    # One statement, its conditions checked against the row as locked: two receipts for
    # one message racing each other still end with the newer one.
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "WITH applied AS ("
            " UPDATE sms_messages SET status = %(status)s, status_at = %(at)s,"
            " error_code = %(code)s, error_message = %(message)s, updated_at = now()"
            " WHERE provider_message_id = %(id)s"
            " AND (status_at IS NULL OR status_at < %(at)s)"
            " AND (status <> ALL(%(final)s::text[]) OR %(status)s::text = ANY(%(final)s::text[]))"
            " RETURNING id)"
            " SELECT m.job_id, m.status AS previous_status, applied.id IS NOT NULL AS applied"
            " FROM sms_messages m LEFT JOIN applied ON applied.id = m.id"
            " WHERE m.provider_message_id = %(id)s",
            {
                "id": provider_message_id,
                "status": status,
                "at": occurred_at,
                "code": error_code,
                "message": error_message,
                "final": FINAL_STATUSES,
            },
        ).fetchone()
