"""HTTP request parsing (waitress's ``waitress.parser``), backed by the Rust engine.

``HTTPRequestParser`` is the incremental parser waitress exposes. Here every byte goes
through ``waitress._core.RequestParser``, which is the same strict parser the server uses
(``crates/http``), so the verdicts on hostile input are the server's (SPEC Part B). The
string helpers (``split_uri``, ``get_header_lines``, ``crack_first_line``,
``unquote_bytes_to_wsgi``) keep waitress's results: they are utilities, not the server's
acceptance policy (SPEC D11).
"""

from __future__ import annotations

import re
from io import BytesIO
from typing import IO, TYPE_CHECKING, Optional
from urllib.parse import unquote_to_bytes, urlsplit

from waitress import _core
from waitress.buffers import OverflowableBuffer
from waitress.utilities import (
    BadRequest,
    Error,
    HTTPVersionNotSupported,
    RequestEntityTooLarge,
    RequestHeaderFieldsTooLarge,
    RequestURITooLarge,
    ServerNotImplemented,
)

if TYPE_CHECKING:
    from waitress.adjustments import Adjustments

__all__ = [
    "HTTPRequestParser",
    "ParsingError",
    "TransferEncodingNotImplemented",
    "crack_first_line",
    "first_line_re",
    "get_header_lines",
    "split_uri",
    "unquote_bytes_to_wsgi",
]


class ParsingError(Exception):
    """A request that cannot be parsed; the server answers 400."""


class TransferEncodingNotImplemented(Exception):
    """A transfer coding other than ``chunked``; the server answers 501."""


# RFC 9110 §5.6.2 token characters.
_TCHAR = rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]"
first_line_re = re.compile(rb"(" + _TCHAR + rb"+) ([^ ]+)(?: HTTP/([0-9]\.[0-9]))?")

_ERROR_CLASSES: dict[int, type[Error]] = {
    400: BadRequest,
    413: RequestEntityTooLarge,
    414: RequestURITooLarge,
    431: RequestHeaderFieldsTooLarge,
    501: ServerNotImplemented,
    505: HTTPVersionNotSupported,
}


def unquote_bytes_to_wsgi(bytestring: bytes) -> str:
    """Percent-decode ``bytestring`` and decode the result as latin-1 (PEP 3333)."""
    return unquote_to_bytes(bytestring).decode("latin-1")


def split_uri(uri: bytes) -> tuple[str, str, str, str, str]:
    """Split a request target into ``(scheme, netloc, path, query, fragment)``.

    The path is percent-decoded; everything is latin-1 text. A target starting with ``//``
    is a path, never an authority. Non-ASCII bytes elsewhere raise ``ParsingError("Bad URI")``.
    """
    scheme = netloc = b""
    if uri[:2] == b"//":
        path, fragment, query = uri, b"", b""
        if b"#" in path:
            path, fragment = path.split(b"#", 1)
        if b"?" in path:
            path, query = path.split(b"?", 1)
    else:
        try:
            parts = urlsplit(uri)
        except UnicodeError as exc:
            raise ParsingError("Bad URI") from exc
        scheme, netloc, path, query, fragment = parts
    return (
        scheme.decode("latin-1"),
        netloc.decode("latin-1"),
        unquote_bytes_to_wsgi(path),
        query.decode("latin-1"),
        fragment.decode("latin-1"),
    )


def get_header_lines(header: bytes) -> list[bytes]:
    """Split a header block on CRLF, joining obs-fold continuations onto the line before.

    The continuation keeps its leading whitespace. A bare CR or LF inside a line, or a
    continuation with no line before it, raises ``ParsingError``.
    """
    lines: list[bytes] = []
    for line in header.split(b"\r\n"):
        if b"\r" in line or b"\n" in line:
            raise ParsingError(f'Bare CR or LF found in header line "{line.decode("latin-1")}"')
        if line[:1] in (b" ", b"\t"):
            if not lines:
                raise ParsingError(f'Malformed header line "{line.decode("latin-1")}"')
            lines[-1] += line
        else:
            lines.append(line)
    return lines


def crack_first_line(line: bytes) -> tuple[bytes, bytes, bytes]:
    """Split a request line into ``(method, uri, version)``; ``(b"", b"", b"")`` if it is
    not one. ``version`` is like ``b"1.1"``, or ``b""`` when the line has none. A method
    that is not all upper-case raises ``ParsingError``."""
    match = first_line_re.fullmatch(line)
    if match is None:
        return b"", b"", b""
    method, uri, version = match.group(1), match.group(2), match.group(3) or b""
    if method != method.upper():
        raise ParsingError(f'Malformed HTTP method "{method.decode("latin-1")}"')
    return method, uri, version


