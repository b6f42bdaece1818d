"""Small helpers shared by the rest of the package.

What lives here (SPEC Part A §1.9):

- the two loggers, ``waitress`` and ``waitress.queue`` (§3.15, D9);
- HTTP date formatting and parsing (RFC 9110 §5.6.7: IMF-fixdate out, IMF-fixdate and the
  obsolete RFC 850 form in), built from small regex helpers that stay public because
  third-party code imports them;
- ``undquote`` for RFC 9110 §5.6.4 quoted-strings (used by the proxy-header middleware);
- ``cleanup_unix_socket``, which removes a stale Unix socket file and nothing else;
- the error classes the server turns into its own responses (§3.11). Each carries its status
  code and reason; ``to_response`` renders the exact waitress body. Our Rust server adds three
  statuses waitress never sends (414, 408, 505; SPEC D7 and D11) with the same shape.

Rules: nothing here depends on the locale (date names are spelled out in English), nothing
here does I/O except ``cleanup_unix_socket``, and every error body is UTF-8.
"""

from __future__ import annotations

import calendar
import errno
import logging
import os
import re
import stat
import time
from typing import TYPE_CHECKING, Dict, Iterable, Iterator, List, Optional, Tuple

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

__all__ = [
    "BadRequest",
    "Error",
    "HTTPVersionNotSupported",
    "InternalServerError",
    "RequestEntityTooLarge",
    "RequestHeaderFieldsTooLarge",
    "RequestTimeout",
    "RequestURITooLarge",
    "ServerNotImplemented",
    "build_http_date",
    "cleanup_unix_socket",
    "concat",
    "daymap",
    "find_double_newline",
    "group",
    "join",
    "logger",
    "long_days",
    "monmap",
    "monthname",
    "months",
    "parse_http_date",
    "queue_logger",
    "rfc822_reg",
    "rfc850_reg",
    "short_days",
    "undquote",
    "unpack_rfc822",
    "unpack_rfc850",
    "weekdayname",
]

#: Everything the server logs goes here (SPEC §3.15).
logger = logging.getLogger("waitress")

#: Only the "Task queue depth is N" warning goes here, so users can silence it alone.
queue_logger = logging.getLogger("waitress.queue")


def find_double_newline(s: bytes) -> int:
    """Return the index just past the first CRLF CRLF in ``s``, or -1.

    Only CRLF CRLF ends a head (RFC 9112 §2.1); two bare LFs do not (CVE-2019-16785).
    """
    pos = s.find(b"\r\n\r\n")
    if pos < 0:
        return -1
    return pos + 4


# --- HTTP dates -----------------------------------------------------------------------------
#
# Output is always IMF-fixdate (RFC 9110 §5.6.7). Input accepts IMF-fixdate (the RFC 822/1123
# form) and the obsolete RFC 850 form, case-insensitively; asctime() dates are not accepted.
# Names are spelled out here instead of taken from strftime("%a"), which follows LC_TIME.

#: Weekday names indexed like ``time.struct_time.tm_wday`` (Monday is 0).
weekdayname = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]

#: Month names indexed by month number; index 0 is unused.
monthname: List[Optional[str]] = [
    None,
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
]

#: Lower-case names the parser matches (input is lower-cased before matching).
short_days = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]
long_days = ["sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday"]
months = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]

#: Day name (short or long, lower-case) -> index into ``short_days`` (Sunday is 0).
daymap: Dict[str, int] = {
    name: i for names in (short_days, long_days) for i, name in enumerate(names)
}

#: Month name (lower-case) -> month number, 1-12.
monmap: Dict[str, int] = {name: i for i, name in enumerate(months, start=1)}


def concat(*args: str) -> str:
    """Concatenate regex fragments."""
    return "".join(args)


def join(seq: Iterable[str], field: str = " ") -> str:
    """Join regex fragments with ``field`` (a space by default)."""
    return field.join(seq)


def group(s: str) -> str:
    """Wrap a regex fragment in a capturing group."""
    return "(" + s + ")"


short_day_reg = group(join(short_days, "|"))
long_day_reg = group(join(long_days, "|"))
months_reg = group(join(months, "|"))
hms_reg = join(3 * [group("[0-9][0-9]")], ":")

