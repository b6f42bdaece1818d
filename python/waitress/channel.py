"""One HTTP connection (waitress's ``waitress.channel``).

In waitress-rs the server's connections live in Rust (``crates/server``); this module keeps
waitress's ``HTTPChannel`` as a real, working Python object for the code and tests that
import it (SPEC §1.11, §A6). It is a plain object over a non-blocking socket, driven from
outside the way an ``asyncore`` loop drives a dispatcher: whoever owns the socket calls
``handle_read()`` when ``readable()`` and the socket has data, ``handle_write()`` when
``writable()``, and a worker (``ThreadedTaskDispatcher``) calls ``service()``, which runs
the queued requests one at a time.

Rules (SPEC §3.1, §3.6, §3.7, §3.13, B1 row 21):

1. Requests are answered strictly in order; the channel itself is the queued task and
   re-queues itself (``server.add_task(self)``) while requests remain.
2. Once the connection is going to close (an error, ``Connection: close``, a response that
   closes, a cancelled queue), no further byte is parsed and queued requests are dropped
   (the CVE-2024-49768 fix). A request that is certain to close the connection stops the
   parsing of whatever follows it in the same read.
3. Only the I/O side (``handle_write``/``handle_close``) closes the socket (CVE-2022-31015).
   Workers append to the output buffers and may send directly without blocking; a worker
   whose connection holds more than ``outbuf_high_watermark`` unsent bytes waits.
4. ``HTTP/1.1 100 Continue`` is sent once the head of a request that asked for it is in,
   when no earlier request is still pending and the body is still to come (D5 Q1/Q2).
5. A client that half-closes after sending its requests is still answered (D5 Q12);
   ``check_client_disconnected()`` is true from that EOF on, as in waitress.
"""

from __future__ import annotations

import errno
import socket
import threading
import time
import traceback
from typing import (
    TYPE_CHECKING,
    Any,
    Callable,
    Dict,
    List,
    MutableMapping,
    Optional,
    Protocol,
    Type,
    Union,
)

from waitress.buffers import OverflowableBuffer, ReadOnlyFileBasedBuffer
from waitress.parser import HTTPRequestParser
from waitress.task import _GENERIC_500, ErrorTask, Task, WSGITask
from waitress.utilities import InternalServerError, logger

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication

    from waitress.adjustments import Adjustments

__all__ = ["ClientDisconnected", "HTTPChannel"]


class ClientDisconnected(Exception):
    """The peer has gone: raised into the application's ``write()`` or iteration path."""


#: The interim response of RFC 9110 §15.2.1, exactly as waitress sends it.
CONTINUE_RESPONSE = b"HTTP/1.1 100 Continue\r\n\r\n"

#: ``send()`` errors that only mean the peer has gone; they are not logged.
_DISCONNECTED = frozenset(
    {
        errno.ECONNRESET,
        errno.ENOTCONN,
        errno.ESHUTDOWN,
        errno.ECONNABORTED,
        errno.EPIPE,
        errno.EBADF,
    }
)

_OutBuffer = Union[OverflowableBuffer, ReadOnlyFileBasedBuffer]


class _Server(Protocol):
    """What a channel needs from its server (``waitress.server.BaseWSGIServer``)."""

    @property
    def application(self) -> WSGIApplication: ...
    @property
    def effective_port(self) -> object: ...
    @property
    def server_name(self) -> str: ...
    def add_task(self, task: HTTPChannel) -> None: ...


