"""Instructions per hello request on the server side, counted by callgrind.

Runs ``waitress-serve`` (threads=1) under ``valgrind --tool=callgrind`` twice: once
answering WARMUP requests, once WARMUP + N; the difference divided by N is the cost of one
keep-alive hello request in the whole server process (I/O thread, worker, Python app).
Instruction counts do not depend on what else the machine is doing, so one run shows a
regression. Usage: python tools/hello_instructions.py [N] (the venv's python: the build
in that venv is what is measured; use a release build for figures worth recording).
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REQUEST = b"GET /plaintext HTTP/1.1\r\nHost: localhost\r\nUser-Agent: wrk\r\nAccept: */*\r\n\r\n"
WARMUP = 50


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(out_file: str, stderr: int) -> tuple[subprocess.Popen[str], socket.socket]:
    """``waitress-serve`` (threads=1) under callgrind writing to `out_file`, and a
    connection to it once it listens."""
    port = free_port()
    command = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out_file}"]
    command += [sys.executable, "-m", "waitress", f"--listen=127.0.0.1:{port}", "--threads=1"]
    command += ["tests.apps.hello_app:app"]
    proc = subprocess.Popen(command, cwd=ROOT, stderr=stderr, text=True, start_new_session=True)
    deadline = time.monotonic() + 300
    while True:
        try:
            return proc, socket.create_connection(("127.0.0.1", port), timeout=60)
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                os.killpg(proc.pid, signal.SIGKILL)
                raise SystemExit("the server did not start under valgrind") from None
            time.sleep(0.2)


def ask(sock: socket.socket, requests: int) -> None:
    """`requests` keep-alive hello requests on `sock`, each answer read whole."""
    for _ in range(requests):
        sock.sendall(REQUEST)
        got = b""
        while not got.endswith(b"hello from waitress-rs"):
            piece = sock.recv(65536)
            if not piece:
                raise SystemExit(f"connection closed early: {got!r}")
            got += piece


def count(requests: int) -> int:
    proc, sock = start_server("/dev/null", subprocess.PIPE)
    try:
        with sock:
            ask(sock, requests)
        os.killpg(proc.pid, signal.SIGTERM)
        _, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    match = re.search(r"Collected : (\d+)", err)
    if match is None:
        raise SystemExit(f"no callgrind total in:\n{err[-2000:]}")
    return int(match.group(1))


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    base = count(WARMUP)
    total = count(WARMUP + n)
    print(f"hello: {(total - base) // n} instructions per keep-alive request (server process)")


if __name__ == "__main__":
    main()
