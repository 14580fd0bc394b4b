"""``python -m webapp.probe``: is the web process on this machine ready? (the web image's
HEALTHCHECK; slim images have no curl).

It asks ``GET /readyz`` on ``127.0.0.1:PORT`` (the port gunicorn binds, ``PORT``) and
exits 0 on 200, else 1; either way it prints one line, the reason on failure (the
answer's ``reason``, or why no answer came), never a traceback.
"""

import json
import os
import sys
import urllib.error
import urllib.request

from webapp.config import parse_int

PATH = "/readyz"
TIMEOUT = 5.0  # seconds; below the HEALTHCHECK's own timeout
# Straight to this machine: never through an http_proxy the container inherited.
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def reason_of(error: urllib.error.HTTPError) -> str:
    """The ``reason`` of a JSON error answer, else its status line."""
    try:
        return json.loads(error.read())["reason"]
    except (ValueError, KeyError, TypeError, OSError):
        return f"{error.code} {error.reason}"


def probe(port: int, path: str = PATH) -> tuple[bool, str]:
    """GET ``path`` on the local port; whether it answered 200, and one line saying why."""
    url = f"http://127.0.0.1:{port}{path}"
    try:
        with OPENER.open(url, timeout=TIMEOUT) as response:
            return True, f"ok: {path} answered {response.status}"
    except urllib.error.HTTPError as error:
        return False, f"not ready: {path} answered {error.code}: {reason_of(error)}"
    except (urllib.error.URLError, OSError) as error:
        why = getattr(error, "reason", error)
        return False, f"no answer from {url}: {why}"


def main() -> int:
    """Entry point: exit 0 if this machine's web process is ready, 1 with a reason if not."""
    port = parse_int(os.environ, "PORT", 8000, minimum=1)  # a bad PORT exits 1 with one line
    ready, line = probe(port)
    print(line, file=sys.stdout if ready else sys.stderr)
    return 0 if ready else 1


if __name__ == "__main__":
    sys.exit(main())
