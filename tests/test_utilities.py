"""waitress.utilities: loggers, HTTP dates, undquote, Unix socket cleanup, error classes.

Cases come from SPEC Part A §1.9, §3.11 and Appendix B.
"""

from __future__ import annotations

import calendar
import errno
import os
import shutil
import socket
import tempfile
import time
from typing import Any, Iterator, List, Optional, Tuple

import pytest
from hypothesis import given
from hypothesis import strategies as st

from waitress import utilities
from waitress.utilities import (
    BadRequest,
    Error,
    HTTPVersionNotSupported,
    InternalServerError,
    RequestEntityTooLarge,
    RequestHeaderFieldsTooLarge,
    RequestTimeout,
    RequestURITooLarge,
    ServerNotImplemented,
    build_http_date,
    cleanup_unix_socket,
    find_double_newline,
    parse_http_date,
    undquote,
)

# 1994-11-06 08:49:37 UTC, the example date of RFC 9110 §5.6.7.
RFC_EXAMPLE = 784111777

# --- loggers ----------------------------------------------------------------------------------


def test_logger_names() -> None:
    assert utilities.logger.name == "waitress"
    assert utilities.queue_logger.name == "waitress.queue"
    assert utilities.queue_logger.parent is utilities.logger


# --- find_double_newline --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"", -1),
        (b"\r\n", -1),
        (b"\r\n\r", -1),
        (b"\r\n\r\n", 4),
        (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", 27),
        (b"GET / HTTP/1.1\r\n\r\nbody\r\n\r\n", 18),  # the first one wins
        (b"GET / HTTP/1.1\n\n", -1),  # bare LF pairs do not end a head
        (b"a\r\n\n\r\n", -1),
        (b"a\n\r\n\r\n", 6),
    ],
)
def test_find_double_newline(data: bytes, expected: int) -> None:
    assert find_double_newline(data) == expected


# --- build_http_date ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("when", "expected"),
    [
        (RFC_EXAMPLE, "Sun, 06 Nov 1994 08:49:37 GMT"),
        (RFC_EXAMPLE + 0.999, "Sun, 06 Nov 1994 08:49:37 GMT"),
        (0, "Thu, 01 Jan 1970 00:00:00 GMT"),
        (951782400, "Tue, 29 Feb 2000 00:00:00 GMT"),
        (253402300799, "Fri, 31 Dec 9999 23:59:59 GMT"),
    ],
)
def test_build_http_date(when: float, expected: str) -> None:
    assert build_http_date(when) == expected


def test_build_http_date_every_month_and_weekday() -> None:
    seen_months = set()
    seen_days = set()
    for month in range(1, 13):
        for day in range(1, 8):
            when = calendar.timegm((2023, month, day, 12, 0, 0, 0, 0, 0))
            text = build_http_date(when)
            seen_days.add(text[:3])
            seen_months.add(text[8:11])
            assert time.strftime("%d", time.gmtime(when)) == text[5:7]
    assert seen_days == {"Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"}
    assert seen_months == {
        "Jan",
        "Feb",
        "Mar",
        "Apr",
        "May",
        "Jun",
        "Jul",
        "Aug",
        "Sep",
        "Oct",
        "Nov",
        "Dec",
    }


def test_build_http_date_does_not_use_locale(monkeypatch: pytest.MonkeyPatch) -> None:
    # strftime's %a/%b follow LC_TIME; the date must be English whatever the locale.
    def no_strftime(*args: Any) -> str:
        raise AssertionError("locale-dependent strftime used")

    monkeypatch.setattr(time, "strftime", no_strftime)
    assert build_http_date(RFC_EXAMPLE) == "Sun, 06 Nov 1994 08:49:37 GMT"


