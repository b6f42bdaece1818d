"""One WSGI app for the differential suite (tests/compat): served by waitress 3.0.2 from its
own venv and by waitress-rs, it must answer the same bytes. Routes are PATH_INFO."""

from __future__ import annotations

import json
from typing import Any, Callable, Iterable, Iterator

StartResponse = Callable[..., Any]

ENV_KEYS = (
    "REQUEST_METHOD",
    "SCRIPT_NAME",
    "PATH_INFO",
    "QUERY_STRING",
    "REQUEST_URI",
    "SERVER_PROTOCOL",
    "SERVER_NAME",
    "SERVER_SOFTWARE",
    "REMOTE_ADDR",
    "REMOTE_HOST",
    "CONTENT_TYPE",
    "CONTENT_LENGTH",
    "wsgi.url_scheme",
    "wsgi.input_terminated",
    "wsgi.multithread",
    "wsgi.multiprocess",
    "wsgi.run_once",
)


def _generator() -> Iterator[bytes]:
    yield b"first "
    yield b""
    yield b"second"


def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    path = environ["PATH_INFO"]
    if path == "/hello":
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "5")])
        return [b"hello"]
    if path == "/nocl":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"no ", b"length"]
    if path == "/one":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"one item"]
    if path == "/generator":
        start_response("200 OK", [])
        return _generator()
    if path == "/empty":
        start_response("200 OK", [("Content-Length", "0")])
        return []
    if path == "/env":
        shown = {key: environ.get(key) for key in ENV_KEYS}
        shown["headers"] = sorted((k, v) for k, v in environ.items() if k.startswith("HTTP_"))
        shown["body"] = environ["wsgi.input"].read().decode("latin-1")
        body = json.dumps(shown, sort_keys=True).encode()
        start_response(
            "200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
        )
        return [body]
    if path == "/echo":
        body = environ["wsgi.input"].read()
        start_response("200 OK", [("Content-Length", str(len(body)))])
        return [body]
    if path == "/headers":
        start_response(
            "200 OK",
            [
                ("x-lower", "1"),
                ("X-UPPER", "2"),
                ("ETag", '"abc"'),
                ("WWW-Authenticate", "Basic"),
                ("Set-Cookie", "a=1"),
                ("Set-Cookie", "b=2"),
                ("Content-Length", "2"),
            ],
        )
        return [b"ok"]
    if path == "/server":
        start_response("200 OK", [("Server", "myserver"), ("Content-Length", "2")])
        return [b"ok"]
    if path == "/date":
        start_response(
            "200 OK", [("Date", "Thu, 01 Jan 1970 00:00:00 GMT"), ("Content-Length", "2")]
        )
        return [b"ok"]
    if path == "/write":
        write = start_response("200 OK", [("Content-Length", "10")])
        write(b"hello")
        return [b"world"]
    if path == "/big":
        body = b"0123456789" * 10_000
        start_response("200 OK", [("Content-Length", str(len(body)))])
        return [body]
    if path == "/bigchunks":
        start_response("200 OK", [])
        return [b"x" * 40_000, b"y" * 40_000]
    if path == "/long":
        start_response("200 OK", [("Content-Length", "2")])
        return [b"okay"]
    if path == "/redirect":
        start_response(
            "302 Found",
            [("Location", "/hello"), ("Set-Cookie", "s=1; Path=/"), ("Content-Length", "0")],
        )
        return []
    if path == "/teapot":
        start_response("418 I'm a teapot", [("Content-Length", "6")])
        return [b"teapot"]
    if path == "/raise":
        raise RuntimeError("boom")
    if path == "/query":
        body = environ["QUERY_STRING"].encode("latin-1")
        start_response("200 OK", [("Content-Length", str(len(body)))])
        return [body]
    if path.startswith("/path"):
        body = path.encode("latin-1")
        start_response("200 OK", [("Content-Length", str(len(body)))])
        return [body]
    start_response("404 Not Found", [("Content-Type", "text/plain"), ("Content-Length", "9")])
    return [b"not found"]
