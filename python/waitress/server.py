"""The server classes (waitress's ``waitress.server``), served by the Rust core.

Python binds, Rust serves (docs/design.md): each server object binds its real Python socket
in ``__init__`` (so ``getsockname()`` and ``effective_port`` work at once, SPEC D3);
``run()`` hands the listening descriptors to ``waitress._core.Server``, which runs the I/O
thread and the worker threads for that run only (SPEC D4) and calls back into
``_dispatch`` on a worker thread for each complete request. ``close()`` from another
thread makes ``run()`` return; Ctrl-C and SIGTERM stop it gracefully (SPEC D7).
"""

from __future__ import annotations

import os
import signal
import socket
import stat
import threading
from types import FrameType
from typing import Any, Callable, Optional, Union

from waitress import _core
from waitress.adjustments import Adjustments
from waitress.channel import HTTPChannel
from waitress.compat import IPPROTO_IPV6, IPV6_V6ONLY
from waitress.proxy_headers import proxy_headers_middleware
from waitress.task import ThreadedTaskDispatcher
from waitress.utilities import cleanup_unix_socket, logger

WSGIApp = Callable[..., Any]
SocketMap = dict[int, Any]

_GENERIC_500 = "The server encountered an unexpected internal server error"


class _AsyncoreShim:
    """The part of waitress's ``wasyncore`` third-party code calls (SPEC §A6): ``loop``
    serves the servers in ``map`` until ``handle_close()`` has removed them all."""

    @staticmethod
    def loop(
        timeout: float = 30.0,
        use_poll: bool = False,
        map: Optional[SocketMap] = None,
        count: Optional[int] = None,
    ) -> None:
        servers = [obj for obj in (map or {}).values() if isinstance(obj, BaseWSGIServer)]
        if servers:
            _run_servers(servers, servers[0].task_dispatcher)


def _regular_file_descriptor(file: Any) -> Optional[int]:
    """The descriptor of ``file`` when it is a regular file on disk, else None (the Rust
    core then sends a ``wsgi.file_wrapper`` with sendfile, SPEC §3.12)."""
    try:
        fd = file.fileno()
        return fd if stat.S_ISREG(os.fstat(fd).st_mode) else None
    except (AttributeError, OSError, ValueError):
        return None


def _sites(servers: list[BaseWSGIServer]) -> list[tuple[Any, ...]]:
    """What the Rust core needs of each listener to build the environ (SPEC §3.8). An
    application wrapped by the proxy-headers middleware only to drop the untrusted proxy
    headers (no ``trusted_proxy``, nothing logged) is passed unwrapped, with the flag that
    has the core leave those headers out of the environ: the same environ, without a
    Python call per request."""
    sites = []
    for server in servers:
        app = server.application
        inner = getattr(app, "drops_proxy_headers_of", None)
        sites.append(
            (
                app if inner is None else inner,
                inner is not None,
                server.server_name,
                str(server.effective_port),
                server.adj.url_scheme,
                server.adj.url_prefix,
                server.adj.ident,
                server.adj.expose_tracebacks,
            )
        )
    return sites


def _raise_open_file_limit() -> None:
    """SPEC D6: raise the soft RLIMIT_NOFILE to the hard limit, so ``connection_limit``
    (2048 by default) is not cut short by a distribution's default of 1024."""
    try:
        import resource
    except ImportError:  # pragma: no cover - not POSIX
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError):
            logger.debug("could not raise RLIMIT_NOFILE from %s to %s", soft, target)


def _run_servers(servers: list[BaseWSGIServer], dispatcher: ThreadedTaskDispatcher) -> None:
    """Serve ``servers`` on one Rust core until closed, Ctrl-C or SIGTERM."""
    _raise_open_file_limit()
    adj = servers[0].adj
    threads = len(dispatcher.threads) or adj.threads
    core = _core.Server(
        [(s.socket.fileno(), s.family == getattr(socket, "AF_UNIX", None)) for s in servers],
        _sites(servers),
        threads=threads,
        connection_limit=adj.connection_limit,
        channel_request_lookahead=adj.channel_request_lookahead,
        header_timeout=float(adj.header_timeout),
        channel_timeout=float(adj.channel_timeout),
        inbuf_overflow=adj.inbuf_overflow,
        shutdown_timeout=float(adj.shutdown_timeout),
        ident=adj.ident or None,
        recv_bytes=adj.recv_bytes,
        log_socket_errors=adj.log_socket_errors,
        outbuf_overflow=adj.outbuf_overflow,
        outbuf_high_watermark=adj.outbuf_high_watermark,
        max_request_header_size=adj.max_request_header_size,
        max_request_body_size=adj.max_request_body_size,
        max_request_line=adj.max_request_line,
        max_request_headers=adj.max_request_headers,
    )
    for server in servers:
        with server._lock:
            if server._closed:
                return
            server._core = core
    previous: Any = None
    in_main = threading.current_thread() is threading.main_thread()
    if in_main:

        def on_sigterm(signum: int, frame: Optional[FrameType]) -> None:
            raise SystemExit(0)

        previous = signal.signal(signal.SIGTERM, on_sigterm)

    def on_stop() -> None:
        # SPEC D7: stop listening as the stop begins (the Rust core drops its own copies).
        for server in servers:
            server.socket.close()

    try:
        core.run(on_stop)
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        if in_main:
            signal.signal(signal.SIGTERM, previous)
        for server in servers:
            with server._lock:
                server._core = None
        dispatcher.shutdown()


