"""Shared pieces of the reliability tests: start waitress-rs or waitress 3.0.2 as a
``waitress-serve`` subprocess on 127.0.0.1, plain-socket HTTP helpers, and a steady client that
measures latency while something else is going on."""

from __future__ import annotations

import json
import math
import os
import re
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Any, Optional

ROOT = Path(__file__).resolve().parents[2]
EXECUTABLES = {
    # RELIABILITY_OURS_SERVE: another build of ours, e.g. a release wheel in its own venv
    "ours": Path(
        os.environ.get("RELIABILITY_OURS_SERVE", ROOT / ".venv" / "bin" / "waitress-serve")
    ),
    "theirs": ROOT / ".venv-waitress" / "bin" / "waitress-serve",
}
APP = "tests.apps.reliability_app:app"


def terminate(proc: subprocess.Popen[Any], wait: float = 10) -> None:
    """SIGTERM a process we started, SIGKILL it if it has not exited after ``wait`` s."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(wait)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


class Server:
    """``waitress-serve`` in a subprocess; its stderr (the log) is kept in ``self.log``."""

    def __init__(self, which: str = "ours", *options: str, app: str = APP) -> None:
        # "ours", "theirs", or the path of another waitress-serve (e.g. a release build's)
        executable = EXECUTABLES[which] if which in EXECUTABLES else Path(which)
        if not executable.exists():
            raise RuntimeError(f"{executable} is missing (make build / make .venv-waitress/.deps)")
        self.proc = subprocess.Popen(
            [str(executable), "--listen=127.0.0.1:0", *options, app],
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.log: list[str] = []
        assert self.proc.stderr is not None
        deadline = time.monotonic() + 30
        port: Optional[int] = None
        while port is None:
            line = self.proc.stderr.readline()
            if not line or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"{which} did not start: {''.join(self.log)}")
            self.log.append(line)
            match = re.search(r"Serving on http://127\.0\.0\.1:(\d+)", line)
            if match:
                port = int(match.group(1))
        self.port = port
        self._reader = threading.Thread(target=self._read_log, daemon=True)
        self._reader.start()

    def _read_log(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.log.append(line)

    def json(self, target: str) -> Any:
        """GET ``target`` straight from the server and decode the JSON answer."""
        status, _, body = request(self.port, f"GET {target} HTTP/1.0\r\n\r\n".encode())
        assert status == 200, (status, body)
        return json.loads(body)

    def stop(self) -> None:
        terminate(self.proc)
        self._close_pipe()

    def _close_pipe(self) -> None:
        if self.proc.stderr is not None:
            reader = getattr(self, "_reader", None)
            if reader is not None:
                reader.join(5)
            self.proc.stderr.close()


def read_response(
    sock: socket.socket, buf: bytes = b""
) -> tuple[int, dict[str, str], bytes, bytes]:
    """Read one response (Content-Length, chunked or close-delimited) from ``sock``.

    Returns (status, headers with lower-case names, body, bytes read past it). Raises
    ``EOFError`` when the connection closes before a whole response arrived.
    """

    def fill() -> bool:
        nonlocal buf
        data = sock.recv(1 << 20)
        buf += data
        return bool(data)

    while b"\r\n\r\n" not in buf:
        if not fill():
            raise EOFError(buf)
    head, buf = buf.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if "content-length" in headers:
        length = int(headers["content-length"])
        while len(buf) < length:
            if not fill():
                raise EOFError(buf)
        return status, headers, buf[:length], buf[length:]
    if headers.get("transfer-encoding", "").lower() == "chunked":
        body = b""
        while True:
            while b"\r\n" not in buf:
                if not fill():
                    raise EOFError(buf)
            size_line, buf = buf.split(b"\r\n", 1)
            size = int(size_line.split(b";")[0], 16)
            while len(buf) < size + 2:
                if not fill():
                    raise EOFError(buf)
            body += buf[:size]
            buf = buf[size + 2 :]
            if size == 0:
                while not buf.startswith(b"\r\n"):  # trailers, if any
                    if b"\r\n\r\n" in buf:
                        buf = buf.split(b"\r\n\r\n", 1)[1]
                        break
                    if not fill():
                        break
                else:
                    buf = buf[2:]
                return status, headers, body, buf
    if status in (204, 304) or status < 200:
        return status, headers, b"", buf
    while fill():
        pass
    return status, headers, buf, b""


def request(port: int, raw: bytes, timeout: float = 10.0) -> tuple[int, dict[str, str], bytes]:
    """One request on a fresh connection to 127.0.0.1:``port``."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(raw)
        status, headers, body, _ = read_response(sock)
        return status, headers, body


class SteadyClient:
    """Sends ``GET /steady/N`` on a fresh connection ``rate`` times a second and keeps each
    latency (seconds) or error. Open loop: each request leaves on schedule in its own thread,
    whether or not the earlier ones were answered, so a stall shows in every request it
    delays (a client that waits for each answer would send, and count, only one).
    ``stop()`` ends it; ``percentile()``, ``p99()`` and ``errors`` report."""

    def __init__(self, port: int, rate: float = 10.0, timeout: float = 5.0) -> None:
        self.port = port
        self.interval = 1.0 / rate
        self.timeout = timeout
        self.latencies: list[float] = []
        self.errors: list[str] = []
        self.successes: list[float] = []  # monotonic time each successful answer arrived
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._requests: list[threading.Thread] = []
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _one(self, n: int) -> None:
        start = time.monotonic()
        try:
            raw = f"GET /steady/{n} HTTP/1.1\r\nHost: steady\r\nConnection: close\r\n\r\n"
            status, _, body = request(self.port, raw.encode(), timeout=self.timeout)
            if status != 200 or f"/steady/{n}".encode() not in body:
                problem: Optional[str] = f"request {n}: status {status} body {body[:80]!r}"
            else:
                problem = None
        except (OSError, EOFError) as exc:
            problem = f"request {n}: {exc!r}"
        now = time.monotonic()
        with self._lock:
            if problem:
                self.errors.append(problem)
            else:
                self.latencies.append(now - start)
                self.successes.append(now)

    def _run(self) -> None:
        next_at = time.monotonic()
        n = 0
        while not self._stop.is_set():
            n += 1
            thread = threading.Thread(target=self._one, args=(n,), daemon=True)
            thread.start()
            self._requests.append(thread)
            next_at += self.interval
            self._stop.wait(max(0.0, next_at - time.monotonic()))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        for thread in self._requests:
            thread.join(self.timeout + 5)

    def percentile(self, q: float) -> float:
        """Nearest-rank percentile of the latencies, in seconds (inf when none)."""
        if not self.latencies:
            return float("inf")
        ordered = sorted(self.latencies)
        return ordered[max(0, min(len(ordered) - 1, math.ceil(len(ordered) * q) - 1))]

    def p99(self) -> float:
        return self.percentile(0.99)


def free_port() -> int:
    """A port that was free on 127.0.0.1 a moment ago (for the proxies' listeners)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port
