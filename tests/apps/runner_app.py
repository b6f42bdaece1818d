"""A tiny WSGI application, and a factory for ``--call``, for the runner tests."""

from __future__ import annotations

from typing import Callable, Iterable, List, Tuple

StartResponse = Callable[[str, List[Tuple[str, str]]], object]


def app(environ: dict[str, object], start_response: StartResponse) -> Iterable[bytes]:
    """Answer every request with a short plain-text body."""
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
    return [b"ok"]


def make_app() -> Callable[[dict[str, object], StartResponse], Iterable[bytes]]:
    """Factory resolved by ``--call``: returns the application."""
    return app


class Namespace:
    """Holds the app one attribute deeper, for ``module:attr.attr`` names."""

    app = staticmethod(app)