class HTTPChannel:
    """One client connection: parses requests, queues them, buffers and sends responses.

    ``server`` supplies ``application``, ``effective_port``, ``server_name`` and
    ``add_task(channel)`` (and optionally ``pull_trigger()`` to wake its I/O loop and an
    ``active_channels`` dict). ``map``, when given, is an asyncore-style socket map: the
    channel registers under its file descriptor and removes itself when closed.
    """

    task_class: Type[Task] = WSGITask
    error_task_class: Type[Task] = ErrorTask
    parser_class: Type[HTTPRequestParser] = HTTPRequestParser

    request: Optional[HTTPRequestParser] = None
    last_activity = 0.0
    will_close = False
    close_when_flushed = False
    sent_continue = False
    total_outbufs_len = 0
    current_outbuf_count = 0
    connected = False
    logger = logger

    def __init__(
        self,
        server: _Server,
        sock: socket.socket,
        addr: Any,
        adj: Adjustments,
        map: Optional[MutableMapping[int, Any]] = None,
    ) -> None:
        self.server = server
        self.socket = sock
        self.addr = addr
        self.adj = adj
        self.outbufs: List[_OutBuffer] = [OverflowableBuffer(adj.outbuf_overflow)]
        self.creation_time = self.last_activity = time.time()
        self.sendbuf_len = sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)
        self.requests: List[HTTPRequestParser] = []
        self.requests_lock = threading.Lock()
        self.outbuf_lock = threading.Condition()
        # No further request will arrive: the peer sent EOF, or a queued request closes.
        self._read_done = False
        self._eof = False
        self._closed = False
        sock.setblocking(False)
        self._fileno = sock.fileno()
        self._map = map
        if map is not None:
            map[self._fileno] = self
        active: Optional[Dict[int, HTTPChannel]] = getattr(server, "active_channels", None)
        if active is not None:
            active[self._fileno] = self
        self.connected = True

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.addr!r} fd={self._fileno}>"

    def fileno(self) -> int:
        """The socket's file descriptor when the channel was made (the map key)."""
        return self._fileno

    # --- readiness (asked by whatever drives the socket) ------------------------------------

    def readable(self) -> bool:
        """Read more only if it could lead to a request we may run (SPEC §3.7): not once
        the connection is closing, not while more than ``channel_request_lookahead``
        requests wait, and not while a response is still being sent."""
        return (
            self.connected
            and not self._read_done
            and not self.will_close
            and not self.close_when_flushed
            and len(self.requests) <= self.adj.channel_request_lookahead
            and not self.total_outbufs_len
        )

    def writable(self) -> bool:
        """There is output to send, or the connection has something left to close."""
        return bool(
            self.total_outbufs_len
            or self.will_close
            or self.close_when_flushed
            or (self._eof and not self.requests)
        )

    # --- input ------------------------------------------------------------------------------

    def handle_read(self) -> None:
        """Receive up to ``recv_bytes`` and parse them; EOF ends reading."""
        try:
            data = self.socket.recv(self.adj.recv_bytes)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            if self.adj.log_socket_errors:
                self.logger.exception("Socket error")
            self.handle_close()
            return
        if data:
            self.last_activity = time.time()
            self.received(data)
            return
        # EOF. The peer may only have shut down its sending side (D5 Q12): answer what it
        # sent, then close. A partly received request can never complete: drop it.
        self._eof = True
        self._read_done = True
        with self.requests_lock:
            partial, self.request = self.request, None
        if partial is not None:
            partial.close()
        if not self.requests and not self.total_outbufs_len:
            self.handle_close()

    def received(self, data: bytes) -> bool:
        """Parse ``data``; queue every request it completes. Returns False when the data
        was refused because the connection is closing (CVE-2024-49768)."""
        if not data:
            return False
        start_service = refused = False
        with self.requests_lock:
            while data:
                if self._read_done or self.will_close or self.close_when_flushed:
                    refused = True
                    break
                request = self.request
                if request is None:
                    request = self.request = self.parser_class(self.adj)
                    self.sent_continue = False
                consumed = request.received(data)
                if not request.completed:
                    if self._may_continue(request):
                        self.send_continue()
                    if consumed <= 0:
                        break
                else:
                    self.request = None
                    if not request.empty:
                        self.requests.append(request)
                        start_service = start_service or len(self.requests) == 1
                        if request.error is not None or _closes_connection(request):
                            # Nothing after this request will be answered (RFC 9112 §9.6).
                            self._read_done = True
                data = data[consumed:]
        if start_service:
            self.server.add_task(self)
        return not refused

    def _may_continue(self, request: HTTPRequestParser) -> bool:
        # Caller holds requests_lock. The body is still to come and nothing earlier is
        # pending: the client may be waiting for our go-ahead (RFC 9110 §10.1.1).
        return (
            request.expect_continue
            and request.headers_finished
            and not request.completed
            and request.error is None
            and not self.sent_continue
            and not self.requests
        )

    # --- running requests (worker threads) --------------------------------------------------

    def service(self) -> None:
        """Answer the first queued request, then re-queue the channel if more wait."""
        with self.requests_lock:
            if not self.requests:
                return
            request = self.requests[0]
        task: Optional[Task] = None
        try:
            with self.outbuf_lock:
                # Drain earlier responses below the watermark before starting this one.
                self._wait_for_output_room()
            task = self._run_task(request)
        except ClientDisconnected:
            pass  # gone before its turn came: nothing to answer, nothing to log
        finally:
            close = task is None or task.close_on_finish
            requeue = self._request_done(request, close)
            self._flush_from_worker()
            self.last_activity = time.time()
        if requeue:
            self.server.add_task(self)

    def _run_task(self, request: HTTPRequestParser) -> Task:
        if request.error is not None:
            task = self.error_task_class(self, request)
        else:
            task = self.task_class(self, request)
        try:
            if self.connected:
                task.service()
            else:
                task.close_on_finish = True
        except ClientDisconnected:
            self.logger.info("Client disconnected while serving %s", request.path)
            task.close_on_finish = True
        except Exception:
            self.logger.exception("Exception while serving %s", request.path)
            if task.wrote_header:
                # Too late for an error response: cut the response short.
                task.close_on_finish = True
            else:
                task = self._internal_error(request)
        return task

    def _internal_error(self, request: HTTPRequestParser) -> Task:
        """Answer 500 for a request whose application failed before sending its head."""
        if self.adj.expose_tracebacks:
            body = traceback.format_exc()
        else:
            body = _GENERIC_500
        error_request = self.parser_class(self.adj)
        error_request.error = InternalServerError(body)
        error_request.version = request.version
        error_request.command = request.command
        error_request.path = request.path
        connection = request.headers.get("CONNECTION")
        if connection is not None:
            error_request.headers["CONNECTION"] = connection
        task = self.error_task_class(self, error_request)
        try:
            task.service()
        except ClientDisconnected:
            task.close_on_finish = True
        return task

    def _request_done(self, request: HTTPRequestParser, close: bool) -> bool:
        """Retire ``request``; on ``close`` drop everything queued after it. Returns True if
        another request is waiting."""
        with self.requests_lock:
            if close:
                self.close_when_flushed = True
                self._read_done = True
                dropped, self.requests = self.requests, []
                partial, self.request = self.request, None
            else:
                if self.requests and self.requests[0] is request:
                    self.requests.pop(0)
                dropped, partial = [request], None
                pending = self.request
                if not self.requests and pending is not None and self._may_continue(pending):
                    # The 100 Continue deferred while earlier requests were pending.
                    self.send_continue()
            requeue = bool(self.requests)
        for finished in dropped:
            finished.close()
        if partial is not None:
            partial.close()
        return requeue

    def cancel(self) -> None:
        """Drop every queued request (the dispatcher is shutting down): the connection
        closes without answering them."""
        with self.requests_lock:
            dropped, self.requests = self.requests, []
            self.will_close = True
            self._read_done = True
        for request in dropped:
            request.close()

    def check_client_disconnected(self) -> bool:
        """``environ["waitress.client_disconnected"]``: True once the peer's EOF or a socket
        error has been seen. EOF is only noticed while the channel reads, i.e. during a
        request only with ``channel_request_lookahead > 0`` (SPEC §3.13)."""
        return not self.connected or self._eof

    # --- output -----------------------------------------------------------------------------

    def write_soon(self, data: Union[bytes, ReadOnlyFileBasedBuffer]) -> int:
        """Queue response bytes (or a ``wsgi.file_wrapper``, sent without copying); returns
        the byte count. Blocks while more than ``outbuf_high_watermark`` bytes are unsent;
        raises ``ClientDisconnected`` once the connection is gone."""
        if not self.connected:
            raise ClientDisconnected
        size = len(data)
        if not size:
            return 0
        with self.outbuf_lock:
            if isinstance(data, ReadOnlyFileBasedBuffer):
                self.outbufs.append(data)
                self._new_outbuf()
            else:
                if self.current_outbuf_count >= self.adj.outbuf_high_watermark:
                    # Rotate, so a long response's sent part can be released (SPEC §3.14).
                    self._new_outbuf()
                self._writable_outbuf().append(data)
                self.current_outbuf_count += size
            self.total_outbufs_len += size
            self._wait_for_output_room()
        self._pull_trigger()
        return size

    def send_continue(self) -> None:
        """Queue ``HTTP/1.1 100 Continue`` ahead of anything else still to be written."""
        with self.outbuf_lock:
            self._writable_outbuf().append(CONTINUE_RESPONSE)
            self.total_outbufs_len += len(CONTINUE_RESPONSE)
            self.current_outbuf_count += len(CONTINUE_RESPONSE)
        self.sent_continue = True
        self._pull_trigger()

    def _new_outbuf(self) -> None:
        self.outbufs.append(OverflowableBuffer(self.adj.outbuf_overflow))
        self.current_outbuf_count = 0

    def _writable_outbuf(self) -> OverflowableBuffer:
        last = self.outbufs[-1]
        if isinstance(last, OverflowableBuffer):
            return last
        self._new_outbuf()
        fresh = self.outbufs[-1]
        assert isinstance(fresh, OverflowableBuffer)  # noqa: S101 (just appended)
        return fresh

    def _wait_for_output_room(self) -> None:
        """Caller holds ``outbuf_lock``. Send directly, or wait for the I/O side, until at
        most ``outbuf_high_watermark`` bytes are unsent (SPEC §3.14 backpressure)."""
        while self.connected and self.total_outbufs_len > self.adj.outbuf_high_watermark:
            if not self._flush_some():
                self._pull_trigger()
                self.outbuf_lock.wait(0.05)
        if not self.connected:
            raise ClientDisconnected

    def _flush_from_worker(self) -> None:
        """After a response: send what the socket takes now, without waiting for a lock
        the I/O side holds; then wake the I/O side for the rest."""
        if self.outbuf_lock.acquire(blocking=False):
            try:
                if self.connected and self.total_outbufs_len:
                    self._flush_some()
            finally:
                self.outbuf_lock.release()
        self._pull_trigger()

    def _send(self, data: bytes) -> int:
        """One non-blocking send; 0 when the socket is full or the peer has gone."""
        try:
            return self.socket.send(data)
        except (BlockingIOError, InterruptedError):
            return 0
        except OSError as exc:
            if exc.errno not in _DISCONNECTED and self.adj.log_socket_errors:
                self.logger.exception("Socket error")
            # Mark only: the I/O side closes the socket (CVE-2022-31015).
            self.will_close = True
            self.connected = False
            return 0

    def _flush_some(self) -> bool:
        """Caller holds ``outbuf_lock``. Send buffered output in ``SO_SNDBUF``-sized pieces
        until the socket is full or nothing is left; True if anything was sent."""
        sent_any = False
        while self.outbufs:
            outbuf = self.outbufs[0]
            while len(outbuf):
                chunk = outbuf.get(self.sendbuf_len)
                sent = self._send(chunk)
                if not sent:
                    if sent_any:
                        self.last_activity = time.time()
                    return sent_any
                outbuf.skip(sent, True)
                self.total_outbufs_len -= sent
                sent_any = True
            if len(self.outbufs) == 1:
                break  # the last buffer stays, to take the next response
            done = self.outbufs.pop(0)
            try:
                done.close()  # closes a file_wrapper's file once it is sent
            except Exception:
                self.logger.exception("Unexpected error when closing an output buffer")
        if sent_any:
            self.last_activity = time.time()
        return sent_any

    def handle_write(self) -> None:
        """Send what the socket takes; close once everything owed has been sent."""
        with self.outbuf_lock:
            if self.connected and self.total_outbufs_len:
                self._flush_some()
            self.outbuf_lock.notify_all()  # a worker may be waiting for room
            flushed = not self.total_outbufs_len
        if flushed and (self.close_when_flushed or (self._eof and not self.requests)):
            self.will_close = True
        if self.will_close or not self.connected:
            self.handle_close()

    def _pull_trigger(self) -> None:
        pull: Optional[Callable[[], object]] = getattr(self.server, "pull_trigger", None)
        if pull is not None:
            pull()

    # --- closing (I/O side only) ------------------------------------------------------------

    def handle_close(self) -> None:
        """Close the socket and release every buffer; a waiting writer gets
        ``ClientDisconnected``. Safe to call more than once, from any thread."""
        with self.outbuf_lock:
            for outbuf in self.outbufs:
                try:
                    outbuf.close()
                except Exception:
                    self.logger.exception("Unexpected error when closing an output buffer")
            self.outbufs = [OverflowableBuffer(self.adj.outbuf_overflow)]
            self.total_outbufs_len = 0
            self.current_outbuf_count = 0
            self.connected = False
            self.outbuf_lock.notify_all()
        with self.requests_lock:
            partial, self.request = self.request, None
            self._read_done = True
        if partial is not None:
            partial.close()
        self.close()

    def close(self) -> None:
        """Close the socket and leave the socket map (the asyncore ``dispatcher.close``)."""
        if self._closed:
            return
        self._closed = True
        self.connected = False
        if self._map is not None and self._map.get(self._fileno) is self:
            del self._map[self._fileno]
        active: Optional[Dict[int, HTTPChannel]] = getattr(self.server, "active_channels", None)
        if active is not None and active.get(self._fileno) is self:
            del active[self._fileno]
        try:
            self.socket.close()
        except OSError:
            if self.adj.log_socket_errors:
                self.logger.exception("Socket error")


def _closes_connection(request: HTTPRequestParser) -> bool:
    """The request itself decides that its response is the connection's last one."""
    asked = request.headers.get("CONNECTION", "").lower()
    if request.version == "1.1":
        return asked == "close" or request.connection_close
    return asked != "keep-alive"
