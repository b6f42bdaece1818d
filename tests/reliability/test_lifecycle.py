"""Lifecycle (reliability scorecard item 6, SPEC D7): SIGTERM while 50 one-second requests
are in flight and wrk keeps the server busy. Every request whose head was read completes (with
``Connection: close``), idle keep-alive connections are closed, the listener closes within
100 ms, the process exits 0 within ``shutdown_timeout`` + 1 s; a request that outlives
``shutdown_timeout`` is cut off; a second signal exits at once.

``python -m tests.reliability.test_lifecycle theirs`` measures waitress 3.0.2 the same way
(docs/reliability.md).
"""

from __future__ import annotations

import functools
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from typing import Any, Optional

import pytest

from tests.reliability.harness import Server, read_response

IN_FLIGHT = 50


def _wrk() -> str:
    found = shutil.which("wrk")
    if found is None:
        pytest.fail("wrk is missing: `make sysdeps` installs it")
    return found


def _listener_closed_after(port: int, t0: float, limit: float = 5.0) -> Optional[float]:
    """Seconds from ``t0`` until a connect to ``port`` is refused (None: still open)."""
    while time.monotonic() - t0 < limit:
        try:
            probe = socket.create_connection(("127.0.0.1", port), timeout=0.5)
        except ConnectionRefusedError:
            return time.monotonic() - t0
        except OSError:
            pass
        else:
            probe.close()
        time.sleep(0.002)
    return None


