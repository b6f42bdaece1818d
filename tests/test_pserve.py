"""Pyramid's ``pserve`` serving an ini file whose server is ``egg:waitress-rs#main``
(SPEC §A6): the command a Pyramid project runs, unchanged but for the egg name."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from tests.apps import hello_app

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_pserve_serves_an_ini_file(tmp_path: Path) -> None:
    port = free_port()
    ini = tmp_path / "development.ini"
    ini.write_text(
        "[app:main]\n"
        "use = call:tests.apps.hello_app:make_app\n\n"
        "[server:main]\n"
        "use = egg:waitress-rs#main\n"
        f"listen = 127.0.0.1:{port}\n"
    )
    pserve = Path(sys.executable).with_name("pserve")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([str(pserve), str(ini)], cwd=ROOT, env=env)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
                    sock.sendall(b"GET /pyramid HTTP/1.0\r\n\r\n")
                    data = b""
                    while chunk := sock.recv(65536):
                        data += chunk
                break
            except OSError:
                assert proc.poll() is None, "pserve exited early"
                assert time.monotonic() < deadline, "pserve never listened"
                time.sleep(0.1)
        assert data.startswith(b"HTTP/1.0 200 OK")
        assert data.endswith(hello_app.BODY)
        assert b"X-Path: /pyramid" in data
        proc.send_signal(signal.SIGINT)
        assert proc.wait(15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
