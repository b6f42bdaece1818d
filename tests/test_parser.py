"""waitress.parser: the HTTPRequestParser facade over the Rust engine, and the string helpers."""

from __future__ import annotations

import pytest

from waitress.adjustments import Adjustments
from waitress.parser import (
    HTTPRequestParser,
    ParsingError,
    TransferEncodingNotImplemented,
    crack_first_line,
    get_header_lines,
    split_uri,
    unquote_bytes_to_wsgi,
)
from waitress.utilities import (
    BadRequest,
    HTTPVersionNotSupported,
    RequestEntityTooLarge,
    RequestHeaderFieldsTooLarge,
    RequestURITooLarge,
    ServerNotImplemented,
)


def parse(data: bytes, **kw: object) -> HTTPRequestParser:
    parser = HTTPRequestParser(Adjustments(**kw))
    parser.received(data)
    return parser


def test_simple_get_fills_the_attributes() -> None:
    p = parse(
        b"GET /a%20b?x=%20#frag HTTP/1.1\r\nHost: example.com\r\nX-Foo: a\r\nX-Foo: b\r\n\r\n"
    )
    assert p.completed and p.error is None
    assert p.command == "GET"
    assert p.version == "1.1"
    assert p.first_line == b"GET /a%20b?x=%20#frag HTTP/1.1"
    assert p.request_uri == "/a%20b?x=%20#frag"
    assert (p.path, p.query, p.fragment) == ("/a b", "x=%20", "frag")
    assert p.headers == {"HOST": "example.com", "X_FOO": "a, b"}
    assert p.url_scheme == "http"
    assert p.get_body_stream().read() == b""


def test_received_returns_bytes_consumed_and_leaves_pipelined_bytes() -> None:
    data = b"POST / HTTP/1.1\r\nContent-Length: 3\r\n\r\nabcGET /next HTTP/1.1\r\n\r\n"
    p = HTTPRequestParser(Adjustments())
    consumed = p.received(data)
    assert consumed == data.index(b"GET /next")
    assert p.completed
    assert p.get_body_stream().read() == b"abc"
    assert p.received(b"more") == 0


def test_byte_at_a_time_gives_the_same_request() -> None:
    data = b"POST /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
    p = HTTPRequestParser(Adjustments())
    for i in range(len(data)):
        assert not p.completed
        assert p.received(data[i : i + 1]) == 1
    assert p.completed and p.error is None
    assert p.chunked
    assert p.content_length == 5
    assert p.headers["CONTENT_LENGTH"] == "5"
    assert "TRANSFER_ENCODING" not in p.headers
    assert p.get_body_stream().read() == b"hello"


def test_large_body_spills_to_a_file() -> None:
    body = b"x" * 5000
    head = b"POST / HTTP/1.1\r\nContent-Length: 5000\r\n\r\n"
    p = parse(head + body, inbuf_overflow=1000)
    stream = p.get_body_stream()
    assert stream.read() == body
    p.close()


def test_expect_continue_and_connection_close() -> None:
    p = parse(b"POST / HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n")
    assert p.expect_continue and not p.completed
    p = parse(b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n")
    assert p.connection_close


def test_underscore_headers_are_dropped() -> None:
    p = parse(b"GET / HTTP/1.1\r\nX-Auth_User: admin\r\nX-Auth-User: real\r\n\r\n")
    assert p.headers == {"X_AUTH_USER": "real"}


@pytest.mark.parametrize(
    ("data", "error_class", "detail"),
    [
        (b"GET / HTTP/1.1\r\nfoo : bar\r\n\r\n", BadRequest, "whitespace before colon"),
        (b"GET / HTTP/1.1\r\nX: a\nContent-Length: 0\r\n\r\n", BadRequest, "Bare CR or LF"),
        (b"get / HTTP/1.1\r\n\r\n", BadRequest, "Malformed HTTP method"),
        (b"GET / HTTP/1.1\r\nContent-Length: +5\r\n\r\n", BadRequest, "Content-Length is invalid"),
        (b"GET / HTTP/2.0\r\n\r\n", HTTPVersionNotSupported, "not supported"),
        (
            b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
            ServerNotImplemented,
            "Transfer-Encoding requested is not supported.",
        ),
        (
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloXX",
            BadRequest,
            "Chunk not properly terminated",
        ),
    ],
)
def test_rejections_become_error_objects(data: bytes, error_class: type, detail: str) -> None:
    p = parse(data)
    assert p.completed
    assert type(p.error) is error_class
    assert p.error is not None and detail in p.error.body


def test_limits_name_their_values() -> None:
    p = parse(b"POST / HTTP/1.1\r\nContent-Length: 2000\r\n\r\n", max_request_body_size=1000)
    assert isinstance(p.error, RequestEntityTooLarge)
    assert p.error.body == "exceeds max_body of 1000"
    assert p.version == "1.1", "413 answers with the request's version (SPEC §3.11)"
    p = parse(b"GET / HTTP/1.1\r\nX: " + b"a" * 200 + b"\r\n\r\n", max_request_header_size=100)
    assert isinstance(p.error, RequestHeaderFieldsTooLarge)
    assert p.error.body == "exceeds max_header of 100"
    p = parse(b"GET /" + b"a" * 100 + b" HTTP/1.1\r\n\r\n", max_request_line=50)
    assert isinstance(p.error, RequestURITooLarge)


def test_parse_header_raises() -> None:
    p = HTTPRequestParser(Adjustments())
    p.parse_header(b"GET /x HTTP/1.0\r\nA: b\r\n\r\n")
    assert (p.command, p.path, p.version, p.headers) == ("GET", "/x", "1.0", {"A": "b"})
    with pytest.raises(ParsingError):
        p.parse_header(b"GET /x HTTP/1.1\r\n folded\r\n\r\n")
    with pytest.raises(TransferEncodingNotImplemented):
        p.parse_header(b"POST /x HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n")


def test_split_uri() -> None:
    assert split_uri(b"/a%20b?q=1#f") == ("", "", "/a b", "q=1", "f")
    assert split_uri(b"http://host:8080/p?q") == ("http", "host:8080", "/p", "q", "")
    assert split_uri(b"//double/path?x") == ("", "", "//double/path", "x", "")
    assert split_uri(b"/%zz%41") == ("", "", "/%zzA", "", "")
    assert split_uri(b"//\xe9") == ("", "", "//\xe9", "", "")
    with pytest.raises(ParsingError, match="Bad URI"):
        split_uri(b"/\xe9")


def test_get_header_lines() -> None:
    assert get_header_lines(b"a: b\r\nc: d") == [b"a: b", b"c: d"]
    assert get_header_lines(b"a: b,\r\n more") == [b"a: b, more"]
    with pytest.raises(ParsingError, match="Bare CR or LF found in header line"):
        get_header_lines(b"a: b\nc: d")
    with pytest.raises(ParsingError, match="Malformed header line"):
        get_header_lines(b" a: b")


def test_crack_first_line() -> None:
    assert crack_first_line(b"GET / HTTP/1.1") == (b"GET", b"/", b"1.1")
    assert crack_first_line(b"GET /") == (b"GET", b"/", b"")
    assert crack_first_line(b"GET  / HTTP/1.1") == (b"", b"", b"")
    assert crack_first_line(b"G@T / HTTP/1.1") == (b"", b"", b"")
    with pytest.raises(ParsingError, match='Malformed HTTP method "get"'):
        crack_first_line(b"get / HTTP/1.1")


def test_unquote_bytes_to_wsgi() -> None:
    assert unquote_bytes_to_wsgi(b"/caf%C3%A9") == "/caf\xc3\xa9"
