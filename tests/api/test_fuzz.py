"""Random JSON bodies and headers at the defer endpoints: no 5xx, no job in another tenant."""

import json

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from tasks.app import deferrable

KEYS = [
    "task",
    "payload",
    "queue",
    "priority",
    "run_at",
    "delay_seconds",
    "idempotency_key",
    "jobs",
    "organization_id",
    "to",
    "body",
    "period",
    "recipients",
    "seconds",
    "failures",
]

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=30)
    | st.sampled_from(
        [
            *deferrable(),
            "sms-notifications",
            "+14155550123",
            "2030-01-01T00:00:00",
            "2030-01-01T00:00:00Z",
            1,
            2,
            0,
            -1,
        ]
    )
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=8), inner, max_size=6)
    ),
    max_leaves=20,
)
job_like = st.fixed_dictionaries(
    {"task": st.sampled_from(list(deferrable())) | st.text(max_size=10)},
    optional={
        "payload": st.dictionaries(st.sampled_from(KEYS), json_values, max_size=5)
        | st.fixed_dictionaries(
            {"organization_id": st.sampled_from([1, 2, 3, "1", True, None])},
            optional={"to": st.just("+14155550123"), "body": st.text(max_size=20)},
        ),
        "queue": json_values,
        "priority": json_values,
        "run_at": json_values,
        "delay_seconds": json_values,
        "idempotency_key": json_values,
    },
)
near_valid = st.fixed_dictionaries(
    {
        "task": st.just("sms:send_notification"),
        "payload": st.fixed_dictionaries(
            {
                "organization_id": st.sampled_from([1, 2, 3]),
                "to": st.just("+14155550123"),
                "body": st.just("hi"),
            }
        ),
    },
    optional={
        "priority": st.integers(-2000, 2000),
        "delay_seconds": st.floats(-1, 1e6, allow_nan=False),
        "idempotency_key": st.text(max_size=3),
        "queue": st.sampled_from(["default", "sms-notifications", "nope"]),
        "run_at": st.sampled_from(
            [
                "2030-01-01T00:00:00Z",
                "2030-01-01T00:00:00",
                "soon",
                "0001-01-01T00:00:00+14:00",
                "9999-12-31T23:59:59-14:00",
                "2027-01-01T00:00:00+05:00",
            ]
        ),
    },
)
jobs = job_like | near_valid
bodies = json_values | jobs | st.fixed_dictionaries({"jobs": st.lists(jobs, max_size=4)})
headers = st.dictionaries(
    st.sampled_from(
        [
            "Content-Type",
            "Accept",
            "X-Forwarded-For",
            "X-CSRFToken",
            "Content-Encoding",
            "X-Request-Id",
        ]
    ),
    st.sampled_from(
        [
            "application/json",
            "text/plain",
            "application/json; charset=latin-1",
            "*/*",
            "gzip",
            "1.2.3.4",
            "x" * 40,
        ]
    ),
    max_size=3,
)


@pytest.mark.parametrize("path", ["/api/v1/jobs", "/api/v1/jobs/batch"])
@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(body=bodies, extra_headers=headers, raw=st.booleans())
def test_random_requests_never_fail_or_cross_tenants(client, conn, path, body, extra_headers, raw):
    text = json.dumps(body)
    data = text[: len(text) // 2 or 1] if raw else text  # raw: cut short, so malformed
    send = {"Content-Type": "application/json", **extra_headers}
    response = client.post(path, data=data, headers=send)
    assert response.status_code < 500, response.get_data(as_text=True)
    event(f"status {response.status_code}")
    assert response.is_json
    stray = conn.execute(
        "SELECT count(*) FROM procrastinate_jobs"
        " WHERE args ->> 'organization_id' IS DISTINCT FROM '1'"
    ).fetchone()[0]
    assert stray == 0