class BaseWSGIServer:
    """One listening socket served by the Rust core (SPEC §1.3, D3)."""

    channel_class = HTTPChannel
    socketmod = socket
    asyncore = _AsyncoreShim
    family: int = socket.AF_INET
    socktype: int = socket.SOCK_STREAM
    next_channel_cleanup = 0
    in_connection_overflow = False

    def __init__(
        self,
        application: WSGIApp,
        map: Optional[SocketMap] = None,
        _start: bool = True,
        _sock: Optional[socket.socket] = None,
        dispatcher: Optional[ThreadedTaskDispatcher] = None,
        adj: Optional[Adjustments] = None,
        sockinfo: Optional[tuple[Any, ...]] = None,
        bind_socket: bool = True,
        **kw: Any,
    ) -> None:
        if adj is None:
            adj = Adjustments(**kw)
        if adj.trusted_proxy or adj.clear_untrusted_proxy_headers:
            application = proxy_headers_middleware(
                application,
                trusted_proxy=adj.trusted_proxy,
                trusted_proxy_count=adj.trusted_proxy_count,
                trusted_proxy_headers=adj.trusted_proxy_headers,
                clear_untrusted=adj.clear_untrusted_proxy_headers,
                log_untrusted=adj.log_untrusted_proxy_headers,
                logger=logger,
            )
        if map is None:
            map = {}
        if sockinfo is None:
            sockinfo = self.default_sockinfo(adj)
        self.application = application
        self.adj = adj
        self._map = map
        self.sockinfo = sockinfo
        self.family, self.socktype = sockinfo[0], sockinfo[1]
        self._lock = threading.Lock()
        self._closed = False
        self._core: Optional[_core.Server] = None
        self.trigger = None
        self.accepting = False
        self.active_channels: dict[int, Any] = {}
        self.logger = logger
        self.task_dispatcher = dispatcher if dispatcher is not None else ThreadedTaskDispatcher()
        if _sock is None:
            _sock = socket.socket(self.family, self.socktype)
            if self.family == socket.AF_INET6:
                _sock.setsockopt(IPPROTO_IPV6, IPV6_V6ONLY, 1)
        self.socket = _sock
        if self.family != getattr(socket, "AF_UNIX", None):
            self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if bind_socket:
            self.bind_server_socket()
        self.effective_host, self.effective_port = self.getsockname()
        self.server_name = adj.server_name
        self._map[self.socket.fileno()] = self
        if _start:
            self.accept_connections()

    def default_sockinfo(self, adj: Adjustments) -> tuple[Any, ...]:
        """The ``(family, type, proto, address)`` to listen on when none is given."""
        return tuple(adj.listen[0])

    def bind_server_socket(self) -> None:
        """Bind the listening socket to its address."""
        raise NotImplementedError

    def getsockname(self) -> tuple[Any, Any]:
        """The address the socket listens on, as waitress reports it."""
        raise NotImplementedError

    def accept_connections(self) -> None:
        """Start listening (the Rust core accepts once ``run()`` starts)."""
        self.accepting = True
        self.socket.listen(self.adj.backlog)

    def print_listen(self, format_str: str) -> None:
        """Log ``format_str`` filled with the host and port at INFO."""
        self.log_info(format_str.format(self.effective_host, self.effective_port))

    def log_info(self, message: str, type: str = "info") -> None:
        """Log ``message`` on the ``waitress`` logger."""
        getattr(self.logger, type, self.logger.info)(message)

    def add_task(self, task: Any) -> None:
        """Queue ``task`` on the task dispatcher."""
        self.task_dispatcher.add_task(task)

    def pull_trigger(self) -> None:
        """waitress woke its loop here; the Rust core needs no wake-up."""

    def maintenance(self, now: float) -> None:
        """waitress swept idle channels here; the Rust core times each connection itself
        (SPEC D8), so there is nothing to sweep."""

    def readable(self) -> bool:
        return self.accepting

    def writable(self) -> bool:
        return False

    def fix_addr(self, addr: Any) -> Any:
        return addr

    def run(self) -> None:
        """Serve until Ctrl-C, SIGTERM or ``close()``."""
        _run_servers([self], self.task_dispatcher)

    def handle_close(self) -> None:
        self.close()

    def close(self) -> None:
        """Stop a running ``run()`` (from any thread) and close the listening socket."""
        with self._lock:
            self._closed = True
            core = self._core
        if core is not None:
            core.stop(True)
        fileno = self.socket.fileno()
        if fileno >= 0:
            self._map.pop(fileno, None)
        self.accepting = False
        self.socket.close()


