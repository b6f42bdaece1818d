"""Tests for waitress.task: the worker pool and the Python response writers (SPEC §1.10,
§3.8-§3.11, §3.15).

The pool tests use real threads. The task tests run a ``WSGITask``/``ErrorTask`` over a fake
channel (the documented ``write_soon``/``server``/``adj``/``addr`` interface) and a request
parsed by the real ``waitress.parser.HTTPRequestParser``.
"""

from __future__ import annotations

import io
import logging
import re
import sys
import threading
import time
from collections import deque
from typing import Any, Callable, Iterable, Iterator, List, Optional, Tuple, Union

import pytest

from waitress.adjustments import Adjustments
from waitress.buffers import ReadOnlyFileBasedBuffer
from waitress.channel import ClientDisconnected
from waitress.parser import HTTPRequestParser
from waitress.task import (
    ErrorTask,
    Task,
    ThreadedTaskDispatcher,
    WSGITask,
    hop_by_hop,
    rename_headers,
)

Headers = List[Tuple[str, str]]
App = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

DATE_RE = re.compile(r"[A-Z][a-z]{2}, \d\d [A-Z][a-z]{2} \d{4} \d\d:\d\d:\d\d GMT")


def wait_for(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.005)


# --- ThreadedTaskDispatcher ----------------------------------------------------------------


class RecordingTask:
    """A task that records the thread it ran on; optionally blocks until released."""

    def __init__(self, gate: Optional[threading.Event] = None) -> None:
        self.gate = gate
        self.started = threading.Event()
        self.done = threading.Event()
        self.thread_name = ""
        self.cancelled = False

    def service(self) -> None:
        self.thread_name = threading.current_thread().name
        self.started.set()
        if self.gate is not None:
            self.gate.wait(10)
        self.done.set()

    def cancel(self) -> None:
        self.cancelled = True


class FailingTask:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc

    def service(self) -> None:
        raise self.exc

    def cancel(self) -> None:
        pass

    def __repr__(self) -> str:
        return "<FailingTask>"


@pytest.fixture
def dispatcher() -> Iterator[ThreadedTaskDispatcher]:
    d = ThreadedTaskDispatcher()
    yield d
    d.shutdown(timeout=2)


def idle_workers(d: ThreadedTaskDispatcher) -> int:
    with d.lock:
        return len(d.threads) - d.stop_count - d.active_count


def test_dispatcher_attributes() -> None:
    d = ThreadedTaskDispatcher()
    assert d.threads == set()
    assert isinstance(d.queue, deque) and not d.queue
    assert d.stop_count == 0
    assert d.active_count == 0
    assert isinstance(d.queue_cv, threading.Condition)
    assert isinstance(d.thread_exit_cv, threading.Condition)
    with d.lock:  # both conditions share the one lock
        assert d.queue_cv.acquire(blocking=False) is False
    assert d.logger.name == "waitress"
    assert d.queue_logger.name == "waitress.queue"


def test_constructing_a_dispatcher_starts_no_thread() -> None:
    before = threading.active_count()
    ThreadedTaskDispatcher()
    assert threading.active_count() == before


def test_workers_are_daemon_threads_named_waitress_n(dispatcher: ThreadedTaskDispatcher) -> None:
    dispatcher.set_thread_count(3)
    assert dispatcher.threads == {0, 1, 2}
    names = {t.name: t for t in threading.enumerate() if t.name.startswith("waitress-")}
    assert {"waitress-0", "waitress-1", "waitress-2"} <= set(names)
    assert all(names[n].daemon for n in ("waitress-0", "waitress-1", "waitress-2"))


def test_start_new_thread_runs_target_with_its_number() -> None:
    d = ThreadedTaskDispatcher()
    seen: list[tuple[int, str, bool]] = []
    done = threading.Event()

    def target(n: int) -> None:
        t = threading.current_thread()
        seen.append((n, t.name, t.daemon))
        done.set()

    d.start_new_thread(target, 7)
    assert done.wait(5)
    assert seen == [(7, "waitress-7", True)]


def test_add_task_runs_service_on_a_worker(dispatcher: ThreadedTaskDispatcher) -> None:
    dispatcher.set_thread_count(1)
    task = RecordingTask()
    dispatcher.add_task(task)
    assert task.done.wait(5)
    assert task.thread_name == "waitress-0"


def test_tasks_run_concurrently_up_to_the_thread_count(
    dispatcher: ThreadedTaskDispatcher,
) -> None:
    dispatcher.set_thread_count(2)
    gate = threading.Event()
    tasks = [RecordingTask(gate) for _ in range(3)]
    for task in tasks:
        dispatcher.add_task(task)
    assert tasks[0].started.wait(5) and tasks[1].started.wait(5)
    time.sleep(0.05)
    assert not tasks[2].started.is_set()
    gate.set()
    assert all(t.done.wait(5) for t in tasks)


def test_set_thread_count_shrinks_the_pool(dispatcher: ThreadedTaskDispatcher) -> None:
    dispatcher.set_thread_count(3)
    dispatcher.set_thread_count(1)
    wait_for(lambda: len(dispatcher.threads) == 1)
    assert dispatcher.stop_count == 0
    task = RecordingTask()
    dispatcher.add_task(task)
    assert task.done.wait(5)


def test_set_thread_count_reuses_free_numbers(dispatcher: ThreadedTaskDispatcher) -> None:
    dispatcher.set_thread_count(2)
    dispatcher.set_thread_count(0)
    wait_for(lambda: not dispatcher.threads)
    dispatcher.set_thread_count(2)
    assert dispatcher.threads == {0, 1}