class HTTPRequestParser:
    """Incremental parser for one request: feed bytes to ``received`` until ``completed``.

    After completion either ``error`` is set (an ``waitress.utilities.Error`` naming the
    status to answer) or the attributes describe the request and ``get_body_stream()``
    returns its decoded body.
    """

    completed = False
    empty = False
    expect_continue = False
    headers_finished = False
    header_plus = b""
    chunked = False
    content_length = 0
    header_bytes_received = 0
    body_bytes_received = 0
    body_rcv: Optional[OverflowableBuffer] = None
    version = "1.0"
    error: Optional[Error] = None
    connection_close = False
    first_line = b""
    command = ""
    request_uri = ""
    path = ""
    query = ""
    fragment = ""
    proxy_scheme = ""
    proxy_netloc = ""

    def __init__(self, adj: Adjustments) -> None:
        self.adj = adj
        self.headers: dict[str, str] = {}
        self.url_scheme = adj.url_scheme
        self._core = _core.RequestParser(
            max_request_header_size=adj.max_request_header_size,
            max_request_body_size=adj.max_request_body_size,
            max_request_line=adj.max_request_line,
            max_request_headers=adj.max_request_headers,
        )

    def received(self, data: bytes) -> int:
        """Feed ``data``; return how many of its bytes belong to this request."""
        if self.completed:
            return 0
        had_head = self.headers_finished
        consumed = self._core.received(data)
        self.header_bytes_received = self._core.header_bytes_received
        if not had_head and self._core.head_complete:
            self._take_head()
        body = self._core.take_body()
        if body:
            if self.body_rcv is None:
                self.body_rcv = OverflowableBuffer(self.adj.inbuf_overflow)
            self.body_rcv.append(body)
        self.body_bytes_received = self._core.body_bytes_received
        error = self._core.error
        if error is not None:
            status, detail = error
            self.error = _ERROR_CLASSES.get(status, BadRequest)(detail)
            if not self.headers_finished:
                # SPEC §3.11: CL/TE/413 errors answer with the request's version.
                self.version = self._core.error_version
            self.completed = True
        elif self._core.complete:
            self.completed = True
            if self.chunked:
                self.content_length = self._core.body_bytes_received
                self.headers["CONTENT_LENGTH"] = str(self.content_length)
        return consumed

    def _take_head(self) -> None:
        core = self._core
        self.headers_finished = True
        self.header_plus = core.head_bytes
        self.first_line = core.request_line
        self.command = core.method.decode("latin-1")
        self.version = core.version
        uri = core.target
        self.request_uri = uri.decode("latin-1")
        scheme, netloc, path, query, fragment = split_uri(uri)
        self.proxy_scheme, self.proxy_netloc = scheme, netloc
        self.path, self.query, self.fragment = path, query, fragment
        headers: dict[str, str] = {}
        for name, value in core.headers:
            key = name.decode("latin-1").upper().replace("-", "_")
            text = value.decode("latin-1")
            headers[key] = f"{headers[key]}, {text}" if key in headers else text
        headers.pop("TRANSFER_ENCODING", None)
        self.headers = headers
        self.chunked = core.chunked
        self.content_length = core.content_length
        self.expect_continue = core.wants_continue
        self.connection_close = core.wants_close

    def parse_header(self, header_plus: bytes) -> None:
        """Parse a complete head (request line, fields, final CRLF CRLF) on its own.

        Raises ``TransferEncodingNotImplemented`` for 501, ``ParsingError`` for any other
        rejection (its text is the error detail).
        """
        parser = HTTPRequestParser(self.adj)
        parser._core.parse_head_only(header_plus)
        error = parser._core.error
        if error is not None:
            status, detail = error
            if status == 501:
                raise TransferEncodingNotImplemented(detail)
            raise ParsingError(detail)
        parser._take_head()
        for name in (
            "headers_finished",
            "header_plus",
            "first_line",
            "command",
            "version",
            "request_uri",
            "proxy_scheme",
            "proxy_netloc",
            "path",
            "query",
            "fragment",
            "headers",
            "chunked",
            "content_length",
            "expect_continue",
            "connection_close",
        ):
            setattr(self, name, getattr(parser, name))

    def get_body_stream(self) -> IO[bytes]:
        """The decoded body as a file positioned at 0 (an empty ``BytesIO`` if none)."""
        if self.body_rcv is not None:
            return self.body_rcv.getfile()
        return BytesIO()

    def close(self) -> None:
        """Release the body buffer (and its temp file)."""
        if self.body_rcv is not None:
            self.body_rcv.close()
