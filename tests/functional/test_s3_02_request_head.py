"""SPEC §3.2-§3.4 (request head framing, request line, header fields) over a socket: every hostile
vector of the corpus gets its status, one response, then the close.
"""

from __future__ import annotations

import re
import socket
import time
from typing import Iterator

import pytest

from tests.apps.hello_app import app as hello_app
from tests.functional.serving import Running, read_all
from tests.security.vectors import OK, VECTORS

HOSTILE = [v for v in VECTORS if v[2] != OK and len(v[1]) < 2000]


@pytest.mark.parametrize(("vector_id", "raw", "expected"), HOSTILE, ids=[v[0] for v in HOSTILE])
def test_hostile_vector_over_a_socket(
    running: Running, vector_id: str, raw: bytes, expected: int
) -> None:
    response = running.exchange(raw + b"GET /smuggled HTTP/1.1\r\n\r\n")
    assert response.startswith(b"HTTP/1.") and response[9:12] == str(expected).encode()
    statuses = re.findall(rb"HTTP/1\.[01] \d{3} ", response)
    assert len(statuses) == 1, "one response, then the connection closed"


CONTROLS = [v for v in VECTORS if v[2] == OK]
#: Ten hostile vectors spread over the corpus, for the one-byte-writes run.
CHOSEN = HOSTILE[:: max(1, len(HOSTILE) // 10)][:10]


@pytest.fixture(scope="module")
def hello() -> Iterator[Running]:
    """A server whose app answers 200 to any path (the echo app 404s outside its routes)."""
    server = Running(hello_app)
    yield server
    server.stop()


@pytest.mark.parametrize(("vector_id", "raw", "expected"), CONTROLS, ids=[v[0] for v in CONTROLS])
def test_control_request_over_a_socket_is_served(
    hello: Running, vector_id: str, raw: bytes, expected: int
) -> None:
    with hello.connect() as sock:
        sock.sendall(raw)
        sock.shutdown(socket.SHUT_WR)  # keep-alive requests: the EOF ends the connection
        response = read_all(sock)
    assert response[9:10] == b"2", response[:200]


@pytest.mark.parametrize(("vector_id", "raw", "expected"), CHOSEN, ids=[v[0] for v in CHOSEN])
def test_hostile_vector_in_one_byte_writes(
    running: Running, vector_id: str, raw: bytes, expected: int
) -> None:
    """The same verdict when the vector arrives one byte per segment."""
    with running.connect() as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            for at in range(len(raw)):
                sock.send(raw[at : at + 1])
                time.sleep(0.0005)
            sock.sendall(b"GET /smuggled HTTP/1.1\r\n\r\n")
        except OSError:
            pass  # the server answered and closed before the vector ended
        response = read_all(sock)
    assert response[9:12] == str(expected).encode(), response[:200]
    assert len(re.findall(rb"HTTP/1\.[01] \d{3} ", response)) == 1
