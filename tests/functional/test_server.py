"""serve()/create_server() end to end over real sockets (SPEC §1.3, §3)."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

from tests.apps.functional_apps import echo
from tests.functional.serving import Running, body_of, read_all
from tests.security.vectors import OK, VECTORS
from waitress.server import BaseWSGIServer, MultiSocketServer, create_server

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def running() -> Iterator[Running]:
    server = Running()
    yield server
    server.stop()


def test_environ_keys_and_values(running: Running) -> None:
    raw = (
        b"POST /env?x=%20 HTTP/1.1\r\nHost: example.com:81\r\nX-Foo: a\r\nX-Foo: b\r\n"
        b"Content-Type: text/x\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc"
    )
    env = json.loads(body_of(running.exchange(raw)))
    assert env["REQUEST_METHOD"] == "POST"
    assert env["PATH_INFO"] == "/env"
    assert env["QUERY_STRING"] == "x=%20"
    assert env["REQUEST_URI"] == "/env?x=%20"
    assert env["SERVER_PROTOCOL"] == "HTTP/1.1"
    assert env["SERVER_NAME"] == "waitress.invalid"
    assert env["SERVER_PORT"] == str(running.server.effective_port)
    assert env["SERVER_SOFTWARE"] == "waitress"
    assert env["REMOTE_ADDR"] == env["REMOTE_HOST"] == "127.0.0.1"
    assert env["REMOTE_PORT"].isdigit()
    assert env["HTTP_HOST"] == "example.com:81"
    assert env["HTTP_X_FOO"] == "a, b"
    assert env["CONTENT_TYPE"] == "text/x"
    assert env["CONTENT_LENGTH"] == "3"
    assert env["wsgi.input.read"] == "abc"
    assert env["wsgi.url_scheme"] == "http"
    assert env["wsgi.multithread"] is True and env["wsgi.input_terminated"] is True


def test_keep_alive_http11_and_close_http10(running: Running) -> None:
    with running.connect() as sock:
        sock.sendall(b"POST /echo HTTP/1.1\r\nContent-Length: 2\r\n\r\nhi")
        first = sock.recv(65536)
        assert first.startswith(b"HTTP/1.1 200 OK") and first.endswith(b"hi")
        sock.sendall(b"GET /echo HTTP/1.0\r\n\r\n")
        rest = read_all(sock)
    assert rest.startswith(b"HTTP/1.0 200 OK") and b"Connection: close" in rest


def test_chunked_upload_spilled_to_a_temp_file() -> None:
    server = Running(inbuf_overflow=1000)
    try:
        payload = os.urandom(300_000)
        chunks = b"".join(
            b"%x\r\n%s\r\n" % (len(payload[i : i + 7000]), payload[i : i + 7000])
            for i in range(0, len(payload), 7000)
        )
        raw = (
            b"POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
            + chunks
            + b"0\r\n\r\n"
        )
        response = server.exchange(raw)
        assert body_of(response) == payload
    finally:
        server.stop()


def test_app_exception_is_500_and_logged(
    running: Running, caplog: pytest.LogCaptureFixture
) -> None:
    response = running.exchange(b"GET /raise HTTP/1.1\r\n\r\n")
    assert response.startswith(b"HTTP/1.1 500 Internal Server Error\r\n")
    assert b"The server encountered an unexpected internal server error" in response
    assert b"boom" not in response
    assert any("Exception while serving /raise" in r.getMessage() for r in caplog.records)


def test_expose_tracebacks() -> None:
    server = Running(expose_tracebacks=True)
    try:
        response = server.exchange(b"GET /raise HTTP/1.1\r\n\r\n")
        assert b"RuntimeError: boom from the app" in response
    finally:
        server.stop()


def test_write_callable_and_file_wrapper(running: Running) -> None:
    response = running.exchange(b"GET /write HTTP/1.1\r\nConnection: close\r\n\r\n")
    assert body_of(response) == b"helloworld"
    response = running.exchange(b"GET /file HTTP/1.1\r\nConnection: close\r\n\r\n")
    source = (ROOT / "tests" / "apps" / "functional_apps.py").read_bytes()
    assert body_of(response) == source
    assert b"Content-Length: %d" % len(source) in response


def test_a_sleeping_request_does_not_block_another(running: Running) -> None:
    slow = threading.Thread(target=running.exchange, args=(b"GET /sleep?1.5 HTTP/1.0\r\n\r\n",))
    slow.start()
    time.sleep(0.1)
    started = time.monotonic()
    assert running.exchange(b"GET /echo HTTP/1.0\r\n\r\n").startswith(b"HTTP/1.0 200 OK")
    assert time.monotonic() - started < 1.0
    slow.join()


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


HOSTILE = [v for v in VECTORS if v[2] != OK and len(v[1]) < 2000]


@pytest.mark.parametrize(("vector_id", "raw", "expected"), HOSTILE, ids=[v[0] for v in HOSTILE])
def test_hostile_vector_over_a_socket(
    running: Running, vector_id: str, raw: bytes, expected: int
) -> None:
    response = running.exchange(raw + b"GET /smuggled HTTP/1.1\r\n\r\n")
    assert response.startswith(b"HTTP/1.") and response[9:12] == str(expected).encode()
    statuses = re.findall(rb"HTTP/1\.[01] \d{3} ", response)
    assert len(statuses) == 1, "one response, then the connection closed"


def test_sigterm_lets_in_flight_requests_finish() -> None:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "waitress",
            "--listen=127.0.0.1:0",
            "tests.apps.functional_apps:echo",
        ],
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


def test_fifty_concurrent_clients(running: Running) -> None:
    results: list[bytes] = []
    lock = threading.Lock()

    def client(n: int) -> None:
        body = b"client-%d" % n
        raw = b"POST /echo HTTP/1.0\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
        response = running.exchange(raw)
        with lock:
            results.append(body_of(response))

    threads = [threading.Thread(target=client, args=(n,)) for n in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(results) == sorted(b"client-%d" % n for n in range(50))


CLOSE = b"Connection: close\r\n"


@pytest.mark.parametrize(
    ("option", "limit", "make", "status"),
    [
        (
            "max_request_body_size",
            100,
            lambda n: (
                b"POST /echo HTTP/1.1\r\n" + CLOSE + b"Content-Length: %d\r\n\r\n" % n + b"x" * n
            ),
            b"413",
        ),
        (
            "max_request_line",
            100,
            lambda n: b"GET /" + b"a" * (n - 16) + b" HTTP/1.1\r\n" + CLOSE + b"\r\n",
            b"414",
        ),
        (
            "max_request_header_size",
            200,
            # 16 (request line) + 19 (Connection) + 3 + k + 4 (CRLF, CRLF) = n bytes.
            lambda n: b"GET / HTTP/1.1\r\n" + CLOSE + b"X: " + b"a" * (n - 42) + b"\r\n\r\n",
            b"431",
        ),
    ],
    ids=["body", "request-line", "head"],
)
def test_limits_over_a_socket_at_n_minus_1_n_n_plus_1(
    option: str, limit: int, make: Any, status: bytes
) -> None:
    server = Running(**{option: limit})
    try:
        answers = {}
        for size in (limit - 1, limit, limit + 1):
            answers[size] = server.exchange(make(size))[9:12]
        # Body: a length of N-1 passes, N and N+1 do not (waitress's >=). Request line: N
        # bytes with its CRLF pass, N+1 do not. Head: N-1 bytes pass, N do not.
        passes = {
            "max_request_body_size": {limit - 1},
            "max_request_line": {limit - 1, limit},
            "max_request_header_size": {limit - 1},
        }[option]
        for size, answer in answers.items():
            # The fixture app answers 404 outside its routes: what matters is that it ran.
            expected = (
                (b"200" if option == "max_request_body_size" else b"404")
                if size in passes
                else status
            )
            assert answer == expected, (size, answer)
    finally:
        server.stop()


def test_task_queue_depth_warning(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("WARNING", logger="waitress.queue")
    server = Running(threads=1)
    try:
        clients = [
            threading.Thread(target=server.exchange, args=(b"GET /sleep?0.4 HTTP/1.0\r\n\r\n",))
            for _ in range(3)
        ]
        for client in clients:
            client.start()
            time.sleep(0.05)
        for client in clients:
            client.join(10)
        time.sleep(0.3)  # records are emitted by the serving thread every 100 ms
    finally:
        server.stop()
    depths = [r.getMessage() for r in caplog.records if r.name == "waitress.queue"]
    assert depths == ["Task queue depth is 1", "Task queue depth is 2"]


def test_channel_timeout_closes_an_idle_connection() -> None:
    server = Running(channel_timeout=1)
    try:
        with server.connect() as sock:
            sock.sendall(b"GET /echo HTTP/1.1\r\n\r\n")
            first = sock.recv(65536)
            assert first.startswith(b"HTTP/1.1 200 OK")
            started = time.monotonic()
            assert sock.recv(65536) == b"", "closed without a response"
            waited = time.monotonic() - started
        assert 0.5 < waited < 3.0, waited
    finally:
        server.stop()


def test_soft_open_file_limit_is_raised_to_the_hard_limit(running: Running) -> None:
    import resource

    assert running.exchange(b"GET /echo HTTP/1.0\r\n\r\n").startswith(b"HTTP/1.0 200")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert soft == hard or hard == resource.RLIM_INFINITY


@pytest.mark.parametrize("lookahead", [0, 5])
def test_client_disconnected_is_seen_only_with_lookahead(lookahead: int) -> None:
    from tests.apps import functional_apps

    functional_apps.WATCHED.clear()
    server = Running(channel_request_lookahead=lookahead)
    try:
        with server.connect() as sock:
            sock.sendall(b"GET /watch HTTP/1.1\r\n\r\n")
            time.sleep(0.2)
        deadline = time.monotonic() + 5
        while not functional_apps.WATCHED and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        server.stop()
    # SPEC §3.13: EOF is only observed while the connection is reading, i.e. during a
    # request only when channel_request_lookahead > 0.
    assert functional_apps.WATCHED == [lookahead > 0]


def test_connection_limit_pauses_accepting(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("INFO", logger="waitress")
    server = Running(connection_limit=2)
    try:
        first, second = server.connect(), server.connect()
        for sock in (first, second):  # both accepted and served
            sock.sendall(b"GET /echo HTTP/1.1\r\n\r\n")
            assert sock.recv(65536).startswith(b"HTTP/1.1 200 OK")
        third = server.connect()  # completes in the kernel backlog, not accepted
        third.sendall(b"GET /echo HTTP/1.0\r\n\r\n")
        third.settimeout(0.5)
        with pytest.raises(socket.timeout):
            third.recv(65536)
        first.close()  # a slot frees: the third is accepted and answered
        third.settimeout(5)
        assert read_all(third).startswith(b"HTTP/1.0 200 OK")
        second.close()
        third.close()
        time.sleep(0.3)  # records are emitted by the serving thread every 100 ms
    finally:
        server.stop()
    messages = [r.getMessage() for r in caplog.records if r.name == "waitress"]
    assert any("reached the connection limit" in m for m in messages)
    assert any("dropped below the connection limit" in m for m in messages)


def _open_output_spill_files() -> int:
    """Descriptors of this process open on a (deleted) response spill file."""
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            count += "waitress-out-" in os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            pass
    return count


def test_outbuf_high_watermark_bounds_output_and_outbuf_overflow_spills() -> None:
    from tests.apps import functional_apps

    functional_apps.FLOODED[0] = 0
    watermark = 4 * 1024 * 1024
    server = Running(outbuf_high_watermark=watermark, outbuf_overflow=256 * 1024)
    try:
        with server.connect() as sock:
            sock.sendall(b"GET /flood HTTP/1.0\r\n\r\n")
            time.sleep(1.0)
            stalled_at = functional_apps.FLOODED[0]
            # The worker is parked once more than the watermark is pending: at most the
            # watermark, one 64 KiB write and the kernel's socket buffers (a few MiB on
            # loopback) are in flight, far below the 50 MiB the app offers.
            assert stalled_at < watermark + 8 * 1024 * 1024, stalled_at
            assert _open_output_spill_files() > 0, "pending output past outbuf_overflow"
            received = len(read_all(sock))
        assert received > 50 * 1024 * 1024
        assert functional_apps.FLOODED[0] == 800 * 65536
        assert _open_output_spill_files() == 0, "spill files go once the output is written"
    finally:
        server.stop()