# --- parse_http_date ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # RFC 822/1123 (IMF-fixdate)
        ("Sun, 06 Nov 1994 08:49:37 GMT", RFC_EXAMPLE),
        ("sun, 06 nov 1994 08:49:37 gmt", RFC_EXAMPLE),
        ("SUN, 06 NOV 1994 08:49:37 GMT", RFC_EXAMPLE),
        ("Sun, 6 Nov 1994 08:49:37 GMT", RFC_EXAMPLE),  # one-digit day
        ("Mon, 06 Nov 1994 08:49:37 GMT", RFC_EXAMPLE),  # the weekday is not checked
        ("Thu, 01 Jan 1970 00:00:00 GMT", 0),
        ("Tue, 29 Feb 2000 00:00:00 GMT", 951782400),
        # RFC 850
        ("Sunday, 06-Nov-94 08:49:37 GMT", RFC_EXAMPLE),
        ("SUNDAY, 06-NOV-94 08:49:37 GMT", RFC_EXAMPLE),
        ("Sunday, 06-Nov-1994 08:49:37 GMT", RFC_EXAMPLE),
        ("Friday, 31-Dec-99 23:59:59 GMT", 946684799),
        # RFC 850 two-digit years always mean 19xx (no RFC 9110 50-year window)
        ("Sunday, 01-Jan-05 00:00:00 GMT", calendar.timegm((1905, 1, 1, 0, 0, 0))),
        ("Thursday, 01-Jan-70 00:00:00 GMT", 0),
    ],
)
def test_parse_http_date(text: str, expected: int) -> None:
    result = parse_http_date(text)
    assert result == expected
    assert type(result) is int


@pytest.mark.parametrize(
    "text",
    [
        "",
        "garbage",
        "Sun Nov  6 08:49:37 1994",  # asctime() is not accepted
        "Sun, 06 Nov 1994 08:49:37 GMT trailing",
        " Sun, 06 Nov 1994 08:49:37 GMT",
        "Sun, 06 Nov 1994 08:49:37 UTC",
        "Sun, 06 Nov 1994 08:49 GMT",
        "Sunday, 06 Nov 1994 08:49:37 GMT",  # long day name in the 1123 form
        "Sun, 06-Nov-94 08:49:37 GMT",  # short day name in the 850 form
        "Sun, 06 Foo 1994 08:49:37 GMT",
        "Sun, 06 Nov 0 08:49:37 GMT",  # matches the grammar, not representable: 0
        "Sun, 06 Nov 99999 08:49:37 GMT",
    ],
)
def test_parse_http_date_rejects(text: str) -> None:
    assert parse_http_date(text) == 0


@given(st.integers(min_value=0, max_value=253402300799))
def test_http_date_round_trip(when: int) -> None:
    assert parse_http_date(build_http_date(when)) == when


@given(st.integers(min_value=calendar.timegm((1900, 1, 1, 0, 0, 0)), max_value=0x7FFFFFFF))
def test_rfc850_round_trip(when: int) -> None:
    # Render in the RFC 850 form with a two-digit year (only 19xx survives the round trip).
    t = time.gmtime(when)
    long_day = utilities.long_days[(t.tm_wday + 1) % 7].capitalize()
    text = (
        f"{long_day}, {t.tm_mday:02d}-{utilities.monthname[t.tm_mon]}-{t.tm_year % 100:02d} "
        f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} GMT"
    )
    expected = calendar.timegm((1900 + t.tm_year % 100, *t[1:6]))
    assert parse_http_date(text) == expected


def test_date_regex_helpers() -> None:
    assert utilities.concat("a", "b", "c") == "abc"
    assert utilities.join(["a", "b"]) == "a b"
    assert utilities.join(["a", "b"], "-") == "a-b"
    assert utilities.group("x") == "(x)"
    assert utilities.months[0] == "jan"
    assert utilities.months[11] == "dec"
    assert utilities.monmap == {name: i + 1 for i, name in enumerate(utilities.months)}
    assert utilities.daymap["sun"] == utilities.daymap["sunday"] == 0
    assert utilities.daymap["sat"] == utilities.daymap["saturday"] == 6
    assert utilities.weekdayname == ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
    assert utilities.monthname[0] is None
    assert utilities.monthname[1:] == [m.capitalize() for m in utilities.months]


def test_unpack_rfc822() -> None:
    m = utilities.rfc822_reg.match("sun, 06 nov 1994 08:49:37 gmt")
    assert m is not None
    assert utilities.unpack_rfc822(m) == (1994, 11, 6, 8, 49, 37, 0, 0, 0)


