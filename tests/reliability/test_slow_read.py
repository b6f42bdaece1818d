"""Scorecard item 3, slow read, the mechanism behind its target: a client that does not read
its response holds at most ``TCP_NOTSENT_LOWAT`` (128 KiB) of unsent output in the server's
kernel socket; the rest waits in the server until the client drains it, and arrives intact.

Without the cap, a loopback socket's send buffer autotunes to about a megabyte whatever the
peer's window, and a burst of 500 slow readers had the I/O thread copying 500 MiB into the
kernel while a normal client waited over a second (docs/reliability.md; the attack itself is
``tests/soak/test_slow_clients.py``)."""

from __future__ import annotations

import socket
import time
from typing import Iterator

import pytest

from tests.reliability.support import MIB, ServerProcess, read_response, report

NOTSENT_LOWAT = 128 * 1024
#: What else may sit unacknowledged: the client's tiny receive window, one segment in flight.
SLACK = 96 * 1024


@pytest.fixture(scope="module")
def server() -> Iterator[ServerProcess]:
    process = ServerProcess()
    yield process
    process.stop()


def send_queue(server_port: int, client_port: int) -> int:
    """Bytes queued in the server socket of this connection (unsent + unacknowledged), from
    /proc/net/tcp's tx_queue."""
    local = f"0100007F:{server_port:04X}"
    remote = f"0100007F:{client_port:04X}"
    with open("/proc/net/tcp") as table:
        for line in table.readlines()[1:]:
            fields = line.split()
            if fields[1] == local and fields[2] == remote:
                return int(fields[4].split(":")[0], 16)
    raise AssertionError("the server's socket for this connection is not in /proc/net/tcp")


def test_slow_read_a_reader_that_does_not_read_holds_at_most_notsent_lowat(
    server: ServerProcess,
) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # a tiny window, as slowhttptest -w
    sock.settimeout(10)
    with sock:
        sock.connect(server.address)
        sock.sendall(b"GET /big?4096 HTTP/1.1\r\nHost: t\r\n\r\n")
        client_port = sock.getsockname()[1]
        deadline = time.monotonic() + 2
        queued = 0
        while time.monotonic() < deadline:  # the largest queue seen while nothing is read
            queued = max(queued, send_queue(server.port, client_port))
            time.sleep(0.05)
        report("3-slow-read-kernel-queue", queued_kib=queued // 1024)
        assert 0 < queued <= NOTSENT_LOWAT + SLACK, queued
        # Nothing is lost: once the client reads, the whole 4 MiB arrives.
        response = read_response(sock)
    assert response is not None
    status, _, body = response
    assert status == 200 and body == b"b" * (4 * MIB)
