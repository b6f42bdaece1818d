"""WSGI apps for the functional tests (served over real sockets)."""

from __future__ import annotations

import json
import os
import time
from typing import Any, Callable, Iterable, Iterator

StartResponse = Callable[..., Any]

#: Bytes `/flood` has handed to the server so far.
FLOODED: list[int] = [0]

#: How many times the application iterables of `/counted` and `/raise-in-iter` were closed.
CLOSED: list[int] = [0]

#: What `/watch` saw: whether `waitress.client_disconnected()` became true within 3 s.
WATCHED: list[bool] = []
#: The wsgi.input streams /keep-input kept past its response.
KEPT: list[Any] = []
#: The `waitress.client_disconnected` checks /keep-check kept, each with what it said then.
KEPT_CHECKS: list[tuple[Any, bool]] = []


class _Counted:
    """An application iterable that counts its close() calls in CLOSED."""

    def __init__(self, pieces: list[bytes], fail: bool = False) -> None:
        self._pieces = pieces
        self._fail = fail

    def __iter__(self) -> Iterator[bytes]:
        yield from self._pieces
        if self._fail:
            raise RuntimeError("boom during iteration")

    def close(self) -> None:
        CLOSED[0] += 1


def echo(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    """Routes on PATH_INFO: /env (environ as JSON), /echo (body back), /sleep, /raise,
    /write (write() callable), /file (wsgi.file_wrapper over this module's file), /stream
    (three pieces, no Content-Length), /raise-after-start, /raise-in-iter, /counted (an
    iterable whose close() is counted), /keep-input (keeps wsgi.input in KEPT), /keep-check
    (keeps waitress.client_disconnected in KEPT_CHECKS)."""
    path = environ["PATH_INFO"]
    if path == "/env":
        shown = {k: v for k, v in environ.items() if isinstance(v, (str, tuple, bool))}
        shown["wsgi.input.read"] = environ["wsgi.input"].read().decode("latin-1")
        body = json.dumps(shown).encode()
        start_response("200 OK", [("Content-Type", "application/json")])
        return [body]
    if path == "/echo":
        body = environ["wsgi.input"].read()
        start_response("200 OK", [("Content-Length", str(len(body)))])
        return [body]
    if path == "/sleep":
        time.sleep(float(environ.get("QUERY_STRING") or "1"))
        start_response("200 OK", [("Content-Length", "5")])
        return [b"slept"]
    if path == "/flood":
        chunk = b"f" * 65536

        def flood() -> Iterable[bytes]:
            for _ in range(800):  # 50 MiB
                FLOODED[0] += len(chunk)
                yield chunk

        start_response("200 OK", [("Content-Length", str(800 * 65536))])
        return flood()
    if path == "/watch":
        deadline = time.monotonic() + 3
        while not environ["waitress.client_disconnected"]() and time.monotonic() < deadline:
            time.sleep(0.02)
        WATCHED.append(environ["waitress.client_disconnected"]())
        start_response("200 OK", [("Content-Length", "0")])
        return []
    if path == "/keep-check":
        check = environ["waitress.client_disconnected"]
        KEPT_CHECKS.append((check, check()))
        start_response("200 OK", [("Content-Length", "2")])
        return [b"ok"]
    if path == "/keep-input":
        KEPT.append(environ["wsgi.input"])
        start_response("200 OK", [("Content-Length", "4")])
        return [b"kept"]
    if path == "/raise":
        raise RuntimeError("boom from the app")
    if path == "/stream":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return _Counted([b"one ", b"two ", b"three"])
    if path == "/raise-after-start":
        start_response("200 OK", [("Content-Length", "5")])
        raise RuntimeError("boom after start_response")
    if path == "/raise-in-iter":
        start_response("200 OK", [("Content-Length", "100")])
        return _Counted([b"first"], fail=True)
    if path == "/raise-in-iter-large":
        # 64 KiB: large enough that the worker writes it to the socket itself.
        start_response("200 OK", [("Content-Length", "100000")])
        return _Counted([b"x" * 65536], fail=True)
    if path == "/counted":
        start_response("200 OK", [("Content-Length", "7")])
        return _Counted([b"counted"])
    if path == "/write":
        write = start_response("200 OK", [("Content-Length", "10")])
        write(b"hello")
        return [b"world"]
    if path == "/file":
        handle = open(os.path.abspath(__file__), "rb")
        start_response("200 OK", [("Content-Type", "text/x-python")])
        wrapper: Iterable[bytes] = environ["wsgi.file_wrapper"](handle)
        return wrapper
    start_response("404 Not Found", [("Content-Length", "0")])
    return []
