"""Worker pool and response writers (waitress's ``waitress.task``).

In waitress-rs the server's workers, environ building and response framing are in Rust
(``crates/python``, ``crates/http/src/encode.rs``). This module keeps waitress's public
``task`` names as real, working Python objects, because third-party code and tests import
them (SPEC §1.10, §A6):

- ``ThreadedTaskDispatcher`` is a fixed pool of daemon threads named ``waitress-{n}`` that
  run queued *tasks*: any object with ``service()`` and ``cancel()`` (in waitress the
  connection itself is queued, and re-queues itself while requests remain).
- ``Task`` writes one response through a *channel*: an object with ``write_soon(data)``,
  ``check_client_disconnected()``, ``server``, ``adj`` and ``addr`` (``HTTPChannel`` in
  ``waitress.channel``, or a test's fake). ``WSGITask`` calls the application;
  ``ErrorTask`` answers a request the parser rejected.

Rules, in the words of SPEC §3.8-§3.11 and the decisions that override them:

1. The environ has exactly the keys of §3.8. Header values reach it as the parser decoded
   them: nothing but SP/HTAB was ever trimmed (CVE-2019-16789), so nothing is stripped here.
2. ``start_response`` validates before it changes anything; CR, LF (and NUL, SPEC B1 row 23)
   in the status or a header raise ``ValueError``; hop-by-hop headers and non-``str``
   values raise ``AssertionError``. Any of these before the head is sent becomes a 500.
3. The head goes out lazily: at the first non-empty body chunk, the first ``write()`` or the
   end of the response. Header names are normalised (each ``-`` part capitalised) and sorted.
4. Framing: an application Content-Length frames the body (excess is cut, a shortfall
   closes the connection); otherwise HTTP/1.1 is chunked and closes afterwards (waitress
   Q5), HTTP/1.0 is close-delimited. 1xx/204/304 never carry a body or a Content-Length and
   keep the connection when it would otherwise be kept (D5 Q4). A HEAD response has the
   head a GET would have and no body bytes (D5 Q3).
5. The response is only marked for closing here (``close_on_finish``); the connection's
   I/O side does the closing.
"""

from __future__ import annotations

import sys
import threading
import time
from collections import deque
from typing import (
    TYPE_CHECKING,
    Any,
    Callable,
    Deque,
    Dict,
    FrozenSet,
    Iterable,
    List,
    Optional,
    Protocol,
    Set,
    Tuple,
    Union,
)

from waitress.buffers import ReadOnlyFileBasedBuffer
from waitress.utilities import InternalServerError, build_http_date, logger, queue_logger

if TYPE_CHECKING:
    from types import TracebackType

    from _typeshed.wsgi import WSGIApplication, WSGIEnvironment

    from waitress.adjustments import Adjustments
    from waitress.parser import HTTPRequestParser

__all__ = [
    "ErrorTask",
    "Task",
    "ThreadedTaskDispatcher",
    "WSGITask",
    "hop_by_hop",
    "rename_headers",
]

