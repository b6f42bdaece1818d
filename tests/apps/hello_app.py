"""A minimal WSGI application for the third-party integration tests (PasteDeploy, WebTest)."""

from __future__ import annotations

from typing import Any, Callable, Dict, Iterable

BODY = b"hello from waitress-rs"


def app(environ: Dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    """Answer every request with a fixed plain-text body and the path in a header."""
    start_response(
        "200 OK",
        [
            ("Content-Type", "text/plain"),
            ("Content-Length", str(len(BODY))),
            ("X-Path", environ["PATH_INFO"]),
        ],
    )
    return [BODY]


def make_app(global_conf: Dict[str, Any], **settings: Any) -> Callable[..., Any]:
    """A PasteDeploy app factory (``use = call:tests.apps.hello_app:make_app``)."""
    return app
