"""SPEC §3.6 Expect: 100-continue: the interim response is sent while the body is pending,
never for a body already received, and the final response follows the body."""

from __future__ import annotations

from tests.functional.serving import Running, parse_responses, read_all


def test_100_continue_is_sent_before_the_body_is_read(running: Running) -> None:
    with running.connect() as sock:
        sock.sendall(
            b"POST /echo HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 5\r\n"
            b"Connection: close\r\n\r\n"
        )
        interim = sock.recv(25)
        assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(b"hello")
        (response,) = parse_responses(read_all(sock))
    assert response.code == 200 and response.body == b"hello"


def test_no_100_continue_for_http_1_0(running: Running) -> None:
    raw = b"POST /echo HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nhi"
    response = running.exchange(raw)
    assert response.startswith(b"HTTP/1.0 200 OK") and b"100 Continue" not in response
