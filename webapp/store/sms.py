"""SMS messages (migration 0024) and each organization's send slots (migration 0025).

The worker's send task calls these on its pool's async connections (autocommit), so
each statement commits on its own: the acceptance of a message is on record the moment
``record_acceptance`` returns, whatever the task does next.
"""

import psycopg
from psycopg.rows import dict_row

# Get-or-create in one statement: a retried job finds its own row. Until the provider
# has accepted the message, the row follows the provider now configured (a retry after
# switching providers sends through the new one); once accepted, it is left as it is.
CLAIM = """
    INSERT INTO sms_messages AS m (organization_id, job_id, provider, to_number, segments)
    VALUES (%(organization_id)s, %(job_id)s, %(provider)s, %(to_number)s, %(segments)s)
    ON CONFLICT (job_id) DO UPDATE SET
        provider = CASE WHEN m.provider_message_id IS NULL THEN excluded.provider
                        ELSE m.provider END
    RETURNING *
"""

ACCEPT = """
    UPDATE sms_messages
    SET provider_message_id = %(message_id)s, status = %(status)s, accepted_at = now(),
        error_code = NULL, error_message = NULL, updated_at = now()
    WHERE job_id = %(job_id)s AND provider_message_id IS NULL
    RETURNING *
"""

# A refusal, or the last try, ends the message (status failed); a refusal for now (429,
# 5xx, no connection) leaves it pending, with the latest error on record until a retry
# gets through. Either way the provider answered, so no request is under way any more.
# A request that got no answer leaves the message unknown, with its send still marked.
RECORD_ERROR = """
    UPDATE sms_messages
    SET status = CASE WHEN %(unknown)s THEN 'unknown'
                      WHEN %(final)s THEN 'failed' ELSE 'pending' END,
        send_started_at = CASE WHEN %(unknown)s THEN send_started_at END,
        error_code = %(code)s, error_message = %(message)s, updated_at = now()
    WHERE job_id = %(job_id)s AND provider_message_id IS NULL
"""

MARK_SENDING = """
    UPDATE sms_messages SET send_started_at = now(), updated_at = now()
    WHERE job_id = %(job_id)s AND provider_message_id IS NULL
"""

# The message of a job this one retries (directly or down a chain of retries) that the
# provider accepted, or may have: a retry must not send it again.
SENT_BY_AN_EARLIER_JOB = """
    WITH RECURSIVE earlier (job_id) AS (
        SELECT job_id FROM job_retries WHERE retry_job_id = %(job_id)s
        UNION
        SELECT r.job_id FROM job_retries r JOIN earlier e ON r.retry_job_id = e.job_id
    )
    SELECT m.job_id, m.provider_message_id, m.status
    FROM sms_messages m JOIN earlier USING (job_id)
    WHERE m.provider_message_id IS NOT NULL OR m.send_started_at IS NOT NULL
    LIMIT 1
"""

# The organization's next slot: the later of its next free time and now; the one after
# is a 1/sms_per_second gap later. The row lock makes concurrent workers queue here, so
# every send gets a slot of its own. An idle organization's next_at lies in the past,
# so its first message goes at once and the next ones at the steady pace: there is no
# burst allowance to save up. A slot further than ``max_wait`` seconds away is not
# taken (no row comes back): the caller tries again later instead of sleeping that long.
RESERVE_SLOT = """
    WITH org AS (
        SELECT id, make_interval(secs => 1.0 / sms_per_second) AS gap
        FROM organizations WHERE id = %(organization_id)s
    )
    INSERT INTO sms_send_slots AS s (organization_id, next_at)
    SELECT id, clock_timestamp() + gap FROM org
    ON CONFLICT (organization_id) DO UPDATE
    SET next_at = greatest(s.next_at, clock_timestamp()) + (SELECT gap FROM org)
    WHERE s.next_at <= clock_timestamp() + make_interval(secs => %(max_wait)s)
    RETURNING greatest(0, extract(
        epoch FROM s.next_at - (SELECT gap FROM org) - clock_timestamp()
    ))::float AS wait_seconds
"""


async def claim_message(
    conn: psycopg.AsyncConnection,
    job_id: int,
    organization_id: int,
    provider: str,
    to_number: str,
    segments: int,
) -> dict:
    """The job's message row, created as pending if the job has none yet."""
    params = {
        "job_id": job_id,
        "organization_id": organization_id,
        "provider": provider,
        "to_number": to_number,
        "segments": segments,
    }
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(CLAIM, params)
        return await cur.fetchone()


async def record_acceptance(
    conn: psycopg.AsyncConnection, job_id: int, message_id: str, status: str
) -> dict | None:
    """Record that the provider accepted the job's message; None if it was already."""
    params = {"job_id": job_id, "message_id": message_id, "status": status}
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(ACCEPT, params)
        return await cur.fetchone()


async def record_error(
    conn: psycopg.AsyncConnection,
    job_id: int,
    code: str,
    message: str,
    final: bool,
    unknown: bool = False,
) -> None:
    """Record why a message was not accepted: ``final``, it failed; ``unknown``, its
    request got no answer and it may have gone out."""
    params = {"job_id": job_id, "code": code, "message": message, "final": final}
    await conn.execute(RECORD_ERROR, {**params, "unknown": unknown})


async def mark_sending(conn: psycopg.AsyncConnection, job_id: int) -> None:
    """Note that the job's request is about to leave for the provider."""
    await conn.execute(MARK_SENDING, {"job_id": job_id})


async def find_sent_by_an_earlier_job(conn: psycopg.AsyncConnection, job_id: int) -> dict | None:
    """The message of a job this one retries that went out, or may have; None if none."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(SENT_BY_AN_EARLIER_JOB, {"job_id": job_id})
        return await cur.fetchone()


async def reserve_send_slot(
    conn: psycopg.AsyncConnection, organization_id: int, max_wait: float
) -> float | None:
    """Take the organization's next send slot if it is at most ``max_wait`` seconds away,
    and return the seconds until it; None if it is further (or the organization is gone)."""
    cursor = await conn.execute(
        RESERVE_SLOT, {"organization_id": organization_id, "max_wait": max_wait}
    )
    row = await cursor.fetchone()
    return None if row is None else row[0]


async def get_send_slot(conn: psycopg.AsyncConnection, organization_id: int) -> float | None:
    """Seconds until the organization's next free send slot (None: it has no slot row)."""
    cursor = await conn.execute(
        "SELECT extract(epoch FROM next_at - clock_timestamp())::float"
        " FROM sms_send_slots WHERE organization_id = %s",
        (organization_id,),
    )
    row = await cursor.fetchone()
    return None if row is None else row[0]
