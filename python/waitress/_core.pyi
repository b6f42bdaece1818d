"""Type stub for the Rust extension ``waitress._core`` (crates/python), checked by stubtest."""

from typing import Any, Callable, final

__version__: str

@final
class RequestParser:
    """The server's strict request parser (crates/http) for one request: head, then body."""

    def __new__(
        cls,
        *,
        max_request_header_size: int,
        max_request_body_size: int,
        max_request_line: int,
        max_request_headers: int,
    ) -> RequestParser: ...
    def received(self, data: bytes) -> int:
        """Feed bytes; return how many belong to this request."""
    def parse_head_only(self, head: bytes) -> None:
        """Parse a complete head on its own."""
    def take_body(self) -> bytes:
        """Decoded body bytes received since the last call."""
    @property
    def head_complete(self) -> bool: ...
    @property
    def complete(self) -> bool: ...
    @property
    def error(self) -> tuple[int, str] | None: ...
    @property
    def error_version(self) -> str: ...
    @property
    def header_bytes_received(self) -> int: ...
    @property
    def body_bytes_received(self) -> int: ...
    @property
    def head_bytes(self) -> bytes: ...
    @property
    def request_line(self) -> bytes: ...
    @property
    def method(self) -> bytes: ...
    @property
    def target(self) -> bytes: ...
    @property
    def version(self) -> str: ...
    @property
    def headers(self) -> list[tuple[bytes, bytes]]: ...
    @property
    def chunked(self) -> bool: ...
    @property
    def content_length(self) -> int: ...
    @property
    def wants_continue(self) -> bool: ...
    @property
    def wants_close(self) -> bool: ...

@final
class Call:
    """One request's ``start_response`` (the bound method handed to the application) and
    ``write`` (calling the object, which ``start_response`` returns)."""

    def start_response(
        self, status: str, headers: list[tuple[str, str]], exc_info: Any = None
    ) -> Call: ...
    def __call__(self, data: bytes) -> None: ...

@final
class ClientDisconnectedCheck:
    """``environ["waitress.client_disconnected"]``: True once the client is gone."""

    def __call__(self) -> bool: ...

#: One listener: (app, server_name, server_port, url_scheme, url_prefix, ident,
#: expose_tracebacks).
_Site = tuple[Callable[..., Any], str, str, str, str, str | None, bool]

@final
class Server:
    """Serves listening sockets (descriptor, is-unix); one site per listener."""

    def __new__(
        cls,
        listeners: list[tuple[int, bool]],
        sites: list[_Site],
        *,
        threads: int,
        connection_limit: int,
        channel_request_lookahead: int,
        header_timeout: float,
        channel_timeout: float,
        inbuf_overflow: int,
        shutdown_timeout: float,
        ident: str | None,
        recv_bytes: int,
        log_socket_errors: bool,
        outbuf_overflow: int,
        outbuf_high_watermark: int,
        max_request_header_size: int,
        max_request_body_size: int,
        max_request_line: int,
        max_request_headers: int,
    ) -> Server: ...
    def run(self, on_stop: Callable[[], object] | None = None) -> None:
        """Serve until stopped; Ctrl-C raises KeyboardInterrupt after a graceful stop."""
    def stop(self, graceful: bool = True) -> None:
        """Stop a running ``run()`` from any thread."""
