"""SPEC §3.16 Listeners, sockets, shutdown (and D3 server classes, D4 fork, D7 signals)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

from tests.apps.functional_apps import echo
from tests.functional.serving import ECHO_COMMAND, ROOT, Running, body_of, read_all
from waitress.server import BaseWSGIServer, MultiSocketServer, create_server


def test_unix_socket(tmp_path: Path) -> None:
    path = str(tmp_path / "s.sock")
    server = Running(unix_socket=path, unix_socket_perms="660")
    try:
        assert oct(os.stat(path).st_mode & 0o777) == "0o660"
        env = json.loads(body_of(server.exchange(b"GET /env HTTP/1.0\r\n\r\n")))
        assert env["REMOTE_ADDR"] == "localhost" and env["REMOTE_PORT"] == "None"
        assert env["SERVER_PORT"] == path
    finally:
        server.stop()


def test_two_listeners_one_server() -> None:
    server = create_server(echo, listen="127.0.0.1:0 127.0.0.1:0")
    assert isinstance(server, MultiSocketServer)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        for host, port in server.effective_listen:
            with socket.create_connection((host, int(port))) as sock:
                sock.sendall(b"GET /env HTTP/1.0\r\n\r\n")
                env = json.loads(body_of(read_all(sock)))
                assert env["SERVER_PORT"] == str(port)
    finally:
        server.close()
        thread.join(10)
    assert not thread.is_alive()


def test_sigterm_lets_in_flight_requests_finish() -> None:
    proc = subprocess.Popen(
        ECHO_COMMAND,
        cwd=ROOT,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()
        assert "Serving on http://127.0.0.1:" in line, line
        port = int(line.rsplit(":", 1)[1])
        result: list[bytes] = []

        def client() -> None:
            with socket.create_connection(("127.0.0.1", port)) as sock:
                sock.sendall(b"GET /sleep?1 HTTP/1.1\r\n\r\n")
                result.append(read_all(sock))

        thread = threading.Thread(target=client)
        thread.start()
        time.sleep(0.3)
        proc.send_signal(signal.SIGTERM)
        thread.join(10)
        assert proc.wait(10) == 0
        assert result and result[0].startswith(b"HTTP/1.1 200 OK") and result[0].endswith(b"slept")
        assert b"Connection: close" in result[0]
    finally:
        if proc.poll() is None:
            proc.kill()
        if proc.stderr is not None:
            proc.stderr.close()


def test_server_created_before_fork_serves_in_the_child() -> None:
    server = create_server(echo, listen="127.0.0.1:0")
    assert isinstance(server, BaseWSGIServer)
    port = int(server.effective_port)
    pid = os.fork()
    if pid == 0:  # the child serves until SIGTERM
        try:
            server.run()
        finally:
            os._exit(0)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
                    sock.sendall(b"GET /echo HTTP/1.0\r\n\r\n")
                    assert read_all(sock).startswith(b"HTTP/1.0 200 OK")
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
    finally:
        os.kill(pid, signal.SIGTERM)
        _, status = os.waitpid(pid, 0)
        server.socket.close()
    assert os.WIFEXITED(status)


def test_ipv6_loopback() -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6 on this machine")
    server = create_server(echo, listen="[::1]:0")
    assert isinstance(server, BaseWSGIServer)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        with socket.create_connection(("::1", int(server.effective_port))) as sock:
            sock.sendall(b"GET /env HTTP/1.0\r\n\r\n")
            env = json.loads(body_of(read_all(sock)))
        assert env["REMOTE_ADDR"] == "::1"
        assert server.effective_host == "::1"
    finally:
        server.close()
        thread.join(10)


def test_a_cut_off_request_closes_its_connection_when_the_server_stops() -> None:
    """A request still inside the application when `shutdown_timeout` ends is cut off: its
    client sees the connection closed as `run()` returns, not when the application finally
    returns (the worker still holds the response; the socket is shut down regardless)."""
    server = Running(threads=1, shutdown_timeout=0.5)
    sock = server.connect()
    try:
        sock.sendall(b"GET /sleep?4 HTTP/1.1\r\nHost: t\r\n\r\n")
        time.sleep(0.3)
        stopped = time.monotonic()
        server.stop()
        assert not server.thread.is_alive()
        try:
            data = sock.recv(4096)
        except ConnectionResetError:
            data = b""
        assert data == b"", data
        assert time.monotonic() - stopped < 2.0
    finally:
        sock.close()