# Both forms capture, in order: day name, day, month, year, hour, minute, second.
#   IMF-fixdate: "sun, 06 nov 1994 08:49:37 gmt"
rfc822_date = join(
    [concat(short_day_reg, ","), group("[0-9][0-9]?"), months_reg, group("[0-9]+"), hms_reg, "gmt"],
    " ",
)
#   RFC 850:     "sunday, 06-nov-94 08:49:37 gmt"
rfc850_date = join(
    [
        concat(long_day_reg, ","),
        join([group("[0-9][0-9]?"), months_reg, group("[0-9]+")], "-"),
        hms_reg,
        "gmt",
    ],
    " ",
)

rfc822_reg = re.compile(rfc822_date)
rfc850_reg = re.compile(rfc850_date)

_TimeTuple = Tuple[int, int, int, int, int, int, int, int, int]


def _time_tuple(m: re.Match[str], year: int) -> _TimeTuple:
    return (
        year,
        monmap[m.group(3)],
        int(m.group(2)),
        int(m.group(5)),
        int(m.group(6)),
        int(m.group(7)),
        0,
        0,
        0,
    )


def unpack_rfc822(m: re.Match[str]) -> _TimeTuple:
    """Turn a ``rfc822_reg`` match into a 9-item time tuple for ``calendar.timegm``."""
    return _time_tuple(m, int(m.group(4)))


def unpack_rfc850(m: re.Match[str]) -> _TimeTuple:
    """Turn a ``rfc850_reg`` match into a time tuple; a two-digit year gets ``19`` prefixed."""
    year = m.group(4)
    if len(year) == 2:
        year = "19" + year
    return _time_tuple(m, int(year))


def build_http_date(when: float) -> str:
    """Format a POSIX timestamp as an IMF-fixdate: ``Sun, 06 Nov 1994 08:49:37 GMT``."""
    t = time.gmtime(when)
    return (
        f"{weekdayname[t.tm_wday]}, {t.tm_mday:02d} {monthname[t.tm_mon]} {t.tm_year:04d} "
        f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} GMT"
    )


def parse_http_date(d: str) -> int:
    """Parse an RFC 850 or RFC 822/1123 date (any case) into a POSIX timestamp.

    Returns 0 when ``d`` is in neither form. A date that matches the grammar but names a
    year the calendar cannot represent (0, or more than four digits) also gives 0.
    """
    d = d.lower()
    m = rfc850_reg.fullmatch(d)
    if m is not None:
        tt = unpack_rfc850(m)
    else:
        m = rfc822_reg.fullmatch(d)
        if m is None:
            return 0
        tt = unpack_rfc822(m)
    try:
        return int(calendar.timegm(tt))
    except (ValueError, OverflowError):
        return 0


# --- quoted-string --------------------------------------------------------------------------
#
# RFC 9110 §5.6.4:
#   quoted-string = DQUOTE *( qdtext / quoted-pair ) DQUOTE
#   qdtext        = HTAB / SP / %x21 / %x23-5B / %x5D-7E / obs-text
#   quoted-pair   = "\" ( HTAB / SP / VCHAR / obs-text )
#   obs-text      = %x80-FF
# Values reach us as latin-1 strings (PEP 3333), so obs-text is U+0080..U+00FF.

_QDTEXT = r"[\t \x21\x23-\x5b\x5d-\x7e\x80-\xff]"
_QUOTED_PAIR_CHAR = r"[\t \x21-\x7e\x80-\xff]"
_QUOTED_STRING_RE = re.compile(r'"(?:' + _QDTEXT + r"|\\" + _QUOTED_PAIR_CHAR + r')*"')
_QUOTED_PAIR_RE = re.compile(r"\\(" + _QUOTED_PAIR_CHAR + ")")


def undquote(value: str) -> str:
    """Return the content of a quoted-string, or ``value`` itself if it is not quoted.

    Raises ``ValueError("Invalid quoting in value")`` when ``value`` starts but does not end
    with a DQUOTE (or the reverse), or is not a valid quoted-string.
    """
    starts = value.startswith('"')
    ends = value.endswith('"')
    if not starts and not ends:
        return value
    if starts and ends and _QUOTED_STRING_RE.fullmatch(value):
        # Inside a valid quoted-string every backslash begins a quoted-pair, so one
        # left-to-right substitution unescapes them all.
        return _QUOTED_PAIR_RE.sub(r"\1", value[1:-1])
    raise ValueError("Invalid quoting in value")


