"""Shared helpers for the reliability scorecard (tests/reliability, tests/soak).

The server under test runs as a subprocess (``waitress-serve`` from ``.venv``, or waitress
3.0.2 from ``.venv-waitress`` when ``RELIABILITY_SERVER=waitress``), so its open files,
threads, memory and CPU time can be read from ``/proc/<pid>``. Figures a test measures are
appended as JSON lines to the file named by ``RELIABILITY_REPORT`` (if set): that is how
docs/reliability.md's numbers were collected.
"""

from __future__ import annotations

import json
import os
import re
import socket
import struct
import subprocess
import tempfile
import time
from pathlib import Path
from typing import IO, Any, Optional

import pytest

from tests.reliability.harness import terminate

ROOT = Path(__file__).resolve().parents[2]
VENVS = {"ours": ROOT / ".venv", "waitress": ROOT / ".venv-waitress"}
APP = "tests.apps.reliability_apps:app"
MIB = 1024 * 1024


def flavour() -> str:
    name = os.environ.get("RELIABILITY_SERVER", "ours")
    assert name in VENVS, f"RELIABILITY_SERVER must be one of {sorted(VENVS)}"
    return name


def report(item: str, **figures: Any) -> None:
    """Record measured figures (always printed; appended to $RELIABILITY_REPORT if set)."""
    line = json.dumps({"server": flavour(), "item": item, **figures})
    print(line)
    path = os.environ.get("RELIABILITY_REPORT")
    if path:
        with open(path, "a", encoding="utf-8") as out:
            out.write(line + "\n")


class ServerProcess:
    """``waitress-serve --listen=127.0.0.1:0 [options] app`` in a subprocess. Its log goes
    to a temporary file (never a pipe: ten thousand logged tracebacks would fill a pipe
    nobody reads and stall the server)."""

    def __init__(self, *options: str, app: str = APP, threads: int = 4) -> None:
        executable = VENVS[flavour()] / "bin" / "waitress-serve"
        if not executable.exists():
            pytest.fail(f"{executable} is missing (`make build`, `make .venv-waitress/.deps`)")
        self.log: IO[bytes] = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(
            [str(executable), "--listen=127.0.0.1:0", f"--threads={threads}", *options, app],
            cwd=ROOT,
            stdout=self.log,
            stderr=self.log,
        )
        self.pid = self.proc.pid
        self.port = self._wait_for_port()

    def _wait_for_port(self) -> int:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            match = re.search(rb"Serving on http://127\.0\.0\.1:(\d+)", self.log_text())
            if match:
                return int(match.group(1))
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        self.stop()
        raise AssertionError(f"server did not start: {self.log_text()[-2000:]!r}")

    def log_text(self) -> bytes:
        self.log.seek(0)
        return self.log.read()

    @property
    def address(self) -> tuple[str, int]:
        return ("127.0.0.1", self.port)

    def connect(self, timeout: float = 10) -> socket.socket:
        sock = socket.create_connection(self.address, timeout=timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock

    # /proc figures of the server process.
    def fds(self) -> int:
        return len(os.listdir(f"/proc/{self.pid}/fd"))

    def _status(self, field: str) -> int:
        with open(f"/proc/{self.pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
        raise AssertionError(f"no {field} in /proc/{self.pid}/status")

    def threads(self) -> int:
        return self._status("Threads")

    def rss(self) -> int:
        """Resident set size in bytes."""
        return self._status("VmRSS") * 1024

    def cpu_seconds(self) -> float:
        """User plus system CPU time consumed so far."""
        with open(f"/proc/{self.pid}/stat", encoding="ascii") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        # After the command name: state is field 3, utime 14 and stime 15 (1-based).
        ticks = int(fields[11]) + int(fields[12])
        return ticks / os.sysconf("SC_CLK_TCK")

    def settle_fds(self, target: int, slack: int, seconds: float = 10) -> int:
        """The open-file count once it is within ``slack`` of ``target`` (or the last one
        seen after ``seconds``): closing sockets takes the I/O thread a moment."""
        deadline = time.monotonic() + seconds
        while True:
            count = self.fds()
            if abs(count - target) <= slack or time.monotonic() > deadline:
                return count
            time.sleep(0.05)

    def stop(self) -> None:
        terminate(self.proc, 15)
        self.log.close()


def rst_close(sock: socket.socket) -> None:
    """Close with SO_LINGER 0: the kernel sends RST instead of FIN."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def read_until_eof(sock: socket.socket, limit: int = 64 * MIB) -> bytes:
    data = bytearray()
    while len(data) < limit:
        try:
            chunk = sock.recv(1 << 20)
        except ConnectionResetError:
            break
        if not chunk:
            break
        data += chunk
    return bytes(data)


def read_until_close(sock: socket.socket, idle: float = 3) -> tuple[bytes, bool]:
    """What arrives until the server closes (True) or sends nothing for ``idle`` seconds
    (False: the connection was left open)."""
    sock.settimeout(idle)
    data = bytearray()
    while True:
        try:
            chunk = sock.recv(1 << 20)
        except ConnectionResetError:
            return bytes(data), True
        except socket.timeout:
            return bytes(data), False
        if not chunk:
            return bytes(data), True
        data += chunk


def split_responses(data: bytes) -> list[tuple[int, dict[bytes, bytes], bytes]]:
    """Parse back-to-back Content-Length-framed responses (what these apps send)."""
    responses = []
    while data:
        head, sep, rest = data.partition(b"\r\n\r\n")
        assert sep, f"incomplete head: {data[:200]!r}"
        lines = head.split(b"\r\n")
        status = int(lines[0].split()[1])
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(b": ")
            headers[name.lower()] = value
        length = int(headers.get(b"content-length", b"0"))
        responses.append((status, headers, rest[:length]))
        data = rest[length:]
    return responses


def read_response(sock: socket.socket, buf: bytes = b"") -> Optional[tuple[int, bytes, bytes]]:
    """One Content-Length-framed response: (status, head, body); the leftover is dropped.
    None if the connection ended before a complete head."""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            return None
        buf += chunk
    head, _, body = buf.partition(b"\r\n\r\n")
    match = re.search(rb"\r\ncontent-length: *(\d+)", head, re.IGNORECASE)
    length = int(match.group(1)) if match else 0
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return int(head.split()[1]), head, body[:length]