class TcpWSGIServer(BaseWSGIServer):
    """A TCP listener (IPv4 or IPv6)."""

    def bind_server_socket(self) -> None:
        address = self.sockinfo[3]
        if address is None:
            raise ValueError("a TCP server needs an address to bind")
        self.socket.bind(address)

    def getsockname(self) -> tuple[Any, Any]:
        return socket.getnameinfo(
            self.socket.getsockname(), socket.NI_NUMERICHOST | socket.NI_NUMERICSERV
        )

    def set_socket_options(self, conn: socket.socket) -> None:
        for level, optname, value in self.adj.socket_options:
            conn.setsockopt(level, optname, value)


WSGIServer = TcpWSGIServer


class UnixWSGIServer(BaseWSGIServer):
    """A unix-domain listener; a stale socket file at the path is removed first."""

    def default_sockinfo(self, adj: Adjustments) -> tuple[Any, ...]:
        return (socket.AF_UNIX, socket.SOCK_STREAM, None, None)

    def bind_server_socket(self) -> None:
        path = self.adj.unix_socket
        if path is None:
            raise ValueError("a unix server needs unix_socket")
        cleanup_unix_socket(path)
        self.socket.bind(path)
        os.chmod(path, self.adj.unix_socket_perms)

    def getsockname(self) -> tuple[Any, Any]:
        return ("unix", self.socket.getsockname())

    def fix_addr(self, addr: Any) -> Any:
        return ("localhost", None)


class MultiSocketServer:
    """What ``create_server`` returns for more than one listener (SPEC §1.3)."""

    asyncore = _AsyncoreShim

    def __init__(
        self,
        map: Optional[SocketMap] = None,
        adj: Optional[Adjustments] = None,
        effective_listen: Optional[list[tuple[Any, Any]]] = None,
        dispatcher: Optional[ThreadedTaskDispatcher] = None,
        log_info: Optional[Callable[[str], None]] = None,
    ) -> None:
        self.adj = adj
        self.map = map if map is not None else {}
        self.effective_listen = effective_listen or []
        self.task_dispatcher = dispatcher
        self.log_info = log_info if log_info is not None else logger.info

    def _servers(self) -> list[BaseWSGIServer]:
        return [obj for obj in self.map.values() if isinstance(obj, BaseWSGIServer)]

    def print_listen(self, format_str: str) -> None:
        for host, port in self.effective_listen:
            shown = f"[{host}]" if ":" in str(host) else host
            self.log_info(format_str.format(shown, port))

    def run(self) -> None:
        servers = self._servers()
        if servers:
            dispatcher = self.task_dispatcher or servers[0].task_dispatcher
            _run_servers(servers, dispatcher)

    def close(self) -> None:
        if self.task_dispatcher is not None:
            self.task_dispatcher.shutdown()
        for server in list(self.map.values()):
            server.close()


def create_server(
    application: WSGIApp,
    map: Optional[SocketMap] = None,
    _start: bool = True,
    _sock: Optional[socket.socket] = None,
    _dispatcher: Optional[ThreadedTaskDispatcher] = None,
    **kw: Any,
) -> Union[BaseWSGIServer, MultiSocketServer]:
    """Build the server(s) for ``application`` from waitress options (SPEC §1.3)."""
    if application is None:
        raise ValueError(
            'The "app" passed to ``create_server`` was ``None``.  You forgot '
            "to return a WSGI app within your application."
        )
    adj = Adjustments(**kw)
    if map is None:
        map = {}
    dispatcher = _dispatcher if _dispatcher is not None else ThreadedTaskDispatcher()
    if adj.unix_socket and hasattr(socket, "AF_UNIX"):
        unix_info = (socket.AF_UNIX, socket.SOCK_STREAM, None, None)
        return UnixWSGIServer(
            application, map, _start, _sock, dispatcher=dispatcher, adj=adj, sockinfo=unix_info
        )
    effective_listen: list[tuple[Any, Any]] = []
    last: Optional[BaseWSGIServer] = None
    for sockinfo in adj.listen:
        last = TcpWSGIServer(
            application, map, _start, _sock, dispatcher=dispatcher, adj=adj, sockinfo=sockinfo
        )
        effective_listen.append((last.effective_host, last.effective_port))
    for sock in adj.sockets:
        sock_info = (sock.family, sock.type, sock.proto, sock.getsockname())
        cls: type[BaseWSGIServer] = (
            UnixWSGIServer if sock.family == getattr(socket, "AF_UNIX", None) else TcpWSGIServer
        )
        last = cls(
            application,
            map,
            _start,
            sock,
            dispatcher=dispatcher,
            adj=adj,
            bind_socket=False,
            sockinfo=sock_info,
        )
        effective_listen.append((last.effective_host, last.effective_port))
    if len(effective_listen) == 1 and last is not None:
        return last
    return MultiSocketServer(map, adj, effective_listen, dispatcher, logger.info)
