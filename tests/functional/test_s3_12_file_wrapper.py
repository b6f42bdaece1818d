"""SPEC §3.12 wsgi.file_wrapper over real sockets: the bytes on the wire, the Content-Length
rules, non-seekable files, keep-alive, and sendfile(2) for a regular file."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator
from urllib.parse import quote

import pytest

from tests.apps.file_app import app
from tests.functional.serving import Running, parse_responses, read_all

ROOT = Path(__file__).resolve().parents[2]
SIZE = 300_001


@pytest.fixture(scope="module")
def data_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("files") / "data.bin"
    path.write_bytes(bytes((n * 31 + n // 256) % 256 for n in range(SIZE)))
    return path


@pytest.fixture(scope="module")
def running() -> Iterator[Running]:
    server = Running(app)
    yield server
    server.stop()


def get(running: Running, query: str, version: str = "1.1") -> tuple[str, dict[str, str], bytes]:
    raw = f"GET /?{query} HTTP/{version}\r\nConnection: close\r\n\r\n".encode()
    (response,) = parse_responses(running.exchange(raw))
    return response.status, response.headers, response.body


@pytest.mark.parametrize("version", ["1.0", "1.1"])
def test_seekable_file_without_content_length_gets_one(
    running: Running, data_file: Path, version: str
) -> None:
    status, headers, body = get(running, f"path={quote(str(data_file))}", version)
    assert status == f"HTTP/{version} 200 OK"
    assert headers["content-length"] == str(SIZE)
    assert body == data_file.read_bytes()


def test_seekable_file_with_its_content_length(running: Running, data_file: Path) -> None:
    _, headers, body = get(running, f"path={quote(str(data_file))}&cl={SIZE}")
    assert headers["content-length"] == str(SIZE)
    assert body == data_file.read_bytes()


def test_short_content_length_truncates_the_file(running: Running, data_file: Path) -> None:
    _, headers, body = get(running, f"path={quote(str(data_file))}&cl=1")
    assert headers["content-length"] == "1"
    assert body == data_file.read_bytes()[:1]


def test_long_content_length_is_replaced_by_the_file_size(
    running: Running, data_file: Path
) -> None:
    _, headers, body = get(running, f"path={quote(str(data_file))}&cl={SIZE + 1000}")
    assert headers["content-length"] == str(SIZE)
    assert body == data_file.read_bytes()


def test_the_file_is_sent_from_its_current_position(running: Running, data_file: Path) -> None:
    _, headers, body = get(running, f"path={quote(str(data_file))}&skip=1000")
    assert headers["content-length"] == str(SIZE - 1000)
    assert body == data_file.read_bytes()[1000:]


@pytest.mark.parametrize("kind", ["nonseekable", "readonly"])
def test_non_seekable_files_are_iterated_chunked_on_1_1(
    running: Running, data_file: Path, kind: str
) -> None:
    _, headers, body = get(running, f"path={quote(str(data_file))}&kind={kind}")
    assert headers.get("transfer-encoding") == "chunked"
    assert "content-length" not in headers
    assert body == data_file.read_bytes()


def test_non_seekable_file_on_1_0_is_close_delimited(running: Running, data_file: Path) -> None:
    status, headers, body = get(running, f"path={quote(str(data_file))}&kind=nonseekable", "1.0")
    assert status == "HTTP/1.0 200 OK"
    assert "content-length" not in headers and "transfer-encoding" not in headers
    assert body == data_file.read_bytes()


def test_connection_kept_alive_across_two_file_responses(running: Running, data_file: Path) -> None:
    path = quote(str(data_file))
    raw = (
        f"GET /?path={path}&cl=10 HTTP/1.1\r\n\r\n"
        f"GET /?path={path} HTTP/1.1\r\nConnection: close\r\n\r\n"
    ).encode()
    first, second = parse_responses(running.exchange(raw))
    assert first.body == data_file.read_bytes()[:10]
    assert second.body == data_file.read_bytes()


def test_a_file_response_is_not_held_back_by_the_cork(running: Running, data_file: Path) -> None:
    """The socket is corked while a file goes out (whole segments, as nginx's tcp_nopush)
    and uncorked when it is sent: a corked socket would keep a short response's last
    segment for 200 ms. Each of five small file responses on one connection arrives well
    inside that."""
    path = quote(str(data_file))
    with running.connect() as sock:
        sock.settimeout(5)
        for _ in range(5):
            started = time.monotonic()
            sock.sendall(f"GET /?path={path}&cl=1001 HTTP/1.1\r\n\r\n".encode())
            received = b""
            while not received.endswith(data_file.read_bytes()[:1001]):
                chunk = sock.recv(65536)
                assert chunk, "the connection closed"
                received += chunk
            elapsed = time.monotonic() - started
            assert elapsed < 0.15, f"a 1,001-byte file response took {elapsed * 1000:.0f} ms"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_a_regular_file_goes_out_with_sendfile(tmp_path: Path, data_file: Path) -> None:
    strace = shutil.which("strace")
    assert strace, "make sysdeps installs strace"
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(4 * 1024 * 1024))
    port = free_port()
    log = tmp_path / "strace.log"
    command = [strace, "-f", "-qq", "-e", "trace=sendfile", "-o", str(log), sys.executable]
    command += ["-m", "waitress", f"--listen=127.0.0.1:{port}", "tests.apps.file_app:app"]
    server = subprocess.Popen(
        command,
        start_new_session=True,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                sock = socket.create_connection(("127.0.0.1", port), timeout=10)
                break
            except OSError:
                assert time.monotonic() < deadline, "server did not start"
                time.sleep(0.1)
        with sock:
            sock.sendall(f"GET /?path={quote(str(big))} HTTP/1.0\r\n\r\n".encode())
            (response,) = parse_responses(read_all(sock))
        assert response.body == big.read_bytes()
    finally:
        os.killpg(server.pid, signal.SIGTERM)  # the server, traced by strace
        server.wait(30)
    sent = 0
    for line in log.read_text().splitlines():
        if "sendfile(" in line and "= " in line:
            result = line.rsplit("= ", 1)[1].split()[0]
            sent += int(result) if result.isdigit() else 0
    assert sent == big.stat().st_size, log.read_text()[-2000:]