#: Headers that describe one connection, not the response; PEP 3333 forbids an application
#: to set them (RFC 9110 §7.6.1). ``trailers`` is waitress 3.0.2's spelling (its main branch
#: and RFC 9110 say ``trailer``); kept so the same applications are accepted and rejected.
hop_by_hop: FrozenSet[str] = frozenset(
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

#: Request headers whose CGI name has no ``HTTP_`` prefix (PEP 3333, RFC 3875 §4.1).
rename_headers: Dict[str, str] = {
    "CONTENT_LENGTH": "CONTENT_LENGTH",
    "CONTENT_TYPE": "CONTENT_TYPE",
}

#: The detail of a 500 when tracebacks are not exposed (SPEC §3.11).
_GENERIC_500 = "The server encountered an unexpected internal server error"

_ExcInfo = Tuple[type, BaseException, Optional["TracebackType"]]
_OptExcInfo = Union[_ExcInfo, Tuple[None, None, None], None]


class _Task(Protocol):
    """What the dispatcher runs: the channel, in waitress and here."""

    def service(self) -> None: ...
    def cancel(self) -> None: ...


class _Server(Protocol):
    """The server attributes a task reads."""

    @property
    def application(self) -> WSGIApplication: ...
    @property
    def effective_port(self) -> object: ...
    @property
    def server_name(self) -> str: ...


class _Channel(Protocol):
    """The connection interface a task writes through (``waitress.channel.HTTPChannel``)."""

    @property
    def server(self) -> _Server: ...
    @property
    def adj(self) -> Adjustments: ...
    @property
    def addr(self) -> Any: ...
    def write_soon(self, data: Union[bytes, ReadOnlyFileBasedBuffer]) -> int: ...
    def check_client_disconnected(self) -> bool: ...


# --- the worker pool ------------------------------------------------------------------------


class ThreadedTaskDispatcher:
    """A fixed-size pool of daemon threads, ``waitress-0``, ``waitress-1``, ...

    All state is guarded by ``lock``; ``queue_cv`` wakes idle workers when a task arrives or
    threads must stop, ``thread_exit_cv`` tells ``shutdown`` that a worker has exited.
    Counting: ``threads`` holds the numbers of live workers, ``stop_count`` how many of them
    have been asked to exit, ``active_count`` how many are not waiting for work; so
    ``len(threads) - stop_count - active_count`` workers are idle. No thread exists until
    ``set_thread_count`` is called (SPEC D4: importing or constructing starts nothing).
    """

    stop_count = 0
    active_count = 0
    logger = logger
    queue_logger = queue_logger

    def __init__(self) -> None:
        self.threads: Set[int] = set()
        self.queue: Deque[_Task] = deque()
        self.lock = threading.Lock()
        self.queue_cv = threading.Condition(self.lock)
        self.thread_exit_cv = threading.Condition(self.lock)

    def start_new_thread(self, target: Callable[[int], object], thread_no: int) -> None:
        """Start ``target(thread_no)`` on a daemon thread named ``waitress-{thread_no}``."""
        thread = threading.Thread(
            target=target, name=f"waitress-{thread_no}", args=(thread_no,), daemon=True
        )
        thread.start()

    def handler_thread(self, thread_no: int) -> None:
        """A worker's life: take tasks until asked to stop, then leave ``threads``."""
        while True:
            with self.lock:
                while not self.queue and self.stop_count == 0:
                    self.active_count -= 1
                    self.queue_cv.wait()
                    self.active_count += 1
                if self.stop_count > 0:
                    # Stopping wins over queued work: shutdown() cancels what is left.
                    self.stop_count -= 1
                    self.active_count -= 1
                    self.threads.discard(thread_no)
                    self.thread_exit_cv.notify_all()
                    return
                task = self.queue.popleft()
            try:
                task.service()
            except BaseException:
                # A worker outlives any task: an app's SystemExit must not shrink the pool.
                self.logger.exception("Exception when servicing %r", task)

    def set_thread_count(self, count: int) -> None:
        """Grow or shrink the pool to ``count`` threads; shrinking lets running tasks end."""
        with self.lock:
            running = len(self.threads) - self.stop_count
            thread_no = 0
            while running < count:
                while thread_no in self.threads:
                    thread_no += 1
                self.threads.add(thread_no)
                # A new worker counts as active until it first waits for work.
                self.active_count += 1
                self.start_new_thread(self.handler_thread, thread_no)
                running += 1
            if running > count:
                self.stop_count += running - count
                self.queue_cv.notify_all()

    def add_task(self, task: _Task) -> None:
        """Queue ``task`` for the next idle worker.

        Logs ``Task queue depth is N`` on ``waitress.queue`` when the queue is longer than
        the number of idle workers (N is the difference, SPEC §3.15).
        """
        with self.lock:
            self.queue.append(task)
            self.queue_cv.notify()
            idle = len(self.threads) - self.stop_count - self.active_count
            depth = len(self.queue) - idle
            if depth > 0:
                self.queue_logger.warning("Task queue depth is %d", depth)

    def shutdown(self, cancel_pending: bool = True, timeout: float = 5) -> bool:
        """Stop every worker, waiting up to ``timeout`` seconds for running tasks.

        Workers still running then are left behind (they are daemon threads) with the
        warning ``N thread(s) still running``. With ``cancel_pending`` the tasks still
        queued are cancelled (``Canceling N pending task(s)``) and True is returned;
        otherwise they stay queued and False is returned.
        """
        self.set_thread_count(0)
        deadline = time.monotonic() + timeout
        with self.lock:
            while self.threads:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    self.logger.warning("%d thread(s) still running", len(self.threads))
                    break
                self.thread_exit_cv.wait(remaining)
            if not cancel_pending:
                return False
            pending = list(self.queue)
            self.queue.clear()
        if pending:
            self.logger.warning("Canceling %d pending task(s)", len(pending))
        for task in pending:
            # Outside the lock: cancel() takes the channel's own locks.
            task.cancel()
        return True


# --- response writers -----------------------------------------------------------------------


def _normalise_header_name(name: str) -> str:
    """``x-lower`` -> ``X-Lower``, ``ETag`` -> ``Etag`` (waitress Q10, kept)."""
    return "-".join(part.capitalize() for part in name.split("-"))


def _has_control(text: str, chars: str) -> bool:
    return any(c in text for c in chars)


class Task:
    """Writes one response for ``request`` through ``channel``.

    Subclasses implement ``execute()``; ``service()`` runs it between ``start()`` and
    ``finish()``. Until ``build_response_header()`` runs, ``status``/``response_headers``
    are what the application set; afterwards ``response_headers`` is the final list.
    """

    close_on_finish = False
    status = "200 OK"
    wrote_header = False
    start_time = 0.0
    content_length: Optional[int] = None
    content_bytes_written = 0
    logged_write_excess = False
    logged_write_no_body = False
    #: ``start_response`` has been called (``write()`` refuses data before that).
    complete = False
    chunked_response = False
    logger = logger

    def __init__(self, channel: _Channel, request: HTTPRequestParser) -> None:
        self.channel = channel
        self.request = request
        self.response_headers: List[Tuple[str, str]] = []
        self._has_body: Optional[bool] = None
        version = request.version
        self.version = version if version in ("1.0", "1.1") else "1.0"
        self.start_time = time.time()

    @property
    def has_body(self) -> bool:
        """Whether the status allows a body: not 1xx, 204 or 304 (RFC 9110 §6.4.1)."""
        if self._has_body is not None:
            return self._has_body
        status = self.status
        return not (status[:1] == "1" or status[:3] in ("204", "304"))

    @has_body.setter
    def has_body(self, value: bool) -> None:
        self._has_body = value

    @property
    def _sends_body(self) -> bool:
        # A HEAD response is the GET head without the body (RFC 9110 §9.3.2, D5 Q3).
        return self.has_body and self.request.command != "HEAD"

    def service(self) -> None:
        """Write the whole response; any exception propagates to the channel.

        waitress swallowed ``OSError`` here (to hide socket errors when
        ``log_socket_errors`` is off), which also hid an application's own
        ``FileNotFoundError``. Socket errors never reach a task here (the channel handles
        them), so an application's ``OSError`` is an application error like any other.
        """
        self.start()
        self.execute()
        self.finish()

    def start(self) -> None:
        """Record the time the ``Date`` header will carry."""
        self.start_time = time.time()

    def execute(self) -> None:
        """Produce the response (``start_response`` semantics and ``write()`` calls)."""
        raise NotImplementedError

    def finish(self) -> None:
        """Send the head if nothing was written, and the last chunk of a chunked body."""
        if not self.wrote_header:
            self.write(b"")
        if self.chunked_response and self._sends_body:
            self.channel.write_soon(b"0\r\n\r\n")

    def cancel(self) -> None:
        """The dispatcher is shutting down before this task ran: close afterwards."""
        self.close_on_finish = True

    def defer(self) -> None:
        """Part of waitress's task interface; nothing to do."""

    def set_close_on_finish(self) -> None:
        """Close the connection after this response."""
        self.close_on_finish = True

    def remove_content_length_header(self) -> None:
        """Drop every Content-Length the application set (any spelling)."""
        self.response_headers = [
            (name, value)
            for name, value in self.response_headers
            if name.lower() != "content-length"
        ]

    def build_response_header(self) -> bytes:
        """Decide framing and persistence and return the response head (SPEC §3.7, §3.10).

        Adds Content-Length (when ``content_length`` is known but was not a header),
        ``Transfer-Encoding: chunked``, ``Connection``, ``Server``/``Via`` and ``Date``;
        sets ``chunked_response`` and ``close_on_finish`` accordingly.
        """
        headers = self._normalised_headers()
        present = {name for name, _ in headers}
        self._add_framing(headers, "Content-Length" in present, "Connection" in present)
        ident = self.channel.adj.ident
        if "Server" in present:
            headers.append(("Via", ident or "waitress"))
        elif ident:
            headers.append(("Server", ident))
        if "Date" not in present:
            headers.append(("Date", build_http_date(self.start_time)))

        headers.sort(key=lambda header: header[0])  # stable: Set-Cookie order is kept
        self.response_headers = headers
        lines = [f"HTTP/{self.version} {self.status}"]
        lines.extend(f"{name}: {value}" for name, value in headers)
        # PEP 3333: header text is latin-1; anything else fails here, before a byte is sent.
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    def _normalised_headers(self) -> List[Tuple[str, str]]:
        """The application's headers with normalised names; a status without content
        loses its Content-Length (RFC 9110 §8.6), and a known length not given as a header
        gains one."""
        bodiless = not self.has_body
        headers: List[Tuple[str, str]] = []
        has_length = False
        for raw_name, value in self.response_headers:
            name = _normalise_header_name(raw_name)
            if name == "Content-Length":
                if bodiless:
                    continue
                has_length = True
            headers.append((name, value))
        if bodiless:
            self.content_length = None
        elif self.content_length is not None and not has_length:
            headers.append(("Content-Length", str(self.content_length)))
        return headers

    def _add_framing(
        self, headers: List[Tuple[str, str]], has_length: bool, has_connection: bool
    ) -> None:
        """Add Transfer-Encoding and Connection as persistence requires (SPEC §3.7)."""
        request = self.request
        asked = request.headers.get("CONNECTION", "").lower()
        length_known = has_length or not self.has_body
        if self.version == "1.1":
            keep_alive = asked != "close" and not request.connection_close
            if not length_known:
                # RFC 9112 §7: chunked; waitress closes after a chunked response (Q5).
                headers.append(("Transfer-Encoding", "chunked"))
                self.chunked_response = True
                keep_alive = False
        else:
            # HTTP/1.0 keeps the connection only when asked to and the length is known.
            keep_alive = asked == "keep-alive" and length_known
        if self.close_on_finish:
            keep_alive = False
        if not keep_alive:
            self.close_on_finish = True
            if not has_connection:
                headers.append(("Connection", "close"))
        elif self.version == "1.0":
            headers.append(("Connection", "Keep-Alive"))

    def write(self, data: bytes) -> None:
        """Send body bytes (the WSGI ``write`` callable); the first call sends the head."""
        if not self.complete:
            raise RuntimeError("start_response was not called before body written")
        if not isinstance(data, bytes):
            raise TypeError(f"WSGI response body must be bytes, not {type(data).__name__}")
        channel = self.channel
        if not self.wrote_header:
            head = self.build_response_header()
            channel.write_soon(head)
            self.wrote_header = True
        if not data:
            return
        if not self.has_body:
            # Counted as written so the length check stays quiet; nothing is sent.
            self.content_bytes_written += len(data)
            if not self.logged_write_no_body:
                self.logger.warning(
                    "application-written content was ignored due to HTTP response that "
                    "may not contain a message-body: (%s)",
                    self.status,
                )
                self.logged_write_no_body = True
            return
        limit = self.content_length
        if limit is not None:
            room = max(limit - self.content_bytes_written, 0)
            if len(data) > room:
                data = data[:room]
                if not self.logged_write_excess:
                    self.logger.warning(
                        "application-written content exceeded the number of bytes "
                        "specified by Content-Length header (%s)",
                        limit,
                    )
                    self.logged_write_excess = True
        self.content_bytes_written += len(data)
        if not data or not self._sends_body:
            return
        if self.chunked_response:
            data = b"%X\r\n%b\r\n" % (len(data), data)
        channel.write_soon(data)


class ErrorTask(Task):
    """Answers a request the parser rejected with ``request.error`` (SPEC §3.11).

    The response is the error's own (``Connection: close``, Content-Length, Content-Type,
    then Date and Server), and the connection closes after it.
    """

    complete = True

    def execute(self) -> None:
        error = self.request.error
        if error is None:
            error = InternalServerError(_GENERIC_500)
        status, headers, body = error.to_response(self.channel.adj.ident)
        self.status = status
        self.response_headers.extend(headers)
        self.content_length = len(body)
        self.set_close_on_finish()
        self.write(body)


def _known_length(app_iter: object) -> Optional[int]:
    try:
        return len(app_iter)  # type: ignore[arg-type]
    except TypeError:
        return None


class WSGITask(Task):
    """Calls the WSGI application for one request (PEP 3333, SPEC §3.8-§3.10)."""

    environ: Optional[WSGIEnvironment] = None

    def get_environment(self) -> WSGIEnvironment:
        """Build (once) and return the environ of SPEC §3.8."""
        if self.environ is not None:
            return self.environ
        request = self.request
        channel = self.channel
        server = channel.server
        adj = channel.adj
        prefix = adj.url_prefix
        path = request.path
        if path.startswith("/"):
            path = "/" + path.lstrip("/")  # a leading run of slashes is one slash
        if prefix:
            if path == prefix:
                path = ""
            elif path.startswith(prefix + "/"):
                path = path[len(prefix) :]
        addr = channel.addr
        environ: WSGIEnvironment = {
            "REQUEST_METHOD": request.command.upper(),
            "SCRIPT_NAME": prefix,
            "PATH_INFO": path,
            "QUERY_STRING": request.query,
            "REQUEST_URI": request.request_uri,
            "SERVER_PROTOCOL": f"HTTP/{self.version}",
            "SERVER_NAME": server.server_name,
            "SERVER_PORT": str(server.effective_port),
            "SERVER_SOFTWARE": adj.ident,
            "REMOTE_ADDR": addr[0],
            "REMOTE_HOST": addr[0],
            "REMOTE_PORT": str(addr[1]),
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": request.url_scheme,
            "wsgi.input": request.get_body_stream(),
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": True,
            "wsgi.multiprocess": False,
            "wsgi.run_once": False,
            "wsgi.file_wrapper": ReadOnlyFileBasedBuffer,
            "wsgi.input_terminated": True,
            "waitress.client_disconnected": channel.check_client_disconnected,
        }
        for key, value in request.headers.items():
            name = rename_headers.get(key, "HTTP_" + key)
            # Header-derived keys never replace what the server set.
            environ.setdefault(name, value)
        self.environ = environ
        return environ

    def _start_response(
        self,
        status: str,
        headers: List[Tuple[str, str]],
        exc_info: _OptExcInfo = None,
    ) -> Callable[[bytes], object]:
        if exc_info and exc_info[1] is not None:
            try:
                if self.wrote_header:
                    # Too late to change the response: the caller's error ends it.
                    raise exc_info[1].with_traceback(exc_info[2])
            finally:
                exc_info = None  # break the frame -> traceback -> frame cycle (PEP 3333)
        elif self.complete:
            raise AssertionError("start_response called a second time without providing exc_info.")
        if not isinstance(status, str):
            raise AssertionError(f"status {status!r} is not a string")
        if _has_control(status, "\r\n"):
            raise ValueError("carriage return/line feed character present in status")
        if "\0" in status:
            raise ValueError("NUL character present in status")
        content_length = None
        for header in headers:
            name, value = header
            if not isinstance(name, str):
                raise AssertionError(f"Header name {name!r} is not a string in {header!r}")
            if not isinstance(value, str):
                raise AssertionError(f"Header value {value!r} is not a string in {header!r}")
            if _has_control(value, "\r\n"):
                raise ValueError("carriage return/line feed character present in header value")
            if _has_control(name, "\r\n"):
                raise ValueError("carriage return/line feed character present in header name")
            if "\0" in name or "\0" in value:
                raise ValueError("NUL character present in header")
            lowered = name.lower()
            if lowered == "content-length":
                content_length = int(value)
            elif lowered in hop_by_hop:
                raise AssertionError(
                    f'{name} is a "hop-by-hop" header; it cannot be used by a WSGI '
                    "application (see PEP 3333)"
                )
        # Valid: replace whatever an earlier (exc_info) call had set.
        self.status = status
        self.response_headers = list(headers)
        self.content_length = content_length
        self.complete = True
        return self.write

    def _send_file(self, wrapper: ReadOnlyFileBasedBuffer) -> bool:
        """Hand a seekable ``wsgi.file_wrapper`` to the channel without copying it.

        Returns False (the caller iterates instead) when the file cannot be measured or
        has nothing left. The length sent is what is left of the file, capped at the
        application's Content-Length; a larger Content-Length is replaced (SPEC §3.12).
        """
        declared = self.content_length
        size = wrapper.prepare(declared)
        if not size:
            return False
        if declared != size:
            if declared is not None:
                self.remove_content_length_header()
            self.content_length = size
        self.write(b"")  # the head
        if not self._sends_body:
            return False  # nothing to send: the caller closes the file
        self.channel.write_soon(wrapper)
        self.content_bytes_written += size
        return True

    def execute(self) -> None:
        environ = self.get_environment()
        app_iter: Iterable[bytes] = self.channel.server.application(environ, self._start_response)
        handed_over = False
        try:
            if isinstance(app_iter, ReadOnlyFileBasedBuffer) and self.complete:
                handed_over = self._send_file(app_iter)
                if self.wrote_header:
                    return
            first = True
            for chunk in app_iter:
                if first:
                    first = False
                    # A one-item iterable gives its length (PEP 3333 allows it), unless
                    # the head is already out (write() was used: waitress Q9).
                    if (
                        self.content_length is None
                        and not self.wrote_header
                        and _known_length(app_iter) == 1
                    ):
                        self.content_length = len(chunk)
                if chunk:
                    self.write(chunk)
            self._check_length()
        finally:
            close = getattr(app_iter, "close", None)
            if close is not None and not handed_over:
                close()

    def _check_length(self) -> None:
        declared = self.content_length
        if declared is None or self.content_bytes_written >= declared:
            return
        if self.request.command == "HEAD":
            return  # a HEAD response has no body to fall short of
        # The client would wait for bytes that never come: end the connection.
        self.close_on_finish = True
        self.logger.warning(
            "application returned too few bytes (%s) for specified Content-Length (%s) "
            "via app_iter",
            self.content_bytes_written,
            declared,
        )
