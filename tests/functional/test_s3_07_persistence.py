"""SPEC §3.7 Persistence, pipelining, lookahead."""

from __future__ import annotations

import socket
from typing import Optional

import pytest

from tests.functional.serving import Running, parse_responses, read_all


def test_keep_alive_http11_and_close_http10(running: Running) -> None:
    with running.connect() as sock:
        sock.sendall(b"POST /echo HTTP/1.1\r\nContent-Length: 2\r\n\r\nhi")
        first = sock.recv(65536)
        assert first.startswith(b"HTTP/1.1 200 OK") and first.endswith(b"hi")
        sock.sendall(b"GET /echo HTTP/1.0\r\n\r\n")
        rest = read_all(sock)
    assert rest.startswith(b"HTTP/1.0 200 OK") and b"Connection: close" in rest


def _closed_after(sock: socket.socket) -> bool:
    """True when the server closes the connection after the response already read."""
    sock.settimeout(0.5)
    try:
        return sock.recv(1) == b""
    except socket.timeout:
        return False


@pytest.mark.parametrize(
    ("version", "connection", "path", "kept"),
    [
        ("1.1", None, "/counted", True),
        ("1.1", "close", "/counted", False),
        ("1.1", None, "/stream", False),  # chunked, then close (SPEC §3.10)
        ("1.0", None, "/counted", False),
        ("1.0", "keep-alive", "/counted", True),
        ("1.0", "keep-alive", "/stream", False),  # no length: close-delimited
    ],
)
def test_keep_alive_matrix(
    running: Running, version: str, connection: Optional[str], path: str, kept: bool
) -> None:
    head = f"GET {path} HTTP/{version}\r\n"
    if connection:
        head += f"Connection: {connection}\r\n"
    with running.connect() as sock:
        sock.sendall(head.encode() + b"\r\n")
        data = b""
        while b"three" not in data and b"counted" not in data:
            piece = sock.recv(65536)
            assert piece, data
            data += piece
        if path == "/stream" and version == "1.1":
            while not data.endswith(b"0\r\n\r\n"):
                data += sock.recv(65536)
        assert data.startswith(f"HTTP/{version} 200 OK".encode())
        if version == "1.0" and kept:
            assert b"Connection: Keep-Alive" in data
        assert _closed_after(sock) is not kept


def test_twenty_five_pipelined_requests_answered_in_order(running: Running) -> None:
    wire = b"".join(
        b"POST /echo HTTP/1.1\r\nContent-Length: %d\r\n\r\nbody-%d" % (len(b"body-%d" % n), n)
        for n in range(25)
    )
    wire += b"GET /counted HTTP/1.1\r\nConnection: close\r\n\r\n"
    responses = parse_responses(running.exchange(wire))
    assert [r.body for r in responses] == [b"body-%d" % n for n in range(25)] + [b"counted"]
