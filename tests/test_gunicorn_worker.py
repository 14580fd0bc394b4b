"""How the worker reads the start of a request: liveness probes, and the shape of the
errors gunicorn refuses with (end to end in test_gunicorn.py)."""

import pytest
from gunicorn.config import Config
from gunicorn.http import errors as http

from webapp import gunicorn_worker

PROBE = b"GET /healthz HTTP/1.1\r\nHost: x\r\nUser-Agent: kube-probe/1.31\r\n\r\n"


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (PROBE, (b"GET", b"1", True)),
        (PROBE + b"GET /next", (b"GET", b"1", True)),  # only the probe is taken
        (b"HEAD /healthz HTTP/1.1\r\n\r\n", (b"HEAD", b"1", True)),
        (b"GET /healthz HTTP/1.0\r\n\r\n", (b"GET", b"0", False)),
        (b"GET /healthz HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", (b"GET", b"0", True)),
        (b"GET /healthz HTTP/1.1\r\nConnection: close\r\n\r\n", (b"GET", b"1", False)),
        (b"GET /healthz HTTP/1.1\r\nContent-Length: 0\r\n\r\n", (b"GET", b"1", True)),
    ],
)
def test_a_plain_probe_is_recognised(head, expected):
    length = head.index(b"\r\n\r\n") + 4
    assert gunicorn_worker.liveness_probe(head, max_fields=50) == (*expected, length)


@pytest.mark.parametrize(
    "head",
    [
        PROBE[:-2],  # not whole yet
        b"GET /healthz?verbose HTTP/1.1\r\n\r\n",
        b"GET /healthz/ HTTP/1.1\r\n\r\n",
        b"POST /healthz HTTP/1.1\r\n\r\n",
        b"GET /healthz HTTP/2.0\r\n\r\n",
        b"GET /healthz HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}",
        b"GET /healthz HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"GET /healthz HTTP/1.1\r\nCookie: session=x\r\n\r\n",
        b"GET /healthz HTTP/1.1\r\nUpgrade: h2c\r\n\r\n",
        b"GET /healthz HTTP/1.1\r\nBad Name: x\r\n\r\n",
        b"GET /healthz HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n",
        b"GET /healthz HTTP/1.1\r\nHost: x\nY: z\r\n\r\n",
        b"GET /healthz HTTP/1.1\r\nX: \x00\r\n\r\n",
        b"GET /healthz HTTP/1.1\r\n" + b"X: 1\r\n" * 51 + b"\r\n",
    ],
)
def test_anything_else_is_left_to_gunicorn_and_the_app(head):
    assert gunicorn_worker.liveness_probe(head, max_fields=50) is None


@pytest.mark.parametrize(
    ("head", "json"),
    [
        (b"GET /api/v1/jobs?x=1 HTTP/1.1\r\n", True),
        (b"GET /api HTTP/1.1\r\n", True),
        (b"GET /api/v1/jobs?cursor=aaaaaaaa", True),  # a line cut short by its length
        (b"GET http://howdah.example/api/v1/jobs HTTP/1.1\r\n", True),
        (b"GET /%61pi/v1/jobs HTTP/1.1\r\n", True),  # as the app decodes it
        (b"GET /apis HTTP/1.1\r\n", False),
        (b"POST /webhooks/telnyx HTTP/1.1\r\n", True),
        (b"POST /webhooksx HTTP/1.1\r\n", False),
        (b"GET /jobs HTTP/1.1\r\nAccept: application/json\r\n\r\n", True),
        (b"GET /jobs HTTP/1.1\r\naccept:application/problem+json\r\n\r\n", True),
        (b"GET /jobs HTTP/1.1\r\nAccept: text/html\r\nX-Note: application/json\r\n\r\n", False),
        (b"\x16\x03\x01garbage", False),
        (b"", False),
    ],
)
def test_json_under_api_or_when_accepted(head, json):
    assert gunicorn_worker.wants_json(head) is json


def test_each_refusal_names_its_status_and_limit():
    cfg = Config()
    cfg.set("limit_request_fields", 50)
    refusal = gunicorn_worker.refusal
    assert refusal(http.LimitRequestLine(9000, 4094), cfg)[0] == 414
    status, message = refusal(http.LimitRequestHeaders("limit request headers fields"), cfg)
    assert (status, message) == (
        431,
        "The request has more than the 50 header fields this server accepts.",
    )
    assert refusal(http.LimitRequestHeaders("max buffer headers"), cfg) == (431, None)
    assert refusal(http.InvalidHeader("CONTENT-LENGTH"), cfg)[0] == 400
    assert refusal(http.UnsupportedTransferCoding("br"), cfg)[0] == 501
    # A header the app sends that gunicorn refuses is the app's fault, not a refusal.
    assert refusal(http.InvalidResponseHeader("X-Bad"), cfg) is None
    assert refusal(RuntimeError("boom"), cfg) is None