@pytest.mark.parametrize(("year", "expected"), [("94", 1994), ("05", 1905), ("2005", 2005)])
def test_unpack_rfc850(year: str, expected: int) -> None:
    m = utilities.rfc850_reg.match(f"sunday, 06-nov-{year} 08:49:37 gmt")
    assert m is not None
    assert utilities.unpack_rfc850(m) == (expected, 11, 6, 8, 49, 37, 0, 0, 0)


# --- undquote -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("", ""),
        ("foo", "foo"),
        ("foo bar", "foo bar"),
        ('fo"o', 'fo"o'),  # quotes inside an unquoted value are left alone
        ('""', ""),
        ('"foo"', "foo"),
        ('"foo bar"', "foo bar"),
        ('"a\tb"', "a\tb"),
        ('"a\\"b"', 'a"b'),
        ('"a\\\\b"', "a\\b"),
        ('"\\\\"', "\\"),
        ('"\\x"', "x"),
        ('"\\ "', " "),
        ('"a,b;c=d"', "a,b;c=d"),
        ('"\xe9t\xe9"', "\xe9t\xe9"),  # obs-text
        ('"\\\xe9"', "\xe9"),
        ('"[2001:db8::1]:3821"', "[2001:db8::1]:3821"),
    ],
)
def test_undquote_valid(value: str, expected: str) -> None:
    assert undquote(value) == expected


@pytest.mark.parametrize(
    "value",
    [
        '"',
        '"foo',
        'foo"',
        '"foo"bar"',
        '"fo"o"',
        '"foo\\"',  # the last quote is escaped: never closed
        '"\\"',
        '"a\x00b"',  # CTL is not qdtext
        '"a\x7fb"',
        '"a\\\x7f"',  # DEL cannot be quoted either
        '"a\nb"',
        '"\u0100"',  # beyond latin-1: cannot come from a header
    ],
)
def test_undquote_invalid(value: str) -> None:
    with pytest.raises(ValueError, match=r"^Invalid quoting in value$"):
        undquote(value)


@given(
    st.text(
        alphabet=st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f")
    )
)
def test_undquote_round_trip(text: str) -> None:
    quoted = '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
    assert undquote(quoted) == text


# --- cleanup_unix_socket --------------------------------------------------------------------


@pytest.fixture
def short_dir() -> Iterator[str]:
    # AF_UNIX paths are limited to ~108 bytes; pytest's tmp_path can be longer.
    path = tempfile.mkdtemp(prefix="wr-", dir="/tmp")
    try:
        yield path
    finally:
        shutil.rmtree(path)


@pytest.mark.skipif(not hasattr(socket, "AF_UNIX"), reason="needs Unix sockets")
def test_cleanup_unix_socket_removes_socket(short_dir: str) -> None:
    path = os.path.join(short_dir, "s")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(path)
    finally:
        sock.close()
    assert os.path.exists(path)
    cleanup_unix_socket(path)
    assert not os.path.exists(path)
    # The path is free again: a new socket can bind there.
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(path)
    finally:
        sock.close()


def test_cleanup_unix_socket_leaves_regular_file(short_dir: str) -> None:
    path = os.path.join(short_dir, "f")
    with open(path, "wb") as f:
        f.write(b"data")
    cleanup_unix_socket(path)
    with open(path, "rb") as f:
        assert f.read() == b"data"


def test_cleanup_unix_socket_leaves_directory(short_dir: str) -> None:
    path = os.path.join(short_dir, "d")
    os.mkdir(path)
    cleanup_unix_socket(path)
    assert os.path.isdir(path)


def test_cleanup_unix_socket_missing_path(short_dir: str) -> None:
    cleanup_unix_socket(os.path.join(short_dir, "missing"))


def test_cleanup_unix_socket_other_errors_propagate(short_dir: str) -> None:
    path = os.path.join(short_dir, "f")
    with open(path, "wb"):
        pass
    with pytest.raises(OSError) as info:
        cleanup_unix_socket(os.path.join(path, "below-a-file"))
    assert info.value.errno == errno.ENOTDIR


