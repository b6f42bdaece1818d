"""Scorecard item 8, the response side: an application cannot split a response (CR, LF or
NUL in its status or a header's name or value -> 500, the bytes never on the wire), and a
response shorter than its Content-Length ends the connection (SPEC §3.9, §3.10, B1)."""

from __future__ import annotations

from typing import Iterator

import pytest

from tests.apps.reliability_apps import MARKER
from tests.reliability.support import ServerProcess, read_until_close, report, split_responses


@pytest.fixture(scope="module")
def server() -> Iterator[ServerProcess]:
    process = ServerProcess()
    yield process
    process.stop()


NEXT = b"GET /seq?next HTTP/1.1\r\nHost: t\r\n\r\n"


@pytest.mark.parametrize("char", ["cr", "lf", "nul", "crlf"])
@pytest.mark.parametrize("where", ["status", "name", "value"])
def test_control_characters_in_the_response_head_are_a_500(
    server: ServerProcess, where: str, char: str
) -> None:
    raw = b"GET /inject?char=%s&where=%s HTTP/1.1\r\nHost: t\r\n\r\n" % (
        char.encode(),
        where.encode(),
    )
    with server.connect() as sock:
        sock.sendall(raw + NEXT)  # a pipelined request: it must not be answered
        data, closed = read_until_close(sock)
    leaked = MARKER.encode() in data or b"\x00" in data
    report(f"8-inject-{where}-{char}", status=data[9:12].decode(), leaked=leaked, closed=closed)
    assert not leaked, data
    assert closed, "the connection ends after the 500"
    (response,) = split_responses(data)
    assert response[0] == 500 and response[1].get(b"connection") == b"close", data


@pytest.mark.parametrize("via", ["iter", "write", "none"])
@pytest.mark.parametrize("version", ["HTTP/1.1", "HTTP/1.0 keep-alive"])
def test_fewer_bytes_than_content_length_closes_the_connection(
    server: ServerProcess, via: str, version: str
) -> None:
    """Content-Length 10 and 5 bytes (or none): the client gets the short body and EOF; the
    pipelined request behind it is never answered on that connection."""
    keep_alive = b"Connection: keep-alive\r\n" if version.endswith("keep-alive") else b""
    raw = b"GET /short?%s %s\r\nHost: t\r\n%s\r\n" % (
        via.encode(),
        version.split()[0].encode(),
        keep_alive,
    )
    with server.connect() as sock:
        sock.sendall(raw + NEXT)
        data, closed = read_until_close(sock)
    head, _, body = data.partition(b"\r\n\r\n")
    report(f"8-short-{via}-{version.split()[0]}", closed=closed, body=body[:20].decode())
    assert closed, data
    assert head.startswith(b"HTTP/1.") and head[9:12] == b"200", data
    assert b"Content-Length: 10" in head
    assert body == (b"" if via == "none" else b"12345"), "nothing after the short body"
