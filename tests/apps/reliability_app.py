"""WSGI app for the reliability tests (tests/reliability, tests/soak), served in a subprocess
by waitress-rs or by waitress 3.0.2 (``waitress-serve tests.apps.reliability_app:app``).

It records what it served, so a test can ask the server afterwards (directly, never through a
proxy) what the application really saw:

- every request but ``/_seen`` and ``/_stats`` is recorded: method, target, the marker a
  front end adds (``X-Request-Id``) and the proxy-derived environ keys; ``GET /_seen``
  returns the list as JSON;
- ``GET /_stats`` returns how many application calls overlapped at most and the longest time
  one call held its worker (from the call to the ``close()`` of its iterable, i.e. until the
  server had taken the whole response), then resets both.

Routes: ``/big`` is 1 MiB in 16 pieces of 64 KiB, ``/sleep?S`` sleeps S seconds, anything
else answers a small JSON description of the request (so a client can check the answer it got
is the answer to its own request).
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any, Callable, Iterable, Iterator

StartResponse = Callable[..., Any]

ENV_KEYS = (
    "REQUEST_METHOD",
    "REQUEST_URI",
    "PATH_INFO",
    "SERVER_NAME",
    "SERVER_PORT",
    "REMOTE_ADDR",
    "HTTP_HOST",
    "HTTP_X_REQUEST_ID",
    "HTTP_X_FORWARDED_FOR",
    "HTTP_X_FORWARDED_PROTO",
    "HTTP_X_FORWARDED_HOST",
    "HTTP_X_FORWARDED_PORT",
    "wsgi.url_scheme",
)

_lock = threading.Lock()
_seen: list[dict[str, str]] = []
_active = 0
_max_active = 0
_longest_hold = 0.0

PIECE = b"x" * 65536


class _Tracked:
    """The response iterable: counts the call as active until the server closes it."""

    def __init__(self, pieces: Iterable[bytes]) -> None:
        self._pieces = pieces
        self._start = time.monotonic()

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._pieces)

    def close(self) -> None:
        global _active, _longest_hold
        held = time.monotonic() - self._start
        with _lock:
            _active -= 1
            _longest_hold = max(_longest_hold, held)


def _json(start_response: StartResponse, value: object) -> list[bytes]:
    body = json.dumps(value).encode()
    start_response(
        "200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
    )
    return [body]


def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    global _active, _max_active, _longest_hold
    path = environ["PATH_INFO"]
    if path == "/_seen":
        with _lock:
            return _json(start_response, list(_seen))
    if path == "/_stats":
        with _lock:
            stats = {"max_active": _max_active, "longest_hold": _longest_hold}
            _max_active = 0
            _longest_hold = 0.0
        return _json(start_response, stats)
    seen = {key: str(environ.get(key, "")) for key in ENV_KEYS}
    with _lock:
        _seen.append(seen)
        _active += 1
        _max_active = max(_max_active, _active)
    body = environ["wsgi.input"].read()
    if path == "/big":
        start_response("200 OK", [("Content-Length", str(16 * len(PIECE)))])
        return _Tracked([PIECE] * 16)
    if path == "/sleep":
        time.sleep(float(environ.get("QUERY_STRING") or "1"))
        start_response("200 OK", [("Content-Length", "5")])
        return _Tracked([b"slept"])
    seen["body_length"] = str(len(body))
    reply = json.dumps(seen).encode()
    start_response(
        "200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(reply)))]
    )
    return _Tracked([reply])
