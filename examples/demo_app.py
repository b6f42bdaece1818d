"""The demo application `make serve` runs: a greeting, the request environ, and an echo."""

from __future__ import annotations

from typing import Any, Callable, Iterable


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    """`/` greets, `/environ` lists the WSGI environ, `POST /echo` returns the body."""
    path = environ["PATH_INFO"]
    if path == "/environ":
        lines = [f"{key}: {value!r}" for key, value in sorted(environ.items())]
        body = "\n".join(lines).encode("utf-8")
    elif path == "/echo" and environ["REQUEST_METHOD"] == "POST":
        body = environ["wsgi.input"].read()
    else:
        body = b"Hello from waitress-rs!\n"
    start_response("200 OK", [("Content-Type", "text/plain; charset=utf-8")])
    return [body]