def test_queue_depth_warning_when_no_worker_is_idle(
    dispatcher: ThreadedTaskDispatcher, caplog: pytest.LogCaptureFixture
) -> None:
    dispatcher.set_thread_count(1)
    wait_for(lambda: idle_workers(dispatcher) == 1)
    gate = threading.Event()
    first = RecordingTask(gate)
    with caplog.at_level(logging.WARNING, logger="waitress.queue"):
        dispatcher.add_task(first)
        assert first.started.wait(5)
        dispatcher.add_task(RecordingTask(gate))
        dispatcher.add_task(RecordingTask(gate))
    gate.set()
    records = [r for r in caplog.records if r.name == "waitress.queue"]
    assert [r.getMessage() for r in records] == ["Task queue depth is 1", "Task queue depth is 2"]
    assert all(r.levelno == logging.WARNING for r in records)


def test_no_queue_depth_warning_while_a_worker_is_idle(
    dispatcher: ThreadedTaskDispatcher, caplog: pytest.LogCaptureFixture
) -> None:
    dispatcher.set_thread_count(2)
    wait_for(lambda: idle_workers(dispatcher) == 2)
    task = RecordingTask()
    with caplog.at_level(logging.WARNING, logger="waitress.queue"):
        dispatcher.add_task(task)
    assert task.done.wait(5)
    assert not [r for r in caplog.records if r.name == "waitress.queue"]


def test_queue_depth_warning_without_threads(caplog: pytest.LogCaptureFixture) -> None:
    d = ThreadedTaskDispatcher()
    with caplog.at_level(logging.WARNING, logger="waitress.queue"):
        d.add_task(RecordingTask())
    assert caplog.messages == ["Task queue depth is 1"]
    assert len(d.queue) == 1


def test_exception_in_a_task_is_logged_and_the_worker_survives(
    dispatcher: ThreadedTaskDispatcher, caplog: pytest.LogCaptureFixture
) -> None:
    dispatcher.set_thread_count(1)
    with caplog.at_level(logging.ERROR, logger="waitress"):
        dispatcher.add_task(FailingTask(ValueError("boom")))
        dispatcher.add_task(FailingTask(SystemExit(3)))
        task = RecordingTask()
        dispatcher.add_task(task)
        assert task.done.wait(5)
    errors = [r for r in caplog.records if r.name == "waitress"]
    assert [r.getMessage() for r in errors] == ["Exception when servicing <FailingTask>"] * 2
    assert errors[0].exc_info is not None and errors[0].exc_info[0] is ValueError
    assert dispatcher.threads == {0}


def test_shutdown_stops_every_thread() -> None:
    d = ThreadedTaskDispatcher()
    d.set_thread_count(3)
    assert d.shutdown() is True
    assert d.threads == set()
    assert not [t for t in threading.enumerate() if t.name in {"waitress-0", "waitress-1"}]


def test_shutdown_warns_about_threads_still_running(caplog: pytest.LogCaptureFixture) -> None:
    d = ThreadedTaskDispatcher()
    d.set_thread_count(1)
    gate = threading.Event()
    task = RecordingTask(gate)
    d.add_task(task)
    assert task.started.wait(5)
    with caplog.at_level(logging.WARNING, logger="waitress"):
        started = time.monotonic()
        assert d.shutdown(timeout=0.2) is True
        assert time.monotonic() - started < 2
    gate.set()
    assert "1 thread(s) still running" in caplog.messages
    wait_for(lambda: not d.threads)


def test_shutdown_cancels_pending_tasks(caplog: pytest.LogCaptureFixture) -> None:
    d = ThreadedTaskDispatcher()
    pending = [RecordingTask(), RecordingTask()]
    for task in pending:
        d.add_task(task)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="waitress"):
        assert d.shutdown() is True
    assert caplog.messages == ["Canceling 2 pending task(s)"]
    assert all(t.cancelled for t in pending)
    assert not d.queue


def test_shutdown_without_cancel_keeps_pending_tasks(caplog: pytest.LogCaptureFixture) -> None:
    d = ThreadedTaskDispatcher()
    task = RecordingTask()
    d.add_task(task)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="waitress"):
        assert d.shutdown(cancel_pending=False) is False
    assert not caplog.messages
    assert list(d.queue) == [task]
    assert not task.cancelled


def test_handler_thread_stops_when_asked(dispatcher: ThreadedTaskDispatcher) -> None:
    with dispatcher.lock:
        dispatcher.threads.add(5)
        dispatcher.active_count += 1
        dispatcher.stop_count = 1
    dispatcher.handler_thread(5)  # returns at once instead of waiting for work
    assert dispatcher.threads == set()
    assert dispatcher.stop_count == 0
    assert dispatcher.active_count == 0


# --- the fake channel the tasks write through ----------------------------------------------


class FakeServer:
    def __init__(self, app: App) -> None:
        self.application = app
        self.effective_port = "8080"
        self.server_name = "waitress.invalid"


