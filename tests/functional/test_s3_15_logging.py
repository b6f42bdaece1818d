"""SPEC §3.15 Logging contract."""

from __future__ import annotations

import logging
import threading
import time

import pytest

from tests.functional.serving import Running


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
