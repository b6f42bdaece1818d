"""SPEC §3.11 Server-generated error responses for application failures."""

from __future__ import annotations

import pytest

from tests.functional.serving import Running


def test_app_exception_is_500_and_logged(
    running: Running, caplog: pytest.LogCaptureFixture
) -> None:
    response = running.exchange(b"GET /raise HTTP/1.1\r\n\r\n")
    assert response.startswith(b"HTTP/1.1 500 Internal Server Error\r\n")
    assert b"The server encountered an unexpected internal server error" in response
    assert b"boom" not in response
    assert any("Exception while serving /raise" in r.getMessage() for r in caplog.records)


def test_expose_tracebacks() -> None:
    server = Running(expose_tracebacks=True)
    try:
        response = server.exchange(b"GET /raise HTTP/1.1\r\n\r\n")
        assert b"RuntimeError: boom from the app" in response
    finally:
        server.stop()
