"""Type stub for the Rust extension ``waitress._core`` (crates/python), checked by stubtest."""

from typing import final

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