# --- Unix sockets ---------------------------------------------------------------------------


def cleanup_unix_socket(path: str) -> None:
    """Remove ``path`` if it exists and is a socket; a missing path is not an error.

    Anything else at ``path`` (a regular file, a directory) is left alone, so the following
    ``bind()`` fails with EADDRINUSE instead of destroying data.
    """
    try:
        st = os.stat(path)
    except OSError as exc:
        if exc.errno != errno.ENOENT:
            raise
        return
    if stat.S_ISSOCK(st.st_mode):
        try:
            os.remove(path)
        except FileNotFoundError:
            # Someone else removed it between stat() and remove(): the goal is met.
            pass


# --- Server-generated errors (SPEC §3.11) ---------------------------------------------------


class Error:
    """An error the server answers itself instead of calling the application.

    ``code`` and ``reason`` form the status line; ``body`` is the detail text shown between
    the reason and the "generated by" tag.
    """

    code: int = 500
    reason: str = "Internal Server Error"

    def __init__(self, body: str) -> None:
        self.body = body

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.code} {self.body!r}>"

    def _body_bytes(self, ident: Optional[str]) -> bytes:
        text = f"{self.reason}\r\n\r\n{self.body}\r\n\r\n(generated by {ident or 'server'})"
        # A traceback body (expose_tracebacks) may hold lone surrogates; never fail on it.
        return text.encode("utf-8", "backslashreplace")

    def to_response(self, ident: Optional[str] = None) -> Tuple[str, List[Tuple[str, str]], bytes]:
        """Return ``(status, headers, body)`` for the server to send.

        Headers are the three of §3.11 in wire order; the server adds ``Date`` and
        ``Server`` when it writes the head, and closes the connection afterwards.
        """
        body = self._body_bytes(ident)
        headers = [
            ("Connection", "close"),
            ("Content-Length", str(len(body))),
            ("Content-Type", "text/plain; charset=utf-8"),
        ]
        return f"{self.code} {self.reason}", headers, body

    def wsgi_response(
        self, environ: WSGIEnvironment, start_response: StartResponse
    ) -> Iterator[bytes]:
        """Answer as a WSGI application would (used by the proxy-headers middleware).

        Only Content-Type is passed to ``start_response``: ``Connection`` is hop-by-hop and
        a WSGI application may not set it (PEP 3333), and waitress sends this answer without
        Content-Length, so on HTTP/1.1 it goes out chunked and the connection is closed
        (SPEC §3.11, last bullet). The tag always says ``server``, as waitress's does.
        """
        status, _headers, body = self.to_response()
        start_response(status, [("Content-Type", "text/plain; charset=utf-8")])
        yield body


class BadRequest(Error):
    """400: the request is malformed (RFC 9110 §15.5.1)."""

    code = 400
    reason = "Bad Request"


class RequestHeaderFieldsTooLarge(BadRequest):
    """431: the head exceeds ``max_request_header_size`` (RFC 6585 §5)."""

    code = 431
    reason = "Request Header Fields Too Large"


class RequestEntityTooLarge(BadRequest):
    """413: the body exceeds ``max_request_body_size`` (RFC 9110 §15.5.14)."""

    code = 413
    reason = "Request Entity Too Large"


class RequestURITooLarge(BadRequest):
    """414: the request line exceeds ``max_request_line`` (RFC 9112 §3, SPEC D7). Ours."""

    code = 414
    reason = "URI Too Long"


class RequestTimeout(Error):
    """408: the head did not arrive within ``header_timeout`` (RFC 9110 §15.5.9, D7). Ours."""

    code = 408
    reason = "Request Timeout"


class InternalServerError(Error):
    """500: the application failed before the response head was sent."""

    code = 500
    reason = "Internal Server Error"


class ServerNotImplemented(Error):
    """501: a transfer coding other than ``chunked`` was requested (RFC 9112 §6.1)."""

    code = 501
    reason = "Not Implemented"


class HTTPVersionNotSupported(Error):
    """505: an HTTP major version other than 1 (RFC 9110 §15.6.6, SPEC D11). Ours."""

    code = 505
    reason = "HTTP Version Not Supported"