class FakeChannel:
    """The channel interface of SPEC §1.11 that a task uses, recording what is written."""

    def __init__(self, app: App, adj: Adjustments, addr: Any = ("127.0.0.1", 39876)) -> None:
        self.server = FakeServer(app)
        self.adj = adj
        self.addr = addr
        self.written: list[Union[bytes, ReadOnlyFileBasedBuffer]] = []
        self.gone = False
        self.creation_time = time.time()

    def write_soon(self, data: Union[bytes, ReadOnlyFileBasedBuffer]) -> int:
        if self.gone:
            raise ClientDisconnected
        if len(data):
            self.written.append(data)
        return len(data)

    def check_client_disconnected(self) -> bool:
        return self.gone

    def wire(self) -> bytes:
        out = b""
        for item in self.written:
            out += item.get(-1) if isinstance(item, ReadOnlyFileBasedBuffer) else item
        return out


def parse(raw: bytes, adj: Optional[Adjustments] = None) -> HTTPRequestParser:
    request = HTTPRequestParser(adj or Adjustments())
    request.received(raw)
    assert request.completed
    return request


def split_response(wire: bytes) -> tuple[str, Headers, bytes]:
    head, _, body = wire.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = [(n, v) for n, _, v in (line.partition(": ") for line in lines[1:])]
    return lines[0], headers, body


def run_app(
    app: App,
    raw: bytes = b"GET / HTTP/1.1\r\n\r\n",
    adj: Optional[Adjustments] = None,
    addr: Any = ("127.0.0.1", 39876),
) -> tuple[WSGITask, FakeChannel]:
    adj = adj or Adjustments()
    channel = FakeChannel(app, adj, addr)
    task = WSGITask(channel, parse(raw, adj))
    task.service()
    return task, channel


def simple_app(
    status: str = "200 OK", headers: Optional[Headers] = None, body: Iterable[bytes] = (b"ok",)
) -> App:
    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        start_response(status, list(headers or []))
        return body

    return app


def environ_of(raw: bytes, adj: Optional[Adjustments] = None, addr: Any = None) -> dict[str, Any]:
    seen: dict[str, Any] = {}

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        seen.update(environ)
        start_response("200 OK", [("Content-Length", "0")])
        return []

    run_app(app, raw, adj, addr or ("127.0.0.1", 39876))
    return seen


# --- module constants ----------------------------------------------------------------------


def test_hop_by_hop_uses_the_302_spelling() -> None:
    assert hop_by_hop == frozenset(
        {
            "connection",
            "keep-alive",
            "proxy-authenticate",
            "proxy-authorization",
            "te",
            "trailers",
            "transfer-encoding",
            "upgrade",
        }
    )


def test_rename_headers() -> None:
    assert rename_headers == {"CONTENT_LENGTH": "CONTENT_LENGTH", "CONTENT_TYPE": "CONTENT_TYPE"}


# --- Task ----------------------------------------------------------------------------------


def test_task_initial_state() -> None:
    channel = FakeChannel(simple_app(), Adjustments())
    task = Task(channel, parse(b"GET / HTTP/1.1\r\n\r\n"))
    assert task.status == "200 OK"
    assert task.response_headers == []
    assert task.wrote_header is False
    assert task.content_length is None
    assert task.content_bytes_written == 0
    assert task.close_on_finish is False
    assert task.chunked_response is False
    assert task.version == "1.1"
    assert task.has_body is True


def test_task_version_other_than_10_or_11_is_answered_as_10() -> None:
    request = parse(b"GET / HTTP/1.1\r\n\r\n")
    request.version = "2.0"
    assert Task(FakeChannel(simple_app(), Adjustments()), request).version == "1.0"


@pytest.mark.parametrize(
    ("status", "has_body"),
    [("200 OK", True), ("100 Continue", False), ("204 No Content", False), ("304 NM", False)],
)
def test_task_has_body(status: str, has_body: bool) -> None:
    task = Task(FakeChannel(simple_app(), Adjustments()), parse(b"GET / HTTP/1.1\r\n\r\n"))
    task.status = status
    assert task.has_body is has_body


def test_task_execute_is_abstract() -> None:
    task = Task(FakeChannel(simple_app(), Adjustments()), parse(b"GET / HTTP/1.1\r\n\r\n"))
    with pytest.raises(NotImplementedError):
        task.service()


def make_task(raw: bytes = b"GET / HTTP/1.1\r\n\r\n", ident: Optional[str] = "waitress") -> Task:
    task = Task(FakeChannel(simple_app(), Adjustments(ident=ident)), parse(raw))
    task.complete = True
    return task


def test_build_response_header_normalises_and_sorts_names() -> None:
    task = make_task()
    task.response_headers = [
        ("x-lower", "1"),
        ("X-UPPER", "2"),
        ("ETag", "3"),
        ("Set-Cookie", "b=2"),
        ("content-length", "0"),
        ("Set-Cookie", "a=1"),
        ("WWW-Authenticate", "x"),
    ]
    status, headers, _ = split_response(task.build_response_header())
    assert status == "HTTP/1.1 200 OK"
    names = [n for n, _ in headers]
    assert names == sorted(names)
    assert ("Etag", "3") in headers and ("Www-Authenticate", "x") in headers
    assert ("X-Lower", "1") in headers and ("X-Upper", "2") in headers
    assert [v for n, v in headers if n == "Set-Cookie"] == ["b=2", "a=1"]


def test_build_response_header_adds_server_and_date() -> None:
    task = make_task()
    task.response_headers = [("Content-Length", "0")]
    head = task.build_response_header()
    _, headers, _ = split_response(head)
    assert dict(headers)["Server"] == "waitress"
    assert DATE_RE.fullmatch(dict(headers)["Date"])
    assert head.endswith(b"\r\n\r\n")


