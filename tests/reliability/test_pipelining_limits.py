"""Scorecard item 7, pipelining and limits under load: many requests in one write, an
error in the middle of a pipeline, a client that pipelines without reading, a huge head
without a line end, and timeouts that fire on time (SPEC §3.7, §3.14, B2, D7, D8). The
N-1/N/N+1 boundaries are in tests/functional/test_server.py."""

from __future__ import annotations

import socket
import threading
import time
from typing import Iterator

import pytest

from tests.reliability.support import (
    MIB,
    ServerProcess,
    flavour,
    read_response,
    read_until_eof,
    report,
    rst_close,
    split_responses,
)


@pytest.fixture(scope="module")
def server() -> Iterator[ServerProcess]:
    process = ServerProcess()
    yield process
    process.stop()


def seq(n: int, last: bool = False) -> bytes:
    close = b"Connection: close\r\n" if last else b""
    return b"GET /seq?%d HTTP/1.1\r\nHost: t\r\n%s\r\n" % (n, close)


def test_a_hundred_requests_in_one_write_are_answered_in_order(server: ServerProcess) -> None:
    raw = b"".join(seq(n, last=n == 99) for n in range(100))
    with server.connect() as sock:
        sock.sendall(raw)
        responses = split_responses(read_until_eof(sock))
    assert [status for status, _, _ in responses] == [200] * 100
    assert [body for _, _, body in responses] == [b"%d" % n for n in range(100)]


BAD = {
    "bad-header": b"GET /seq?bad HTTP/1.1\r\nBad Header: x\r\n\r\n",
    "bad-content-length": b"POST /seq?bad HTTP/1.1\r\nContent-Length: x1\r\n\r\n",
    "bad-chunk": b"POST /seq?bad HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
}


@pytest.mark.parametrize("k", [1, 2, 50, 100])
@pytest.mark.parametrize("bad", sorted(BAD))
def test_an_error_at_position_k_ends_the_pipeline(server: ServerProcess, k: int, bad: str) -> None:
    """k-1 responses, the error (400, Connection: close), then EOF; what follows the bad
    request is never served."""
    raw = b"".join(seq(n) for n in range(1, k)) + BAD[bad] + b"".join(seq(n) for n in range(5))
    with server.connect() as sock:
        sock.sendall(raw)
        responses = split_responses(read_until_eof(sock))
    assert [body for _, _, body in responses[: k - 1]] == [b"%d" % n for n in range(1, k)]
    assert len(responses) == k, [status for status, _, _ in responses]
    status, headers, _ = responses[-1]
    assert status == 400 and headers.get(b"connection") == b"close"


def test_a_client_pipelining_without_reading_is_bounded(server: ServerProcess) -> None:
    """Requests for 64 KiB each, written without reading any response: the server stops
    reading once its output is stuck, so the client's writes stall long before 100 MB and
    the server's memory barely moves."""
    rss = server.rss()
    request = b"GET /big HTTP/1.1\r\nHost: t\r\nX-Pad: " + b"p" * 900 + b"\r\n\r\n"
    batch = request * 64
    sent = 0
    sock = server.connect(timeout=1)
    try:
        started = time.monotonic()
        stalled_after = 0.0
        deadline = started + 60
        while sent < 100 * MIB and time.monotonic() < deadline:
            try:
                sent += sock.send(batch)
            except socket.timeout:  # a second without progress: reading has stopped
                break
            stalled_after = time.monotonic() - started
        time.sleep(0.5)
        growth = server.rss() - rss
        report(
            "7-pipelining-without-reading",
            sent_mib=round(sent / MIB, 1),
            stalled_after_s=round(stalled_after, 1),
            rss_growth_mib=round(growth / MIB, 2),
        )
        assert sent < 100 * MIB, "the server kept reading a client that never reads"
        assert growth < 20 * MIB, growth
    finally:
        rst_close(sock)


@pytest.mark.parametrize(
    ("prefix", "expected"),
    [
        # No CRLF at all: the request line passes max_request_line (64 KiB) -> 414 (D7).
        (b"GET /", {b"414"}),
        # A request line, then one header line that never ends -> 431 (SPEC §3.2, B2).
        (b"GET / HTTP/1.1\r\nX-Long: ", {b"431"}),
    ],
    ids=["request-line", "header-line"],
)
def test_a_ten_megabyte_head_without_crlf(
    server: ServerProcess, prefix: bytes, expected: set[bytes]
) -> None:
    rss = server.rss()
    payload = prefix + b"a" * (10 * MIB)
    with server.connect() as sock:
        sent = [0]

        def send() -> None:
            try:
                for i in range(0, len(payload), 65536):
                    sent[0] += sock.send(payload[i : i + 65536])
            except OSError:
                pass  # the server answered and closed

        writer = threading.Thread(target=send)
        writer.start()
        data = read_until_eof(sock)
        writer.join(30)
    growth = server.rss() - rss
    report(
        f"7-10mb-head-{'line' if prefix == b'GET /' else 'field'}",
        status=data[9:12].decode(),
        sent_mib=round(sent[0] / MIB, 1),
        rss_growth_mib=round(growth / MIB, 2),
    )
    if flavour() == "ours":
        assert data[9:12] in expected, data[:200]
    assert data.startswith(b"HTTP/1."), data[:200]
    assert growth < 5 * MIB, growth


def elapsed_until_eof(sock: socket.socket, since: float) -> tuple[float, bytes]:
    data = read_until_eof(sock)
    return time.monotonic() - since, data


@pytest.mark.skipif(flavour() != "ours", reason="waitress 3.0.2 has no header_timeout")
def test_header_timeout_counts_from_the_first_byte() -> None:
    """A head trickled a byte every 0.3 s: 408 two seconds after its first byte (not
    after the last read), +-0.5 s."""
    server = ServerProcess("--header-timeout=2", "--channel-timeout=30")
    try:
        with server.connect() as sock:
            started = time.monotonic()
            sock.settimeout(0.3)
            data = b""
            for byte in b"GET / HTTP/1.1\r\nX-Slow: " + b"s" * 30:
                sock.send(bytes([byte]))
                try:
                    data = sock.recv(65536)
                except socket.timeout:
                    continue
                break
            sock.settimeout(10)
            waited, rest = elapsed_until_eof(sock, started)
            data += rest
        report("7-header-timeout", target_s=2, measured_s=round(waited, 2))
        assert data.startswith(b"HTTP/1.0 408 "), data[:100]
        assert abs(waited - 2) <= 0.5, waited
    finally:
        server.stop()


@pytest.mark.parametrize("where", ["idle", "body"])
def test_channel_timeout_fires_on_time(where: str) -> None:
    """Idle after a response, or no body bytes: closed 2 s after the last activity,
    +-0.5 s (SPEC D8: a timer per connection, not a sweep)."""
    server = ServerProcess("--channel-timeout=2", "--cleanup-interval=1")
    try:
        with server.connect() as sock:
            if where == "idle":
                sock.sendall(seq(1))
                response = read_response(sock)
                assert response is not None and response[0] == 200
            else:
                sock.sendall(b"POST /echo HTTP/1.1\r\nContent-Length: 10\r\n\r\n12345")
            started = time.monotonic()
            waited, data = elapsed_until_eof(sock, started)
        report(f"7-channel-timeout-{where}", target_s=2, measured_s=round(waited, 2))
        assert data == b"", data[:100]
        assert abs(waited - 2) <= 0.5, waited
    finally:
        server.stop()
