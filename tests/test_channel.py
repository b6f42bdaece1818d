"""Tests for waitress.channel.HTTPChannel over real socketpairs and real worker threads
(SPEC §1.11, §3.1, §3.6, §3.7, §3.11, §3.13, §3.14, D5, B1 row 21).

A test thread plays the server's I/O loop (select, then ``handle_read``/``handle_write``,
as an asyncore loop drives a dispatcher), a ``ThreadedTaskDispatcher`` runs the requests,
and the test itself is the client on the other end of the socketpair.
"""

from __future__ import annotations

import errno
import io
import logging
import select
import socket
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional

import pytest

from waitress.adjustments import Adjustments
from waitress.buffers import OverflowableBuffer, ReadOnlyFileBasedBuffer
from waitress.channel import ClientDisconnected, HTTPChannel
from waitress.parser import HTTPRequestParser
from waitress.task import ErrorTask, ThreadedTaskDispatcher, WSGITask

App = Callable[[Dict[str, Any], Callable[..., Any]], Iterable[bytes]]

CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


def echo_app(environ: Dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    """Answers with the path and the request body, with a Content-Length."""
    body = environ["PATH_INFO"].encode("latin-1") + b":" + environ["wsgi.input"].read()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


class Server:
    """What a channel needs from its server, with a real worker pool and counters."""

    def __init__(self, app: App, threads: int, adj: Adjustments) -> None:
        self.application = app
        self.adj = adj
        self.effective_port = "8080"
        self.server_name = "waitress.invalid"
        self.active_channels: Dict[int, HTTPChannel] = {}
        self.dispatcher = ThreadedTaskDispatcher()
        self.dispatcher.set_thread_count(threads)
        self.add_task_calls = 0
        self.triggers = 0

    def add_task(self, task: HTTPChannel) -> None:
        self.add_task_calls += 1
        self.dispatcher.add_task(task)

    def pull_trigger(self) -> None:
        self.triggers += 1


class IOLoop(threading.Thread):
    """The I/O side for one channel: waits for readiness and calls the handlers."""

    def __init__(self, channel: HTTPChannel) -> None:
        super().__init__(name="test-io-loop", daemon=True)
        self.channel = channel
        self.stopped = threading.Event()

    def run(self) -> None:
        channel = self.channel
        while not self.stopped.is_set() and channel.socket.fileno() != -1:
            readers = [channel.socket] if channel.readable() else []
            writers = [channel.socket] if channel.writable() else []
            if not readers and not writers:
                time.sleep(0.002)
                continue
            try:
                ready_r, ready_w, _ = select.select(readers, writers, [], 0.01)
            except (OSError, ValueError):
                return  # closed under us
            if ready_r:
                channel.handle_read()
            if ready_w and channel.socket.fileno() != -1:
                channel.handle_write()


@dataclass
class Response:
    status: str
    headers: Dict[str, str]
    body: bytes


class Client:
    """The peer: sends bytes and reads HTTP/1.x responses off a shared buffer."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        sock.settimeout(5)
        self.buf = b""

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _fill(self) -> None:
        data = self.sock.recv(65536)
        if not data:
            raise EOFError("connection closed")
        self.buf += data

    def read_exactly(self, n: int) -> bytes:
        while len(self.buf) < n:
            self._fill()
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def read_line(self) -> bytes:
        while b"\r\n" not in self.buf:
            self._fill()
        line, _, self.buf = self.buf.partition(b"\r\n")
        return line

    def read_response(self, head_only: bool = False) -> Response:
        status = self.read_line().decode("latin-1")
        headers: Dict[str, str] = {}
        while True:
            line = self.read_line().decode("latin-1")
            if not line:
                break
            name, _, value = line.partition(": ")
            headers[name] = value
        if head_only or status.split()[1] in ("100", "204", "304"):
            body = b""
        elif "Content-Length" in headers:
            body = self.read_exactly(int(headers["Content-Length"]))
        elif headers.get("Transfer-Encoding") == "chunked":
            body = b""
            while True:
                size = int(self.read_line(), 16)
                if size == 0:
                    assert self.read_line() == b""
                    break
                body += self.read_exactly(size)
                assert self.read_exactly(2) == b"\r\n"
        else:
            body = self.read_rest()
        return Response(status, headers, body)

    def read_rest(self) -> bytes:
        while True:
            try:
                self._fill()
            except EOFError:
                break
        data, self.buf = self.buf, b""
        return data

    def at_eof(self) -> bool:
        """True if the server closed the connection with nothing more to read."""
        if self.buf:
            return False
        try:
            return self.sock.recv(1) == b""
        except ConnectionResetError:
            return True

    def nothing_within(self, seconds: float) -> bool:
        """True if no byte arrives within ``seconds`` (the connection stays open)."""
        if self.buf:
            return False
        ready, _, _ = select.select([self.sock], [], [], seconds)
        return not ready


@dataclass
class Conn:
    client: Client
    channel: HTTPChannel
    server: Server
    loop: Optional[IOLoop]


@pytest.fixture
def connect() -> Iterator[Callable[..., Conn]]:
    made: List[Conn] = []

    def make(app: App = echo_app, threads: int = 2, loop: bool = True, **kw: Any) -> Conn:
        adj = Adjustments(**kw)
        server = Server(app, threads, adj)
        ours, theirs = socket.socketpair()
        channel = HTTPChannel(server, ours, ("127.0.0.1", 43210), adj)
        io_loop = IOLoop(channel) if loop else None
        if io_loop is not None:
            io_loop.start()
        conn = Conn(Client(theirs), channel, server, io_loop)
        made.append(conn)
        return conn

    yield make
    for conn in made:
        if conn.loop is not None:
            conn.loop.stopped.set()
            conn.loop.join(5)
        conn.server.dispatcher.shutdown(timeout=2)
        conn.client.sock.close()
        if conn.channel.socket.fileno() != -1:
            conn.channel.socket.close()


def wait_for(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.005)


# --- construction and class attributes ------------------------------------------------------


def test_class_attributes() -> None:
    assert HTTPChannel.task_class is WSGITask
    assert HTTPChannel.error_task_class is ErrorTask
    assert HTTPChannel.parser_class is HTTPRequestParser


def test_initial_state(connect: Callable[..., Conn]) -> None:
    before = time.time()
    conn = connect(loop=False, threads=0)
    channel = conn.channel
    assert channel.server is conn.server
    assert channel.adj is conn.server.adj
    assert channel.addr == ("127.0.0.1", 43210)
    assert channel.requests == []
    assert channel.request is None
    assert len(channel.outbufs) == 1 and isinstance(channel.outbufs[0], OverflowableBuffer)
    assert channel.total_outbufs_len == 0
    assert channel.current_outbuf_count == 0
    assert channel.will_close is False
    assert channel.close_when_flushed is False
    assert channel.sent_continue is False
    assert channel.connected is True
    assert before <= channel.creation_time == channel.last_activity <= time.time()
    expected_sndbuf = channel.socket.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)
    assert channel.sendbuf_len == expected_sndbuf
    assert isinstance(channel.requests_lock, type(threading.Lock()))
    assert isinstance(channel.outbuf_lock, threading.Condition)
    assert channel.socket.gettimeout() == 0.0  # non-blocking
    assert conn.server.active_channels == {channel.fileno(): channel}


def test_registers_in_and_leaves_the_socket_map() -> None:
    adj = Adjustments()
    server = Server(echo_app, 0, adj)
    ours, theirs = socket.socketpair()
    socket_map: Dict[int, Any] = {}
    channel = HTTPChannel(server, ours, ("127.0.0.1", 1), adj, map=socket_map)
    assert socket_map == {ours.fileno(): channel}
    # webtest's StopableWSGIServer.shutdown: handle_close every map value until it is empty
    while socket_map:
        for value in list(socket_map.values()):
            value.handle_close()
    assert channel.connected is False
    assert server.active_channels == {}
    theirs.close()


# --- received(): parsing and queueing -------------------------------------------------------


def test_received_keeps_a_partial_request(connect: Callable[..., Conn]) -> None:
    channel = connect(loop=False, threads=0).channel
    assert channel.received(b"GET / HTTP/1.1\r\n") is True
    assert channel.request is not None
    assert channel.requests == []
    assert channel.received(b"\r\n") is True
    assert channel.request is None
    assert len(channel.requests) == 1
    assert channel.requests[0].path == "/"


def test_received_queues_the_channel_once_for_pipelined_requests(
    connect: Callable[..., Conn],
) -> None:
    conn = connect(loop=False, threads=0)
    conn.channel.received(b"GET /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\nGET /c HTTP/1.1\r\n\r\n")
    assert [r.path for r in conn.channel.requests] == ["/a", "/b", "/c"]
    assert conn.server.add_task_calls == 1
    assert list(conn.server.dispatcher.queue) == [conn.channel]


def test_received_stops_after_an_error(connect: Callable[..., Conn]) -> None:
    channel = connect(loop=False, threads=0).channel
    channel.received(b"GET / HTTP/1.1\r\nfoo : bar\r\n\r\nGET /x HTTP/1.1\r\n\r\n")
    assert len(channel.requests) == 1 and channel.requests[0].error is not None
    assert channel.request is None
    assert channel.received(b"GET /y HTTP/1.1\r\n\r\n") is False
    assert len(channel.requests) == 1


def test_received_stops_after_a_request_that_closes(connect: Callable[..., Conn]) -> None:
    channel = connect(loop=False, threads=0).channel
    channel.received(b"GET /a HTTP/1.1\r\nConnection: close\r\n\r\nGET /b HTTP/1.1\r\n\r\n")
    assert [r.path for r in channel.requests] == ["/a"]
    channel2 = connect(loop=False, threads=0).channel
    channel2.received(b"GET /a HTTP/1.0\r\n\r\nGET /b HTTP/1.0\r\n\r\n")
    assert [r.path for r in channel2.requests] == ["/a"]


@pytest.mark.parametrize("flag", ["will_close", "close_when_flushed"])
def test_received_refuses_data_once_closing(connect: Callable[..., Conn], flag: str) -> None:
    channel = connect(loop=False, threads=0).channel
    setattr(channel, flag, True)
    assert channel.received(b"GET / HTTP/1.1\r\n\r\n") is False
    assert channel.requests == []
    assert channel.request is None


# --- readable()/writable() ------------------------------------------------------------------


def test_readable_and_writable_rules(connect: Callable[..., Conn]) -> None:
    channel = connect(loop=False, threads=0).channel
    assert channel.readable() is True
    assert channel.writable() is False
    channel.received(b"GET / HTTP/1.1\r\n\r\n")
    assert channel.readable() is False  # one queued request > lookahead 0
    channel.requests.clear()
    channel.write_soon(b"pending")
    assert channel.readable() is False  # output pending
    assert channel.writable() is True
    channel.handle_write()
    assert channel.writable() is False
    assert channel.readable() is True
    channel.close_when_flushed = True
    assert channel.readable() is False
    assert channel.writable() is True


def test_lookahead_keeps_reading_while_requests_wait(connect: Callable[..., Conn]) -> None:
    channel = connect(loop=False, threads=0, channel_request_lookahead=2).channel
    channel.received(b"GET /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\n")
    assert channel.readable() is True
    channel.received(b"GET /c HTTP/1.1\r\n\r\n")
    assert channel.readable() is False


# --- serving --------------------------------------------------------------------------------


def test_one_request_is_answered_and_the_connection_kept(connect: Callable[..., Conn]) -> None:
    conn = connect()
    conn.client.send(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
    response = conn.client.read_response()
    assert response.status == "HTTP/1.1 200 OK"
    assert response.body == b"/hello:"
    assert response.headers["Server"] == "waitress"
    assert conn.client.nothing_within(0.1)
    conn.client.send(b"POST /again HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc")
    assert conn.client.read_response().body == b"/again:abc"
    assert conn.channel.connected is True


def test_25_pipelined_http10_keep_alive_requests_in_order(connect: Callable[..., Conn]) -> None:
    conn = connect()
    conn.client.send(
        b"".join(b"GET /%d HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n" % i for i in range(25))
    )
    for i in range(25):
        response = conn.client.read_response()
        assert response.status == "HTTP/1.0 200 OK"
        assert response.headers["Connection"] == "Keep-Alive"
        assert response.body == b"/%d:" % i
    assert conn.client.nothing_within(0.1)


def test_requests_on_one_channel_run_one_at_a_time(connect: Callable[..., Conn]) -> None:
    running = 0
    most = 0
    lock = threading.Lock()

    def app(environ: Dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        time.sleep(0.02)
        with lock:
            running -= 1
        return echo_app(environ, start_response)

    conn = connect(app, threads=4)
    conn.client.send(b"GET /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\nGET /c HTTP/1.1\r\n\r\n")
    assert [conn.client.read_response().body for _ in range(3)] == [b"/a:", b"/b:", b"/c:"]
    assert most == 1
    assert conn.server.add_task_calls == 3  # queued once, then re-queued per remaining request


def test_connection_close_answers_once_then_closes(connect: Callable[..., Conn]) -> None:
    calls: List[str] = []

    def app(environ: Dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        calls.append(environ["PATH_INFO"])
        return echo_app(environ, start_response)

    conn = connect(app)
    conn.client.send(b"GET /a HTTP/1.1\r\nConnection: close\r\n\r\nGET /b HTTP/1.1\r\n\r\n")
    response = conn.client.read_response()
    assert response.headers["Connection"] == "close"
    assert conn.client.at_eof()
    assert calls == ["/a"]


def test_a_response_that_closes_drops_the_queued_requests(connect: Callable[..., Conn]) -> None:
    calls: List[str] = []

    def app(environ: Dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        calls.append(environ["PATH_INFO"])
        start_response("200 OK", [])
        return [b"a", b"b"]  # no length on HTTP/1.1: chunked, then close (Q5)

    conn = connect(app)
    conn.client.send(b"GET /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\n")
    response = conn.client.read_response()
    assert response.headers["Transfer-Encoding"] == "chunked"
    assert response.body == b"ab"
    assert conn.client.at_eof()
    assert calls == ["/a"]
    assert conn.channel.requests == []


@pytest.mark.parametrize("lookahead", [0, 5])
def test_nothing_after_a_bad_request_is_processed(
    connect: Callable[..., Conn], lookahead: int
) -> None:
    """CVE-2024-49768: one response, then EOF; the smuggled request never runs."""
    calls: List[str] = []

    def app(environ: Dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        calls.append(environ["PATH_INFO"])
        return echo_app(environ, start_response)

    conn = connect(app, channel_request_lookahead=lookahead)
    conn.client.send(b"GET / HTTP/1.1\r\nfoo : bar\r\n\r\nGET /smuggled HTTP/1.1\r\n\r\n")
    response = conn.client.read_response()
    assert response.status.split()[1] == "400"
    assert response.headers["Connection"] == "close"
    assert conn.client.at_eof()
    assert calls == []


def test_bad_request_behind_a_running_one_with_lookahead(connect: Callable[..., Conn]) -> None:
    gate = threading.Event()
    calls: List[str] = []

    def app(environ: Dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        calls.append(environ["PATH_INFO"])
        gate.wait(5)
        return echo_app(environ, start_response)

    conn = connect(app, channel_request_lookahead=5)
    conn.client.send(b"GET /first HTTP/1.1\r\n\r\n")
    wait_for(lambda: calls == ["/first"])
    conn.client.send(b"GET / HTTP/1.1\r\nfoo : bar\r\n\r\nGET /smuggled HTTP/1.1\r\n\r\n")
    wait_for(lambda: len(conn.channel.requests) == 2)
    gate.set()
    assert conn.client.read_response().body == b"/first:"
    assert conn.client.read_response().status.split()[1] == "400"
    assert conn.client.at_eof()
    assert calls == ["/first"]


# --- Expect: 100-continue (SPEC §3.6, D5 Q1/Q2) ---------------------------------------------


def test_continue_is_sent_when_the_body_is_awaited(connect: Callable[..., Conn]) -> None:
    conn = connect()
    conn.client.send(b"POST /up HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n")
    assert conn.client.read_exactly(len(CONTINUE)) == CONTINUE
    conn.client.send(b"hello")
    assert conn.client.read_response().body == b"/up:hello"


def test_no_continue_when_the_body_came_with_the_head(connect: Callable[..., Conn]) -> None:
    conn = connect()
    conn.client.send(b"POST /up HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\nhello")
    response = conn.client.read_response()
    assert response.status == "HTTP/1.1 200 OK"
    assert response.body == b"/up:hello"


def test_no_continue_for_an_empty_body(connect: Callable[..., Conn]) -> None:
    conn = connect()
    conn.client.send(b"POST /up HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 0\r\n\r\n")
    response = conn.client.read_response()
    assert response.status == "HTTP/1.1 200 OK"
    assert response.body == b"/up:"


def test_no_continue_for_a_body_over_the_limit(connect: Callable[..., Conn]) -> None:
    conn = connect(max_request_body_size=100)
    conn.client.send(b"POST /up HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 1000\r\n\r\n")
    response = conn.client.read_response()
    assert response.status.split()[1:3] == ["413", "Request"]
    assert b"exceeds max_body of 100" in response.body
    assert conn.client.at_eof()


def test_no_continue_for_http10(connect: Callable[..., Conn]) -> None:
    conn = connect()
    conn.client.send(b"POST /up HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n")
    assert conn.client.nothing_within(0.2)
    conn.client.send(b"ok")
    response = conn.client.read_response()
    assert response.status == "HTTP/1.0 200 OK"
    assert response.body == b"/up:ok"


def test_continue_waits_for_earlier_responses(connect: Callable[..., Conn]) -> None:
    gate = threading.Event()

    def app(environ: Dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ["PATH_INFO"] == "/slow":
            gate.wait(5)
        return echo_app(environ, start_response)

    conn = connect(app, channel_request_lookahead=1)
    conn.client.send(b"GET /slow HTTP/1.1\r\n\r\n")
    wait_for(lambda: conn.channel.requests != [])
    conn.client.send(b"POST /up HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n")
    wait_for(lambda: conn.channel.request is not None)
    assert conn.client.nothing_within(0.1)
    gate.set()
    assert conn.client.read_response().body == b"/slow:"
    assert conn.client.read_exactly(len(CONTINUE)) == CONTINUE
    conn.client.send(b"ok")
    assert conn.client.read_response().body == b"/up:ok"


def test_send_continue_queues_the_exact_bytes(connect: Callable[..., Conn]) -> None:
    conn = connect(loop=False, threads=0)
    conn.channel.send_continue()
    assert conn.channel.sent_continue is True
    assert conn.channel.total_outbufs_len == len(CONTINUE)
    conn.channel.handle_write()
    assert conn.client.read_exactly(len(CONTINUE)) == CONTINUE


# --- application errors (SPEC §3.9, §3.11) --------------------------------------------------


def failing_app(environ: Dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    raise ValueError("app is broken")


def test_app_exception_before_the_head_gives_500(
    connect: Callable[..., Conn], caplog: pytest.LogCaptureFixture
) -> None:
    conn = connect(failing_app)
    with caplog.at_level(logging.ERROR, logger="waitress"):
        conn.client.send(b"GET /boom HTTP/1.1\r\n\r\n")
        response = conn.client.read_response()
        assert conn.client.at_eof()
    assert response.status == "HTTP/1.1 500 Internal Server Error"
    assert response.headers["Connection"] == "close"
    assert response.body == (
        b"Internal Server Error\r\n\r\nThe server encountered an unexpected internal "
        b"server error\r\n\r\n(generated by waitress)"
    )
    records = [r for r in caplog.records if r.getMessage() == "Exception while serving /boom"]
    assert len(records) == 1
    assert records[0].exc_info is not None and records[0].exc_info[0] is ValueError


def test_500_keeps_the_request_version(connect: Callable[..., Conn]) -> None:
    conn = connect(failing_app)
    conn.client.send(b"GET /boom HTTP/1.0\r\n\r\n")
    assert conn.client.read_response().status == "HTTP/1.0 500 Internal Server Error"


def test_expose_tracebacks(connect: Callable[..., Conn]) -> None:
    conn = connect(failing_app, expose_tracebacks=True)
    conn.client.send(b"GET /boom HTTP/1.1\r\n\r\n")
    body = conn.client.read_response().body
    assert b"Traceback (most recent call last)" in body
    assert b"ValueError: app is broken" in body


def test_app_exception_after_the_head_truncates_and_closes(
    connect: Callable[..., Conn], caplog: pytest.LogCaptureFixture
) -> None:
    def app(environ: Dict[str, Any], start_response: Callable[..., Any]) -> Iterator[bytes]:
        start_response("200 OK", [("Content-Length", "10")])
        yield b"12345"
        raise ValueError("late")

    conn = connect(app)
    with caplog.at_level(logging.ERROR, logger="waitress"):
        conn.client.send(b"GET /late HTTP/1.1\r\n\r\n")
        response = conn.client.read_response(head_only=True)
        assert response.status == "HTTP/1.1 200 OK"
        assert conn.client.read_rest() == b"12345"
    assert "Exception while serving /late" in caplog.messages


# --- disconnects (SPEC §3.13, D5 Q12) -------------------------------------------------------


def test_client_disconnected_while_the_app_writes(
    connect: Callable[..., Conn], caplog: pytest.LogCaptureFixture
) -> None:
    peer_closed = threading.Event()
    raised: List[BaseException] = []

    def app(environ: Dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        write = start_response("200 OK", [])
        peer_closed.wait(5)
        try:
            for _ in range(100):
                write(b"x" * 1000)
        except ClientDisconnected as exc:
            raised.append(exc)
            raise
        return []

    conn = connect(app, outbuf_high_watermark=10)
    with caplog.at_level(logging.INFO, logger="waitress"):
        conn.client.send(b"GET /gone HTTP/1.1\r\n\r\n")
        wait_for(lambda: conn.channel.requests != [])
        conn.client.sock.close()
        peer_closed.set()
        wait_for(lambda: conn.channel.socket.fileno() == -1)
    assert len(raised) == 1
    assert "Client disconnected while serving /gone" in caplog.messages
    assert conn.channel.connected is False
    assert conn.channel.check_client_disconnected() is True


def test_client_disconnected_is_seen_with_lookahead(connect: Callable[..., Conn]) -> None:
    seen: List[bool] = []

    def app(environ: Dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        check = environ["waitress.client_disconnected"]
        deadline = time.monotonic() + 5
        while not check() and time.monotonic() < deadline:
            time.sleep(0.01)
        seen.append(check())
        start_response("200 OK", [("Content-Length", "0")])
        return []

    conn = connect(app, channel_request_lookahead=1)
    conn.client.send(b"GET / HTTP/1.1\r\n\r\n")
    wait_for(lambda: conn.channel.requests != [])
    conn.client.sock.shutdown(socket.SHUT_WR)
    wait_for(lambda: seen != [])
    assert seen == [True]


@pytest.mark.parametrize("lookahead", [0, 5])
def test_half_closed_client_is_still_answered(connect: Callable[..., Conn], lookahead: int) -> None:
    def app(environ: Dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        time.sleep(0.1)  # the EOF arrives while the request runs
        return echo_app(environ, start_response)

    conn = connect(app, channel_request_lookahead=lookahead)
    conn.client.send(b"GET /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\n")
    conn.client.sock.shutdown(socket.SHUT_WR)
    assert conn.client.read_response().body == b"/a:"
    assert conn.client.read_response().body == b"/b:"
    assert conn.client.at_eof()


def test_eof_with_nothing_pending_closes(connect: Callable[..., Conn]) -> None:
    conn = connect()
    conn.client.send(b"GET /partial HTTP/1.1\r\n")  # never completed
    wait_for(lambda: conn.channel.request is not None)
    conn.client.sock.shutdown(socket.SHUT_WR)
    wait_for(lambda: conn.channel.socket.fileno() == -1)
    assert conn.client.at_eof()
    assert conn.channel.request is None


def test_handle_read_without_data_waiting_keeps_the_connection(
    connect: Callable[..., Conn],
) -> None:
    conn = connect(loop=False, threads=0)
    conn.channel.handle_read()
    assert conn.channel.connected is True


def test_handle_read_records_activity(connect: Callable[..., Conn]) -> None:
    conn = connect(loop=False, threads=0)
    conn.channel.last_activity = 0.0
    conn.client.send(b"GET / HTTP/1.1\r\n")
    conn.channel.handle_read()
    assert conn.channel.last_activity > 0
    assert conn.channel.request is not None


class BrokenSocket:
    """A socket whose recv fails as a reset connection does."""

    def __init__(self, real: socket.socket) -> None:
        self.real = real

    def recv(self, n: int) -> bytes:
        raise ConnectionResetError(errno.ECONNRESET, "Connection reset by peer")

    def fileno(self) -> int:
        return self.real.fileno()

    def close(self) -> None:
        self.real.close()


@pytest.mark.parametrize("log_socket_errors", [True, False])
def test_recv_error_closes_and_is_logged_when_asked(
    connect: Callable[..., Conn], caplog: pytest.LogCaptureFixture, log_socket_errors: bool
) -> None:
    conn = connect(loop=False, threads=0, log_socket_errors=log_socket_errors)
    real = conn.channel.socket
    conn.channel.socket = BrokenSocket(real)  # type: ignore[assignment]
    with caplog.at_level(logging.ERROR, logger="waitress"):
        conn.channel.handle_read()
    assert conn.channel.connected is False
    assert real.fileno() == -1
    assert ("Socket error" in caplog.messages) is log_socket_errors


# --- output ---------------------------------------------------------------------------------


def test_write_soon_counts_and_queues(connect: Callable[..., Conn]) -> None:
    channel = connect(loop=False, threads=0).channel
    assert channel.write_soon(b"") == 0
    assert channel.write_soon(b"abc") == 3
    assert channel.total_outbufs_len == 3
    assert channel.current_outbuf_count == 3
    wrapper = ReadOnlyFileBasedBuffer(io.BytesIO(b"0123456789"))
    wrapper.prepare()
    assert channel.write_soon(wrapper) == 10
    assert channel.total_outbufs_len == 13
    assert channel.outbufs[1] is wrapper
    assert isinstance(channel.outbufs[-1], OverflowableBuffer)


def test_write_soon_after_close_raises_client_disconnected(connect: Callable[..., Conn]) -> None:
    channel = connect(loop=False, threads=0).channel
    channel.handle_close()
    with pytest.raises(ClientDisconnected):
        channel.write_soon(b"x")


def test_handle_write_sends_in_order_and_keeps_one_buffer(connect: Callable[..., Conn]) -> None:
    conn = connect(loop=False, threads=0)
    channel = conn.channel
    channel.write_soon(b"head;")
    wrapper = ReadOnlyFileBasedBuffer(io.BytesIO(b"file;"))
    wrapper.prepare()
    channel.write_soon(wrapper)
    channel.write_soon(b"tail")
    channel.handle_write()
    assert conn.client.read_exactly(14) == b"head;file;tail"
    assert channel.total_outbufs_len == 0
    assert len(channel.outbufs) == 1
    assert wrapper.file.closed


def test_file_wrapper_response_is_sent_whole_and_closed(connect: Callable[..., Conn]) -> None:
    data = bytes(range(256)) * 400
    files: List[io.BytesIO] = []

    def app(environ: Dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        files.append(io.BytesIO(data))
        wrapper: Iterable[bytes] = environ["wsgi.file_wrapper"](files[-1])
        return wrapper

    conn = connect(app)
    conn.client.send(b"GET /file HTTP/1.1\r\n\r\n")
    response = conn.client.read_response()
    assert response.headers["Content-Length"] == str(len(data))
    assert response.body == data
    wait_for(lambda: files[0].closed)
    conn.client.send(b"GET /file HTTP/1.1\r\n\r\n")  # still keep-alive
    assert conn.client.read_response().body == data


def test_backpressure_holds_the_writer_at_the_high_watermark(
    connect: Callable[..., Conn],
) -> None:
    watermark = 64 * 1024
    piece = b"y" * 16 * 1024
    most: List[int] = []

    def app(environ: Dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        write = start_response("200 OK", [("Content-Length", str(len(piece) * 128))])
        for _ in range(128):
            write(piece)
            most.append(conn.channel.total_outbufs_len)
        return []

    conn = connect(app, outbuf_high_watermark=watermark)
    conn.client.send(b"GET /big HTTP/1.1\r\n\r\n")
    response = conn.client.read_response(head_only=True)
    received = b""
    while len(received) < len(piece) * 128:
        time.sleep(0.001)
        received += conn.client.read_exactly(min(8192, len(piece) * 128 - len(received)))
    assert response.status == "HTTP/1.1 200 OK"
    assert received == piece * 128
    assert max(most) <= watermark


def test_cancel_drops_queued_requests_and_closes(connect: Callable[..., Conn]) -> None:
    conn = connect(loop=False, threads=0)
    conn.channel.received(b"GET /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\n")
    conn.channel.cancel()
    assert conn.channel.requests == []
    assert conn.channel.will_close is True
    assert conn.channel.readable() is False
    conn.channel.handle_write()
    assert conn.client.at_eof()


def test_dispatcher_shutdown_cancels_a_queued_channel(
    connect: Callable[..., Conn], caplog: pytest.LogCaptureFixture
) -> None:
    conn = connect(loop=False, threads=0)
    conn.channel.received(b"GET /a HTTP/1.1\r\n\r\n")
    with caplog.at_level(logging.WARNING, logger="waitress"):
        assert conn.server.dispatcher.shutdown() is True
    assert "Canceling 1 pending task(s)" in caplog.messages
    assert conn.channel.requests == []
    assert conn.channel.will_close is True


def test_handle_close_is_idempotent(connect: Callable[..., Conn]) -> None:
    conn = connect(loop=False, threads=0)
    channel = conn.channel
    channel.write_soon(b"never sent")
    channel.handle_close()
    channel.handle_close()
    assert channel.connected is False
    assert channel.total_outbufs_len == 0
    assert channel.socket.fileno() == -1
    assert conn.server.active_channels == {}
    assert conn.client.at_eof()
