"""A local stand-in for Telnyx's messages API (pytest-httpserver): it records every
request with its arrival time, and answers from a script, then with acceptances."""

import collections
import dataclasses
import json
import threading
import time
import uuid

from werkzeug import Request, Response

API_KEY = "KEY0123456789ABCDEF_test"
FROM = "+18445550001"
PROFILE = "40017f8e-49bd-4f16-9e3d-ef103f916228"
WEBHOOK_URL = "https://howdah.example/webhooks/telnyx"


@dataclasses.dataclass
class Received:
    """One request the fake got."""

    at: float  # time.monotonic() on arrival
    headers: dict[str, str]
    body: dict


def acceptance(body: dict, message_id: str | None = None) -> Response:
    """Telnyx's 200 answer to a send (the fields of its documented example)."""
    data = {
        "record_type": "message",
        "direction": "outbound",
        "id": message_id or str(uuid.uuid4()),
        "type": "SMS",
        "messaging_profile_id": body.get("messaging_profile_id", PROFILE),
        "from": {"phone_number": body.get("from", FROM), "carrier": "Telnyx", "line_type": "VoIP"},
        "to": [
            {
                "phone_number": body.get("to"),
                "status": "queued",
                "carrier": "T-MOBILE USA, INC.",
                "line_type": "Wireless",
            }
        ],
        "text": body.get("text"),
        "parts": 1,
        "encoding": "GSM-7",
        "webhook_url": body.get("webhook_url"),
        "errors": [],
    }
    return Response(json.dumps({"data": data}), 200, content_type="application/json")


def refusal(status: int, code: str, title: str, detail: str, **headers: str) -> Response:
    """Telnyx's error answer: a list of errors with a code, a title and a detail."""
    error = {"code": code, "title": title, "detail": detail, "source": {"pointer": "/to"}}
    body = json.dumps({"errors": [error]})
    return Response(body, status, headers=headers, content_type="application/json")


INVALID_TO = (422, "40310", "Invalid 'to' address", "The 'to' address should be a valid number.")
TOO_MANY = (429, "10011", "Too many requests", "You have exceeded the allowed requests.")
UNEXPECTED = (500, "10007", "Unexpected error", "An unexpected error occured.")


class FakeTelnyx:
    """Answers POST /v2/messages: the scripted answers first (a Response, or a callable
    taking the request's JSON and returning one), then an acceptance for each."""

    def __init__(self, server):
        self.server = server
        self.received: list[Received] = []
        self.script: collections.deque = collections.deque()
        self.lock = threading.Lock()
        server.expect_request("/v2/messages", method="POST").respond_with_handler(self.handle)

    @property
    def base_url(self) -> str:
        return self.server.url_for("/v2")

    def handle(self, request: Request) -> Response:
        body = request.get_json(force=True)
        with self.lock:
            self.received.append(Received(time.monotonic(), dict(request.headers), body))
            answer = self.script.popleft() if self.script else acceptance
        return answer if isinstance(answer, Response) else answer(body)

    def answer(self, *answers) -> None:
        """Answer the next requests with these, in order."""
        self.script.extend(answers)

    def wait_for(self, count: int, timeout: float = 30.0) -> list[Received]:
        """Poll until ``count`` requests have arrived; fail after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while len(self.received) < count:
            assert time.monotonic() < deadline, f"{len(self.received)} of {count} requests came"
            time.sleep(0.02)
        return list(self.received)