def measure_sigterm_drain(which: str, threads: int, shutdown_timeout: int = 5) -> dict[str, Any]:
    """Run the scenario once and report what happened (the tests assert on it)."""
    options = [f"--threads={threads}"]
    if which == "ours":
        options.append(f"--shutdown-timeout={shutdown_timeout}")
    server = Server(which, *options)
    figures: dict[str, Any] = {}
    try:
        port = server.port
        wrk = subprocess.Popen(
            [_wrk(), "-t2", "-c20", "-d3s", f"http://127.0.0.1:{port}/wrk"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        # Idle keep-alive clients: one request answered, then they wait.
        idle = []
        for i in range(10):
            sock = socket.create_connection(("127.0.0.1", port), timeout=10)
            sock.sendall(f"GET /idle/{i} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            status, headers, _, _ = read_response(sock)
            assert status == 200 and "close" not in headers.get("connection", "")
            idle.append(sock)
        # 50 keep-alive requests that take a second each.
        answers: list[Any] = [None] * IN_FLIGHT

        def in_flight(i: int, sock: socket.socket) -> None:
            try:
                status, headers, body, rest = read_response(sock)
                closed = rest == b"" and sock.recv(1) == b""
                answers[i] = (status, headers.get("connection", ""), body, closed)
            except (OSError, EOFError) as exc:
                answers[i] = exc

        readers = []
        for i in range(IN_FLIGHT):
            sock = socket.create_connection(("127.0.0.1", port), timeout=10)
            sock.sendall(b"GET /sleep?1 HTTP/1.1\r\nHost: x\r\n\r\n")
            thread = threading.Thread(target=in_flight, args=(i, sock), daemon=True)
            thread.start()
            readers.append((thread, sock))
        time.sleep(0.4)  # every head read and dispatched (there are threads for all)
        idle_closed_after: list[Optional[float]] = [None] * len(idle)

        def watch_idle(i: int, sock: socket.socket) -> None:
            try:
                sock.settimeout(5)
                if sock.recv(65536) == b"":
                    idle_closed_after[i] = time.monotonic() - t0
            except OSError:
                pass

        watchers = [
            threading.Thread(target=watch_idle, args=(i, sock), daemon=True)
            for i, sock in enumerate(idle)
        ]
        for thread in watchers:
            thread.start()
        t0 = time.monotonic()
        server.proc.send_signal(signal.SIGTERM)
        figures["listener_closed_after"] = _listener_closed_after(port, t0)
        for thread in watchers:
            thread.join(6)
        for sock in idle:
            sock.close()
        figures["idle_closed_after"] = idle_closed_after
        try:
            figures["exit_code"] = server.proc.wait(shutdown_timeout + 5)
        except subprocess.TimeoutExpired:
            figures["exit_code"] = None
        figures["exit_after"] = time.monotonic() - t0
        for thread, sock in readers:
            thread.join(10)
            sock.close()
        figures["answers"] = answers
        figures["completed"] = sum(
            1 for a in answers if isinstance(a, tuple) and a[0] == 200 and a[2] == b"slept"
        )
        figures["with_connection_close"] = sum(
            1 for a in answers if isinstance(a, tuple) and a[1].lower() == "close" and a[3]
        )
        wrk_out, _ = wrk.communicate(timeout=30)
        figures["wrk"] = wrk_out
        match = re.search(r"Non-2xx or 3xx responses: (\d+)", wrk_out)
        figures["wrk_non_2xx"] = int(match.group(1)) if match else 0
        match = re.search(r"(\d+) requests in", wrk_out)
        figures["wrk_requests"] = int(match.group(1)) if match else 0
        figures["log_tail"] = "".join(server.log[-20:])
    finally:
        server.stop()
    return figures


SHUTDOWN_TIMEOUT = 5


@functools.cache
def scenario(threads: int) -> dict[str, Any]:
    """The SIGTERM scenario with ``threads`` workers, run once per test session."""
    return measure_sigterm_drain("ours", threads, SHUTDOWN_TIMEOUT)


def assert_targets(figures: dict[str, Any]) -> None:
    """Every target of the scenario but the listener's (tested on its own)."""
    assert figures["completed"] == IN_FLIGHT, figures["answers"]
    # keep-alive requests: the last response says Connection: close, then the socket closes
    assert figures["with_connection_close"] == IN_FLIGHT, figures["answers"]
    closed = figures["idle_closed_after"]
    assert all(t is not None and t < 0.5 for t in closed), closed
    assert figures["exit_code"] == 0, figures["log_tail"]
    assert figures["exit_after"] < SHUTDOWN_TIMEOUT + 1, figures["exit_after"]
    assert figures["wrk_requests"] > 100, figures["wrk"]  # the load was real
    assert figures["wrk_non_2xx"] == 0, figures["wrk"]


def test_sigterm_with_spare_threads_drains_every_request() -> None:
    assert_targets(scenario(IN_FLIGHT + 50))


def test_sigterm_with_saturated_workers_drains_every_request() -> None:
    # 50 sleepers + wrk's 20 connections on 60 threads: requests queue for a worker, and
    # the queue logs a warning for each.
    assert_targets(scenario(IN_FLIGHT + 10))


def test_listener_closes_within_100ms() -> None:
    # SPEC D7: the listening sockets close as the stop begins, not when the drain ends.
    closed = scenario(IN_FLIGHT + 50)["listener_closed_after"]
    assert closed is not None and closed < 0.1, closed


def _signal_with_a_long_request(shutdown_timeout: int, signals: int) -> tuple[float, Any]:
    """A request that sleeps 30 s is in flight; send SIGTERM ``signals`` times (0.3 s apart).

    Returns (seconds from the last signal to exit, exit code or None if still running)."""
    server = Server("ours", f"--shutdown-timeout={shutdown_timeout}")
    try:
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            sock.sendall(b"GET /sleep?30 HTTP/1.1\r\nHost: x\r\n\r\n")
            time.sleep(0.3)
            for n in range(signals):
                if n:
                    time.sleep(0.3)
                    assert server.proc.poll() is None, "exited before the second signal"
                t0 = time.monotonic()
                server.proc.send_signal(signal.SIGTERM)
            try:
                code: Any = server.proc.wait(shutdown_timeout + 2 if signals == 1 else 2)
            except subprocess.TimeoutExpired:
                code = None
            return time.monotonic() - t0, code
    finally:
        if server.proc.poll() is None:
            server.proc.kill()
        server.stop()


def test_shutdown_timeout_cuts_off_a_request_that_runs_longer() -> None:
    elapsed, code = _signal_with_a_long_request(shutdown_timeout=2, signals=1)
    assert code == 0
    assert 1.5 < elapsed < 2 + 1, elapsed


def test_a_second_signal_stops_at_once() -> None:
    elapsed, code = _signal_with_a_long_request(shutdown_timeout=30, signals=2)
    assert code is not None and elapsed < 0.5, (elapsed, code)


def main(which: str) -> None:
    for threads in (IN_FLIGHT + 10, IN_FLIGHT + 50):
        figures = measure_sigterm_drain(which, threads)
        figures.pop("answers")
        print(which, threads, {k: v for k, v in figures.items() if k != "wrk"})


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "ours")