def test_build_response_header_keeps_app_date_and_adds_via_for_app_server() -> None:
    task = make_task()
    task.response_headers = [("Content-Length", "0"), ("Server", "mine"), ("Date", "today")]
    _, headers, _ = split_response(task.build_response_header())
    assert dict(headers)["Server"] == "mine"
    assert dict(headers)["Via"] == "waitress"
    assert dict(headers)["Date"] == "today"


def test_build_response_header_without_ident() -> None:
    task = make_task(ident="")
    task.response_headers = [("Content-Length", "0"), ("Server", "mine")]
    _, headers, _ = split_response(task.build_response_header())
    assert dict(headers)["Via"] == "waitress"
    task = make_task(ident="")
    task.response_headers = [("Content-Length", "0")]
    _, headers, _ = split_response(task.build_response_header())
    assert "Server" not in dict(headers)


def test_http11_with_content_length_keeps_alive() -> None:
    task = make_task()
    task.response_headers = [("Content-Length", "2")]
    _, headers, _ = split_response(task.build_response_header())
    assert "Connection" not in dict(headers)
    assert task.close_on_finish is False
    assert task.chunked_response is False


def test_http11_without_content_length_is_chunked_and_closes() -> None:
    task = make_task()
    _, headers, _ = split_response(task.build_response_header())
    assert dict(headers)["Transfer-Encoding"] == "chunked"
    assert dict(headers)["Connection"] == "close"
    assert task.chunked_response is True
    assert task.close_on_finish is True