# --- error classes --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cls", "code", "reason", "base"),
    [
        (Error, 500, "Internal Server Error", object),
        (BadRequest, 400, "Bad Request", Error),
        (RequestHeaderFieldsTooLarge, 431, "Request Header Fields Too Large", BadRequest),
        (RequestEntityTooLarge, 413, "Request Entity Too Large", BadRequest),
        (RequestURITooLarge, 414, "URI Too Long", BadRequest),
        (RequestTimeout, 408, "Request Timeout", Error),
        (InternalServerError, 500, "Internal Server Error", Error),
        (ServerNotImplemented, 501, "Not Implemented", Error),
        (HTTPVersionNotSupported, 505, "HTTP Version Not Supported", Error),
    ],
)
def test_error_class(cls: type[Error], code: int, reason: str, base: type) -> None:
    assert cls.code == code
    assert cls.reason == reason
    assert issubclass(cls, base)
    error = cls("detail")
    assert error.body == "detail"
    status, headers, body = error.to_response("waitress")
    assert status == f"{code} {reason}"
    expected = f"{reason}\r\n\r\ndetail\r\n\r\n(generated by waitress)".encode()
    assert body == expected
    assert headers == [
        ("Connection", "close"),
        ("Content-Length", str(len(expected))),
        ("Content-Type", "text/plain; charset=utf-8"),
    ]


def test_bad_request_to_response_exact() -> None:
    # Appendix B: "foo : bar" -> 400 "Invalid header", a 56-byte body with ident waitress.
    status, headers, body = BadRequest("Invalid header").to_response("waitress")
    assert status == "400 Bad Request"
    assert headers == [
        ("Connection", "close"),
        ("Content-Length", "56"),
        ("Content-Type", "text/plain; charset=utf-8"),
    ]
    assert body == b"Bad Request\r\n\r\nInvalid header\r\n\r\n(generated by waitress)"
    assert len(body) == 56


@pytest.mark.parametrize("ident", [None, ""])
def test_error_tag_without_ident(ident: Optional[str]) -> None:
    _, _, body = RequestEntityTooLarge("exceeds max_body of 1000").to_response(ident)
    assert body == (
        b"Request Entity Too Large\r\n\r\nexceeds max_body of 1000\r\n\r\n(generated by server)"
    )


def test_error_headers_are_only_the_three_of_3_11() -> None:
    # Date and Server are added by the server when it writes the head.
    _, headers, _ = ServerNotImplemented("x").to_response("waitress")
    assert [name for name, _ in headers] == ["Connection", "Content-Length", "Content-Type"]


def test_error_body_is_utf8() -> None:
    detail = "Traceback: caf\xe9 \u2713 \U0001f600"
    status, headers, body = InternalServerError(detail).to_response("waitress")
    assert status == "500 Internal Server Error"
    assert body.decode("utf-8") == (
        f"Internal Server Error\r\n\r\n{detail}\r\n\r\n(generated by waitress)"
    )
    assert dict(headers)["Content-Length"] == str(len(body))


def test_error_body_survives_lone_surrogates() -> None:
    _, headers, body = InternalServerError("bad \udcff name").to_response()
    assert body == b"Internal Server Error\r\n\r\nbad \\udcff name\r\n\r\n(generated by server)"
    assert dict(headers)["Content-Length"] == str(len(body))


def test_wsgi_response() -> None:
    calls: List[Tuple[str, List[Tuple[str, str]]]] = []

    def start_response(status: str, headers: List[Tuple[str, str]], exc_info: Any = None) -> Any:
        calls.append((status, headers))
        return lambda data: None

    result = BadRequest('Header "X-Forwarded-Proto" malformed.').wsgi_response({}, start_response)
    assert calls == []  # a generator: nothing happens until the server iterates it
    body = b"".join(result)
    # §3.11 last bullet: no Content-Length (chunked on 1.1), no hop-by-hop Connection,
    # and the tag says "server" whatever the ident.
    assert calls == [("400 Bad Request", [("Content-Type", "text/plain; charset=utf-8")])]
    assert body == (
        b'Bad Request\r\n\r\nHeader "X-Forwarded-Proto" malformed.\r\n\r\n(generated by server)'
    )


def test_error_repr() -> None:
    assert repr(RequestTimeout("slow")) == "<RequestTimeout 408 'slow'>"
