"""SPEC §3.15 Logging contract."""

from __future__ import annotations

import logging
import socket
import threading
import time

import pytest

from tests.functional.serving import Running, read_all


def _queue_three(server: Running, sleep: float = 0.3) -> None:
    """Three requests a little apart to a one-thread server, each sleeping `sleep` s: the
    second and third wait in the queue. Then time for the serving thread (it emits queued
    records every 20 ms) to log them."""
    request = b"GET /sleep?%s HTTP/1.0\r\n\r\n" % str(sleep).encode()
    clients = [threading.Thread(target=server.exchange, args=(request,)) for _ in range(3)]
    for client in clients:
        client.start()
        time.sleep(0.05)
    for client in clients:
        client.join(10)
    time.sleep(0.3)


def test_task_queue_depth_warning(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("WARNING", logger="waitress.queue")
    server = Running(threads=1)
    try:
        _queue_three(server, sleep=0.4)
    finally:
        server.stop()
    depths = [r.getMessage() for r in caplog.records if r.name == "waitress.queue"]
    assert depths == ["Task queue depth is 1", "Task queue depth is 2"]


def test_task_queue_depth_warning_follows_the_logger_level(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A silenced `waitress.queue` logger costs no record per request (the core re-reads
    its level every 20 ms); turned back on, the warnings come back."""
    queue_logger = logging.getLogger("waitress.queue")
    caplog.set_level("WARNING", logger="waitress.queue")
    server = Running(threads=1)
    try:
        queue_logger.setLevel(logging.ERROR)
        time.sleep(0.1)
        _queue_three(server)
        silenced = [r for r in caplog.records if r.name == "waitress.queue"]
        queue_logger.setLevel(logging.WARNING)
        time.sleep(0.1)
        _queue_three(server)
    finally:
        queue_logger.setLevel(logging.NOTSET)
        server.stop()
    depths = [r.getMessage() for r in caplog.records if r.name == "waitress.queue"]
    assert silenced == []
    assert depths == ["Task queue depth is 1", "Task queue depth is 2"]


def test_a_burst_of_slow_requests_left_waiting_for_a_busy_worker_logs_the_queue_depth(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Three slow requests that arrive together reach a one-thread server in one pass of
    its I/O (a leader's burst, crew.rs rule 2): no warning while the worker is free to run
    them in turn, but once it is busy in the first and the other two wait for it, the
    queue depth is logged (SPEC §3.15: a request waits because every worker is busy), with
    the depth waitress reaches, 2."""
    caplog.set_level("WARNING", logger="waitress.queue")
    server = Running(threads=1)
    try:
        socks = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(3)]
        time.sleep(0.1)  # accepted: the three requests then come in one pass
        for sock in socks:
            sock.sendall(b"GET /sleep?0.3 HTTP/1.0\r\n\r\n")
        for sock in socks:
            with sock:
                sock.settimeout(10)
                assert read_all(sock).startswith(b"HTTP/1.0 200 OK")
        time.sleep(0.1)
    finally:
        server.stop()
    depths = [r.getMessage() for r in caplog.records if r.name == "waitress.queue"]
    assert depths, "no queue-depth warning for requests that waited for the busy worker"
    assert depths[-1] == "Task queue depth is 2", depths
