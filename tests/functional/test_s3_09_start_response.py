"""SPEC §3.9 start_response, write() and the application iterable."""

from __future__ import annotations

from tests.functional.serving import Running, body_of


def test_write_callable(running: Running) -> None:
    response = running.exchange(b"GET /write HTTP/1.1\r\nConnection: close\r\n\r\n")
    assert body_of(response) == b"helloworld"


def test_exception_after_start_response_before_the_body_is_500(running: Running) -> None:
    response = running.exchange(b"GET /raise-after-start HTTP/1.1\r\n\r\n")
    assert response.startswith(b"HTTP/1.1 500 Internal Server Error\r\n")


def test_exception_during_iteration_after_the_head_closes_the_connection(
    running: Running,
) -> None:
    from tests.apps import functional_apps

    functional_apps.CLOSED[0] = 0
    # A second request is pipelined behind: it must never be answered on this connection.
    response = running.exchange(b"GET /raise-in-iter HTTP/1.1\r\n\r\nGET /counted HTTP/1.1\r\n\r\n")
    assert response.startswith(b"HTTP/1.1 200 OK\r\n")
    assert response.endswith(b"first"), "the truncated body, then the close"
    assert response.count(b"HTTP/1.1") == 1
    assert functional_apps.CLOSED[0] == 1, "close() called exactly once"


def test_close_is_called_exactly_once_per_request(running: Running) -> None:
    from tests.apps import functional_apps

    functional_apps.CLOSED[0] = 0
    wire = b"GET /counted HTTP/1.1\r\n\r\n" * 3 + b"GET /stream HTTP/1.0\r\n\r\n"
    running.exchange(wire)
    assert functional_apps.CLOSED[0] == 4
