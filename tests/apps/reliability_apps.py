"""The WSGI app the reliability scorecard serves (tests/reliability, tests/soak).

Standard library only, so waitress 3.0.2 can serve it too. Routes on PATH_INFO:

- ``/echo``: the request body back, with Content-Length.
- ``/seq``: the query string back (pipelining order checks).
- ``/big``: ``?n`` KiB of body (default 64).
- ``/stream``: ``?n`` chunks of 64 KiB from an iterable that counts its ``close()`` calls.
- ``/stats``: JSON counters of ``/stream`` iterables: started, closed (at least once),
  closed_again (more than once).
- ``/raise/<stage>``: raises ``before`` start_response, ``after`` it, on the ``first``
  iteration, on a ``later`` one (after a chunk went out), or in ``close()``.
- ``/inject``: a CR, LF or NUL (``?char=cr|lf|nul|crlf``) in the status or a header's name
  or value (``&where=status|name|value``).
- ``/short``: Content-Length 10, fewer bytes (``?via=iter|write|none``).
- ``/env``: ``env_app``.

``env_app`` answers every path with the environ's CGI and HTTP keys and the body (latin-1)
as JSON.
"""

from __future__ import annotations

import json
import threading
from typing import Any, Callable, Iterator

StartResponse = Callable[..., Any]

_lock = threading.Lock()
_stats = {"started": 0, "closed": 0, "closed_again": 0}

CHUNK = b"s" * 65536


class Stream:
    """An app iterable that records how often ``close()`` is called."""

    def __init__(self, chunks: int) -> None:
        self.chunks = chunks
        self.closes = 0
        with _lock:
            _stats["started"] += 1

    def __iter__(self) -> Iterator[bytes]:
        for _ in range(self.chunks):
            yield CHUNK

    def close(self) -> None:
        with _lock:
            self.closes += 1
            if self.closes == 1:
                _stats["closed"] += 1
            elif self.closes == 2:
                _stats["closed_again"] += 1


class Failing:
    """An app iterable that raises on its first or a later step, or in ``close()``."""

    def __init__(self, stage: str) -> None:
        self.stage = stage

    def __iter__(self) -> Iterator[bytes]:
        if self.stage == "first":
            raise RuntimeError("raised on the first iteration")
        yield b"partial"
        if self.stage == "later":
            raise RuntimeError("raised on a later iteration")

    def close(self) -> None:
        if self.stage == "close":
            raise RuntimeError("raised in close()")


INJECTED = {"cr": "\r", "lf": "\n", "nul": "\x00", "crlf": "\r\n"}
#: Text placed after the injected character: it must never reach the wire.
MARKER = "Injected-Marker"


def app(environ: dict[str, Any], start_response: StartResponse) -> Any:
    path = environ["PATH_INFO"]
    query = environ.get("QUERY_STRING", "")
    if path == "/echo":
        body = environ["wsgi.input"].read()
        start_response("200 OK", [("Content-Length", str(len(body)))])
        return [body]
    if path == "/seq":
        body = query.encode()
        start_response("200 OK", [("Content-Length", str(len(body)))])
        return [body]
    if path == "/big":
        body = b"b" * (1024 * int(query or "64"))
        start_response("200 OK", [("Content-Length", str(len(body)))])
        return [body]
    if path == "/stream":
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return Stream(int(query or "100"))
    if path == "/stats":
        with _lock:
            body = json.dumps(_stats).encode()
        start_response("200 OK", [("Content-Length", str(len(body)))])
        return [body]
    if path.startswith("/raise/"):
        stage = path[len("/raise/") :]
        if stage == "before":
            raise RuntimeError("raised before start_response")
        start_response("200 OK", [("Content-Length", "100" if stage == "later" else "7")])
        if stage == "after":
            raise RuntimeError("raised after start_response")
        return Failing(stage)
    if path == "/inject":
        options = dict(part.partition("=")[::2] for part in query.split("&"))
        bad = INJECTED[options.get("char", "crlf")] + MARKER
        where = options.get("where", "value")
        status = "200 OK" + (bad if where == "status" else "")
        name = "X-Test" + (bad if where == "name" else "")
        value = "v" + (bad if where == "value" else "")
        start_response(status, [("Content-Length", "2"), (name, value)])
        return [b"ok"]
    if path == "/short":
        via = query or "iter"
        write = start_response("200 OK", [("Content-Length", "10")])
        if via == "write":
            write(b"12345")
            return []
        return [b"12345"] if via == "iter" else []
    if path == "/env":
        return env_app(environ, start_response)
    start_response("404 Not Found", [("Content-Length", "0")])
    return []


def env_app(environ: dict[str, Any], start_response: StartResponse) -> Any:
    """The environ's CGI and HTTP keys and the body (latin-1) as JSON, whatever the path."""
    shown = {
        key: value
        for key, value in environ.items()
        if isinstance(value, str) and (key.isupper() or key.startswith("HTTP_"))
    }
    shown["body"] = environ["wsgi.input"].read().decode("latin-1")
    body = json.dumps(shown).encode()
    start_response(
        "200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
    )
    return [body]