def test_http11_connection_close_request_closes() -> None:
    task = make_task(b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n")
    task.response_headers = [("Content-Length", "0")]
    _, headers, _ = split_response(task.build_response_header())
    assert dict(headers)["Connection"] == "close"
    assert task.close_on_finish is True


def test_http10_closes_by_default() -> None:
    task = make_task(b"GET / HTTP/1.0\r\n\r\n")
    task.response_headers = [("Content-Length", "0")]
    status, headers, _ = split_response(task.build_response_header())
    assert status == "HTTP/1.0 200 OK"
    assert dict(headers)["Connection"] == "close"
    assert task.close_on_finish is True


def test_http10_keep_alive_with_content_length() -> None:
    task = make_task(b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n")
    task.response_headers = [("Content-Length", "0")]
    _, headers, _ = split_response(task.build_response_header())
    assert dict(headers)["Connection"] == "Keep-Alive"
    assert task.close_on_finish is False


def test_http10_keep_alive_without_content_length_closes_and_is_not_chunked() -> None:
    task = make_task(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
    _, headers, _ = split_response(task.build_response_header())
    assert dict(headers)["Connection"] == "close"
    assert "Transfer-Encoding" not in dict(headers)
    assert task.close_on_finish is True


def test_content_length_attribute_becomes_a_header() -> None:
    task = make_task()
    task.content_length = 5
    _, headers, _ = split_response(task.build_response_header())
    assert dict(headers)["Content-Length"] == "5"


@pytest.mark.parametrize("status", ["204 No Content", "304 Not Modified"])
def test_bodiless_status_drops_content_length_and_keeps_alive(status: str) -> None:
    task = make_task()
    task.status = status
    task.response_headers = [("Content-Length", "10")]
    _, headers, _ = split_response(task.build_response_header())
    assert "Content-Length" not in dict(headers)
    assert "Transfer-Encoding" not in dict(headers)
    assert "Connection" not in dict(headers)  # D5 Q4
    assert task.close_on_finish is False


def test_task_cancel_marks_close() -> None:
    task = make_task()
    task.defer()
    assert task.close_on_finish is False
    task.cancel()
    assert task.close_on_finish is True


def test_set_close_on_finish_adds_connection_close() -> None:
    task = make_task()
    task.response_headers = [("Content-Length", "0")]
    task.set_close_on_finish()
    _, headers, _ = split_response(task.build_response_header())
    assert dict(headers)["Connection"] == "close"


def test_remove_content_length_header() -> None:
    task = make_task()
    task.response_headers = [("content-length", "1"), ("X", "y"), ("Content-Length", "2")]
    task.remove_content_length_header()
    assert task.response_headers == [("X", "y")]


def test_non_latin1_header_value_fails_before_anything_is_sent() -> None:
    task = make_task()
    task.response_headers = [("X", "snowman \u2603")]
    with pytest.raises(UnicodeEncodeError):
        task.write(b"")
    assert task.channel.written == []  # type: ignore[attr-defined]


def test_write_before_start_response_is_an_error() -> None:
    task = Task(FakeChannel(simple_app(), Adjustments()), parse(b"GET / HTTP/1.1\r\n\r\n"))
    with pytest.raises(RuntimeError, match="start_response was not called before body written"):
        task.write(b"x")


def test_write_sends_the_head_first() -> None:
    task = make_task()
    task.response_headers = [("Content-Length", "2")]
    task.write(b"ok")
    channel: FakeChannel = task.channel  # type: ignore[assignment]
    assert len(channel.written) == 2
    assert channel.written[0].startswith(b"HTTP/1.1 200 OK\r\n")  # type: ignore[union-attr]
    assert channel.written[1] == b"ok"
    assert task.wrote_header is True
    assert task.content_bytes_written == 2


def test_write_frames_chunks_in_upper_case_hex_and_finish_ends_them() -> None:
    task = make_task()
    task.write(b"x" * 26)
    task.finish()
    _, _, body = split_response(task.channel.wire())  # type: ignore[attr-defined]
    assert body == b"1A\r\n" + b"x" * 26 + b"\r\n0\r\n\r\n"


def test_write_truncates_past_content_length_and_warns_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    task = make_task()
    task.response_headers = [("Content-Length", "3")]
    task.content_length = 3
    with caplog.at_level(logging.WARNING, logger="waitress"):
        task.write(b"ab")
        task.write(b"cdef")
        task.write(b"gh")
    _, _, body = split_response(task.channel.wire())  # type: ignore[attr-defined]
    assert body == b"abc"
    assert caplog.messages == [
        "application-written content exceeded the number of bytes specified by "
        "Content-Length header (3)"
    ]


def test_write_ignores_body_of_bodiless_status(caplog: pytest.LogCaptureFixture) -> None:
    task = make_task()
    task.status = "204 No Content"
    with caplog.at_level(logging.WARNING, logger="waitress"):
        task.write(b"nope")
        task.write(b"again")
        task.finish()
    _, _, body = split_response(task.channel.wire())  # type: ignore[attr-defined]
    assert body == b""
    assert caplog.messages == [
        "application-written content was ignored due to HTTP response that may not "
        "contain a message-body: (204 No Content)"
    ]


def test_write_rejects_str() -> None:
    task = make_task()
    with pytest.raises(TypeError):
        task.write("text")  # type: ignore[arg-type]
    assert task.channel.written == []  # type: ignore[attr-defined]


def test_finish_sends_the_head_when_nothing_was_written() -> None:
    task = make_task()
    task.response_headers = [("Content-Length", "0")]
    task.finish()
    assert task.wrote_header is True
    assert task.channel.wire().startswith(b"HTTP/1.1 200 OK\r\n")  # type: ignore[attr-defined]


# --- WSGITask: environ (SPEC §3.8) ---------------------------------------------------------


def test_environ_exact_keys_and_values() -> None:
    raw = (
        b"GET /env?x=%20 HTTP/1.1\r\nHost: example.com:81\r\nX-Foo: a\r\nX-Foo: b\r\n"
        b"Content-Type: text/x\r\nContent-Length: 0\r\n\r\n"
    )
    environ = environ_of(raw)
    assert set(environ) == {
        "REQUEST_METHOD",
        "SCRIPT_NAME",
        "PATH_INFO",
        "QUERY_STRING",
        "REQUEST_URI",
        "SERVER_PROTOCOL",
        "SERVER_NAME",
        "SERVER_PORT",
        "SERVER_SOFTWARE",
        "REMOTE_ADDR",
        "REMOTE_HOST",
        "REMOTE_PORT",
        "CONTENT_LENGTH",
        "CONTENT_TYPE",
        "HTTP_HOST",
        "HTTP_X_FOO",
        "wsgi.version",
        "wsgi.url_scheme",
        "wsgi.input",
        "wsgi.errors",
        "wsgi.multithread",
        "wsgi.multiprocess",
        "wsgi.run_once",
        "wsgi.file_wrapper",
        "wsgi.input_terminated",
        "waitress.client_disconnected",
    }
    expected = {
        "REQUEST_METHOD": "GET",
        "SCRIPT_NAME": "",
        "PATH_INFO": "/env",
        "QUERY_STRING": "x=%20",
        "REQUEST_URI": "/env?x=%20",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "SERVER_NAME": "waitress.invalid",
        "SERVER_PORT": "8080",
        "SERVER_SOFTWARE": "waitress",
        "REMOTE_ADDR": "127.0.0.1",
        "REMOTE_HOST": "127.0.0.1",
        "REMOTE_PORT": "39876",
        "CONTENT_LENGTH": "0",
        "CONTENT_TYPE": "text/x",
        "HTTP_HOST": "example.com:81",
        "HTTP_X_FOO": "a, b",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
        "wsgi.file_wrapper": ReadOnlyFileBasedBuffer,
        "wsgi.input_terminated": True,
    }
    assert {k: environ[k] for k in expected} == expected
    assert environ["wsgi.input"].read() == b""
    assert environ["waitress.client_disconnected"]() is False


def test_environ_http10_protocol_and_url_scheme_setting() -> None:
    environ = environ_of(b"GET / HTTP/1.0\r\n\r\n", Adjustments(url_scheme="https"))
    assert environ["SERVER_PROTOCOL"] == "HTTP/1.0"
    assert environ["wsgi.url_scheme"] == "https"


def test_environ_body_is_wsgi_input() -> None:
    environ = environ_of(b"POST /p HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello")
    assert environ["REQUEST_METHOD"] == "POST"
    assert environ["CONTENT_LENGTH"] == "5"
    assert environ["wsgi.input"].read() == b"hello"


def test_environ_chunked_body_has_decoded_content_length() -> None:
    environ = environ_of(
        b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
    )
    assert environ["CONTENT_LENGTH"] == "5"
    assert environ["wsgi.input"].read() == b"abcde"
    assert "HTTP_TRANSFER_ENCODING" not in environ


def test_environ_path_is_decoded_latin1_and_leading_slashes_collapse() -> None:
    environ = environ_of(b"GET //testing//x%C3%A9 HTTP/1.1\r\n\r\n")
    assert environ["PATH_INFO"] == "/testing//x\xc3\xa9"
    assert environ["REQUEST_URI"] == "//testing//x%C3%A9"


def test_environ_header_values_are_not_stripped() -> None:
    environ = environ_of(b"GET / HTTP/1.1\r\nX-Odd: \x85admin\xa0\r\n\r\n")
    assert environ["HTTP_X_ODD"] == "\x85admin\xa0"


@pytest.mark.parametrize(
    ("path", "script_name", "path_info"),
    [
        ("/foo", "/foo", ""),
        ("/foo/", "/foo", "/"),
        ("/foo/bar", "/foo", "/bar"),
        ("/foobar", "/foo", "/foobar"),
        ("/other", "/foo", "/other"),
    ],
)
def test_environ_url_prefix(path: str, script_name: str, path_info: str) -> None:
    environ = environ_of(f"GET {path} HTTP/1.1\r\n\r\n".encode(), Adjustments(url_prefix="/foo/"))
    assert environ["SCRIPT_NAME"] == script_name
    assert environ["PATH_INFO"] == path_info


def test_environ_unix_socket_peer() -> None:
    environ = environ_of(b"GET / HTTP/1.1\r\n\r\n", addr=("localhost", None))
    assert environ["REMOTE_ADDR"] == "localhost"
    assert environ["REMOTE_PORT"] == "None"


def test_environ_ident_disabled_gives_no_server_software() -> None:
    environ = environ_of(b"GET / HTTP/1.1\r\n\r\n", Adjustments(ident=""))
    assert environ["SERVER_SOFTWARE"] is None


def test_get_environment_is_built_once() -> None:
    channel = FakeChannel(simple_app(), Adjustments())
    task = WSGITask(channel, parse(b"GET / HTTP/1.1\r\n\r\n"))
    assert task.get_environment() is task.get_environment()


def test_client_disconnected_is_the_channels() -> None:
    channel = FakeChannel(simple_app(), Adjustments())
    task = WSGITask(channel, parse(b"GET / HTTP/1.1\r\n\r\n"))
    check = task.get_environment()["waitress.client_disconnected"]
    channel.gone = True
    assert check() is True


# --- WSGITask: start_response and write (SPEC §3.9) ----------------------------------------


def start_response_error(*calls: Tuple[Any, ...]) -> BaseException:
    """Run an app that calls start_response with each argument tuple; return what it raised."""
    raised: list[BaseException] = []

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        try:
            for args in calls:
                start_response(*args)
        except BaseException as exc:
            raised.append(exc)
            start_response("200 OK", [("Content-Length", "0")], sys.exc_info())
        return []

    run_app(app)
    assert raised
    return raised[0]


def test_start_response_twice_without_exc_info() -> None:
    exc = start_response_error(("200 OK", []), ("200 OK", []))
    assert isinstance(exc, AssertionError)
    assert str(exc) == "start_response called a second time without providing exc_info."


def test_start_response_status_must_be_str() -> None:
    assert isinstance(start_response_error((b"200 OK", [])), AssertionError)


@pytest.mark.parametrize("status", ["200 OK\r\nX: y", "200 OK\n", "200\rOK", "200 OK\0"])
def test_start_response_control_characters_in_status(status: str) -> None:
    assert isinstance(start_response_error((status, [])), ValueError)


@pytest.mark.parametrize(
    "header",
    [("X", "a\r\nSet-Cookie: x"), ("X", "a\nb"), ("X\r\nY", "a"), ("X", "a\0b")],
)
def test_start_response_control_characters_in_headers(header: Tuple[str, str]) -> None:
    assert isinstance(start_response_error(("200 OK", [header])), ValueError)


@pytest.mark.parametrize("header", [(b"X", "a"), ("X", b"a"), ("X", 1)])
def test_start_response_header_types(header: Tuple[Any, Any]) -> None:
    exc = start_response_error(("200 OK", [header]))
    assert isinstance(exc, AssertionError)
    assert repr(header) in str(exc)


@pytest.mark.parametrize(
    "name",
    [
        "Connection",
        "keep-alive",
        "Proxy-Authenticate",
        "Proxy-Authorization",
        "TE",
        "Trailers",
        "Transfer-Encoding",
        "Upgrade",
    ],
)
def test_start_response_hop_by_hop(name: str) -> None:
    exc = start_response_error(("200 OK", [(name, "x")]))
    assert isinstance(exc, AssertionError)
    assert str(exc) == (
        f'{name} is a "hop-by-hop" header; it cannot be used by a WSGI application (see PEP 3333)'
    )


def test_start_response_trailer_singular_is_allowed() -> None:
    task, _ = run_app(simple_app(headers=[("Trailer", "x"), ("Content-Length", "2")]))
    assert ("Trailer", "x") in task.response_headers


def test_start_response_bad_content_length() -> None:
    assert isinstance(start_response_error(("200 OK", [("Content-Length", "x")])), ValueError)


def test_start_response_exc_info_before_head_replaces_headers() -> None:
    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        start_response("200 OK", [("X-First", "1"), ("Content-Length", "100")])
        try:
            raise KeyError("x")
        except KeyError:
            start_response("500 Oops", [("Content-Length", "3")], sys.exc_info())
        return [b"bad"]

    _task, channel = run_app(app)
    status, headers, body = split_response(channel.wire())
    assert status == "HTTP/1.1 500 Oops"
    assert "X-First" not in dict(headers)
    assert dict(headers)["Content-Length"] == "3"
    assert body == b"bad"


def test_start_response_exc_info_after_head_reraises() -> None:
    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        write = start_response("200 OK", [("Content-Length", "10")])
        write(b"12345")
        try:
            raise KeyError("late")
        except KeyError:
            start_response("500 Oops", [], sys.exc_info())
        return []

    channel = FakeChannel(app, Adjustments())
    task = WSGITask(channel, parse(b"GET / HTTP/1.1\r\n\r\n"))
    with pytest.raises(KeyError, match="late"):
        task.service()


def test_start_response_returns_write_which_sends_the_head_at_once() -> None:
    heads: list[bytes] = []

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        write = start_response("200 OK", [("Content-Length", "4")])
        write(b"ab")
        heads.append(channel.wire())
        write(b"cd")
        return []

    channel = FakeChannel(app, Adjustments())
    WSGITask(channel, parse(b"GET / HTTP/1.1\r\n\r\n")).service()
    assert heads[0].startswith(b"HTTP/1.1 200 OK\r\n") and heads[0].endswith(b"\r\n\r\nab")
    assert split_response(channel.wire())[2] == b"abcd"


def test_head_waits_for_the_first_non_empty_chunk() -> None:
    seen: list[bytes] = []

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterator[bytes]:
        start_response("200 OK", [("Content-Length", "2")])
        yield b""
        seen.append(channel.wire())
        yield b"ok"

    channel = FakeChannel(app, Adjustments())
    WSGITask(channel, parse(b"GET / HTTP/1.1\r\n\r\n")).service()
    assert seen == [b""]
    assert split_response(channel.wire())[2] == b"ok"


def test_start_response_may_be_called_during_the_first_iteration() -> None:
    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterator[bytes]:
        start_response("201 Created", [("Content-Length", "2")])
        yield b"ok"

    _, channel = run_app(app)
    assert channel.wire().startswith(b"HTTP/1.1 201 Created\r\n")


def test_one_item_iterable_gets_a_content_length() -> None:
    task, channel = run_app(simple_app(body=[b"hello"]))
    _, headers, body = split_response(channel.wire())
    assert dict(headers)["Content-Length"] == "5"
    assert body == b"hello"
    assert task.close_on_finish is False


def test_longer_iterable_without_length_is_chunked_on_http11() -> None:
    task, channel = run_app(simple_app(body=[b"ab", b"", b"cde"]))
    _, headers, body = split_response(channel.wire())
    assert dict(headers)["Transfer-Encoding"] == "chunked"
    assert body == b"2\r\nab\r\n3\r\ncde\r\n0\r\n\r\n"
    assert task.close_on_finish is True


def test_http10_without_length_is_close_delimited() -> None:
    task, channel = run_app(simple_app(body=[b"ab", b"cd"]), b"GET / HTTP/1.0\r\n\r\n")
    _, headers, body = split_response(channel.wire())
    assert "Transfer-Encoding" not in dict(headers)
    assert body == b"abcd"
    assert task.close_on_finish is True


def test_write_then_one_item_iterable_is_not_a_short_response(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        write = start_response("200 OK", [])
        write(b"abc")
        return [b"de"]

    with caplog.at_level(logging.WARNING, logger="waitress"):
        _, channel = run_app(app)
    assert split_response(channel.wire())[2] == b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
    assert not caplog.messages  # waitress Q9 is not replicated


def test_too_few_bytes_warns_and_closes(caplog: pytest.LogCaptureFixture) -> None:
    app = simple_app(headers=[("Content-Length", "10")], body=[b"ok", b""])
    with caplog.at_level(logging.WARNING, logger="waitress"):
        task, _ = run_app(app)
    assert task.close_on_finish is True
    assert caplog.messages == [
        "application returned too few bytes (2) for specified Content-Length (10) via app_iter"
    ]


def test_head_response_has_the_get_head_and_no_body(caplog: pytest.LogCaptureFixture) -> None:
    app = simple_app(headers=[("Content-Length", "5")], body=[b"hello"])
    with caplog.at_level(logging.WARNING, logger="waitress"):
        task, channel = run_app(app, b"HEAD / HTTP/1.1\r\n\r\n")
    _, headers, body = split_response(channel.wire())
    assert dict(headers)["Content-Length"] == "5"
    assert body == b""
    assert task.close_on_finish is False
    assert not caplog.messages


def test_head_response_short_of_its_length_keeps_the_connection(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = simple_app(headers=[("Content-Length", "5")], body=[])
    with caplog.at_level(logging.WARNING, logger="waitress"):
        task, channel = run_app(app, b"HEAD / HTTP/1.1\r\n\r\n")
    assert task.close_on_finish is False
    assert not caplog.messages
    assert dict(split_response(channel.wire())[1])["Content-Length"] == "5"


def test_head_without_length_sends_no_chunk_terminator() -> None:
    _, channel = run_app(simple_app(body=[b"a", b"b"]), b"HEAD / HTTP/1.1\r\n\r\n")
    assert split_response(channel.wire())[2] == b""


def test_app_iter_close_is_called() -> None:
    closed: list[bool] = []

    class Body:
        def __iter__(self) -> Iterator[bytes]:
            yield b"x"

        def close(self) -> None:
            closed.append(True)

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        start_response("200 OK", [("Content-Length", "1")])
        return Body()

    run_app(app)
    assert closed == [True]


def test_app_iter_close_is_called_when_iteration_fails() -> None:
    closed: list[bool] = []

    class Body:
        def __iter__(self) -> Iterator[bytes]:
            raise RuntimeError("broken")
            yield b""  # pragma: no cover

        def close(self) -> None:
            closed.append(True)

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        start_response("200 OK", [])
        return Body()

    with pytest.raises(RuntimeError, match="broken"):
        run_app(app)
    assert closed == [True]


def test_str_chunk_raises_type_error() -> None:
    with pytest.raises(TypeError):
        run_app(simple_app(body=["text"]))  # type: ignore[list-item]


def test_client_disconnected_propagates_from_write() -> None:
    channel = FakeChannel(simple_app(body=[b"ok"]), Adjustments())
    channel.gone = True
    task = WSGITask(channel, parse(b"GET / HTTP/1.1\r\n\r\n"))
    with pytest.raises(ClientDisconnected):
        task.service()


# --- WSGITask: wsgi.file_wrapper (SPEC §3.12) ----------------------------------------------


class ClosingBytesIO(io.BytesIO):
    pass


def file_app(
    data: bytes, content_length: Optional[str] = None, seekable: bool = True
) -> tuple[App, list[Any]]:
    files: list[Any] = []

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        headers = [("Content-Type", "text/plain")]
        if content_length is not None:
            headers.append(("Content-Length", content_length))
        start_response("200 OK", headers)
        if seekable:
            f: Any = ClosingBytesIO(data)
        else:

            class Reader:
                def __init__(self) -> None:
                    self.inner = io.BytesIO(data)
                    self.closed = False

                def read(self, n: int = -1) -> bytes:
                    return self.inner.read(n)

                def close(self) -> None:
                    self.closed = True

            f = Reader()
        files.append(f)
        wrapper: Iterable[bytes] = environ["wsgi.file_wrapper"](f, 4)
        return wrapper

    return app, files


@pytest.mark.parametrize(
    ("content_length", "sent_length", "body"),
    [
        (None, "10", b"0123456789"),
        ("10", "10", b"0123456789"),
        ("1", "1", b"0"),
        ("99", "10", None),
    ],
)
def test_seekable_file_wrapper_is_handed_to_the_channel(
    content_length: Optional[str], sent_length: str, body: Optional[bytes]
) -> None:
    app, files = file_app(b"0123456789", content_length)
    task, channel = run_app(app)
    assert isinstance(channel.written[-1], ReadOnlyFileBasedBuffer)
    _, headers, sent = split_response(channel.wire())
    assert [v for n, v in headers if n == "Content-Length"] == [sent_length]
    assert sent == (body if body is not None else b"0123456789")
    assert not files[0].closed  # the channel closes it once sent
    assert task.close_on_finish is False


def test_non_seekable_file_wrapper_is_iterated() -> None:
    app, files = file_app(b"0123456789", seekable=False)
    _task, channel = run_app(app)
    assert all(isinstance(item, bytes) for item in channel.written)
    _, headers, body = split_response(channel.wire())
    assert dict(headers)["Transfer-Encoding"] == "chunked"
    assert body == b"4\r\n0123\r\n4\r\n4567\r\n2\r\n89\r\n0\r\n\r\n"
    assert files[0].closed


def test_file_wrapper_for_head_is_closed_not_sent() -> None:
    app, files = file_app(b"0123456789")
    _, channel = run_app(app, b"HEAD / HTTP/1.1\r\n\r\n")
    assert all(isinstance(item, bytes) for item in channel.written)
    assert dict(split_response(channel.wire())[1])["Content-Length"] == "10"
    assert files[0].closed


def test_empty_seekable_file_wrapper() -> None:
    app, files = file_app(b"", "0")
    _task, channel = run_app(app)
    _, headers, body = split_response(channel.wire())
    assert dict(headers)["Content-Length"] == "0"
    assert body == b""
    assert files[0].closed


# --- ErrorTask (SPEC §3.11) ----------------------------------------------------------------


def run_error(raw: bytes, adj: Optional[Adjustments] = None) -> tuple[ErrorTask, FakeChannel]:
    adj = adj or Adjustments()
    request = parse(raw, adj)
    assert request.error is not None
    channel = FakeChannel(simple_app(), adj)
    task = ErrorTask(channel, request)
    task.service()
    return task, channel


def test_error_task_renders_the_parser_error() -> None:
    task, channel = run_error(b"GET / HTTP/1.1\r\nfoo : bar\r\n\r\n")
    error = task.request.error
    assert error is not None and error.code == 400
    status, headers, body = split_response(channel.wire())
    assert status == "HTTP/1.0 400 Bad Request"
    expected_body = f"Bad Request\r\n\r\n{error.body}\r\n\r\n(generated by waitress)".encode()
    assert body == expected_body
    assert [n for n, _ in headers] == [
        "Connection",
        "Content-Length",
        "Content-Type",
        "Date",
        "Server",
    ]
    assert dict(headers)["Connection"] == "close"
    assert dict(headers)["Content-Length"] == str(len(expected_body))
    assert dict(headers)["Content-Type"] == "text/plain; charset=utf-8"
    assert task.close_on_finish is True


def test_error_task_without_ident() -> None:
    _, channel = run_error(b"GET / HTTP/1.1\r\nfoo : bar\r\n\r\n", Adjustments(ident=""))
    _, headers, body = split_response(channel.wire())
    assert "Server" not in dict(headers)
    assert body.endswith(b"(generated by server)")


def test_error_task_413_uses_the_request_version() -> None:
    adj = Adjustments(max_request_body_size=1000)
    request = parse(b"POST / HTTP/1.1\r\nContent-Length: 2000\r\n\r\n", adj)
    request.version = "1.1"
    channel = FakeChannel(simple_app(), adj)
    ErrorTask(channel, request).service()
    status, _, body = split_response(channel.wire())
    assert status == "HTTP/1.1 413 Request Entity Too Large"
    assert b"exceeds max_body of 1000" in body
