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


def test_exception_after_a_large_piece_was_written_closes_without_a_500(running: Running) -> None:
    """The first 64 KiB go to the socket from the worker (handler.rs rule 5); the failure that
    follows must close the connection, never append a 500 to a started response, and the
    pipelined request behind it is never answered."""
    response = running.exchange(
        b"GET /raise-in-iter-large HTTP/1.1\r\n\r\nGET /counted HTTP/1.1\r\n\r\n"
    )
    head, _, body = response.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK\r\n") and b"Content-Length: 100000" in head
    assert body == b"x" * 65536, len(body)
