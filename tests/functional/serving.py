"""Shared helpers for the functional tests: a server running in a thread of the test
process, raw-socket exchanges, and a small HTTP/1.x response reader."""

from __future__ import annotations

import socket
import sys
import threading
from pathlib import Path
from typing import Any, Callable, Optional

from tests.apps.functional_apps import echo
from waitress.server import BaseWSGIServer, create_server

#: The repository root: the working directory of servers run as subprocesses.
ROOT = Path(__file__).resolve().parents[2]

#: `waitress-serve` for the echo app on a free port, as a subprocess (it prints the port).
ECHO_COMMAND = [
    sys.executable,
    "-m",
    "waitress",
    "--listen=127.0.0.1:0",
    "tests.apps.functional_apps:echo",
]


class Running:
    """``create_server(app, **kw)`` on 127.0.0.1 (or a unix socket), run in a thread."""

    def __init__(self, app: Callable[..., Any] = echo, **kw: Any) -> None:
        if "unix_socket" not in kw:
            kw.setdefault("listen", "127.0.0.1:0")
        server = create_server(app, **kw)
        assert isinstance(server, BaseWSGIServer)
        self.server = server
        self.thread = threading.Thread(target=server.run, daemon=True)
        self.thread.start()

    @property
    def port(self) -> int:
        return int(self.server.effective_port)

    def connect(self) -> socket.socket:
        if self.server.family == socket.AF_UNIX:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.connect(self.server.adj.unix_socket)
        else:
            sock = socket.create_connection(("127.0.0.1", self.port))
        sock.settimeout(10)
        return sock

    def exchange(self, raw: bytes) -> bytes:
        with self.connect() as sock:
            sock.sendall(raw)
            return read_all(sock)

    def stop(self) -> None:
        self.server.close()
        self.thread.join(10)
        assert not self.thread.is_alive(), "close() from another thread ends run()"


def read_all(sock: socket.socket) -> bytes:
    data = b""
    while True:
        # Large reads: after a zero window, small reads reopen it slowly (TCP silly-window
        # avoidance), which would make the test, not the server, slow.
        chunk = sock.recv(1 << 20)
        if not chunk:
            return data
        data += chunk


def body_of(response: bytes) -> bytes:
    return response.split(b"\r\n\r\n", 1)[1]


class Response:
    """One parsed response: status line, headers (lower-case names), decoded body."""

    def __init__(self, status: str, headers: dict[str, str], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    @property
    def code(self) -> int:
        return int(self.status.split()[1])


def parse_responses(data: bytes, *, head_only: bool = False) -> list[Response]:
    """Split a byte stream into responses by their framing (Content-Length, chunked, or
    close-delimited for the last one)."""
    responses = []
    while data:
        head, sep, data = data.partition(b"\r\n\r\n")
        assert sep, f"incomplete head: {head!r}"
        lines = head.decode("latin-1").split("\r\n")
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        body: bytes
        length: Optional[str] = headers.get("content-length")
        if head_only:
            body = b""
        elif headers.get("transfer-encoding") == "chunked":
            body = b""
            while True:
                size_line, _, data = data.partition(b"\r\n")
                size = int(size_line.split(b";")[0], 16)
                if size == 0:
                    _, _, data = data.partition(b"\r\n")
                    break
                body += data[:size]
                data = data[size + 2 :]
        elif length is not None:
            body, data = data[: int(length)], data[int(length) :]
        else:
            body, data = data, b""
        responses.append(Response(lines[0], headers, body))
    return responses
