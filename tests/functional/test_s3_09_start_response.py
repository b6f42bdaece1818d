"""SPEC §3.9 start_response, write() and the application iterable."""

from __future__ import annotations

from typing import Any, Iterator

import pytest

from tests.apps.rules_app import app as rules_app
from tests.functional.serving import Running, body_of, parse_responses


def test_write_callable(running: Running) -> None:
    response = running.exchange(b"GET /write HTTP/1.1\r\nConnection: close\r\n\r\n")
    assert body_of(response) == b"helloworld"


def test_exception_after_start_response_before_the_body_is_500(running: Running) -> None:
    response = running.exchange(b"GET /raise-after-start HTTP/1.1\r\n\r\n")
    assert response.startswith(b"HTTP/1.1 500 Internal Server Error\r\n")


def test_exception_during_iteration_after_the_head_closes_the_connection(
    running: Running,
) -> None:
    from tests.apps import functional_apps

    functional_apps.CLOSED[0] = 0
    # A second request is pipelined behind: it must never be answered on this connection.
    response = running.exchange(b"GET /raise-in-iter HTTP/1.1\r\n\r\nGET /counted HTTP/1.1\r\n\r\n")
    assert response.startswith(b"HTTP/1.1 200 OK\r\n")
    assert response.endswith(b"first"), "the truncated body, then the close"
    assert response.count(b"HTTP/1.1") == 1
    assert functional_apps.CLOSED[0] == 1, "close() called exactly once"


def test_close_is_called_exactly_once_per_request(running: Running) -> None:
    from tests.apps import functional_apps

    functional_apps.CLOSED[0] = 0
    wire = b"GET /counted HTTP/1.1\r\n\r\n" * 3 + b"GET /stream HTTP/1.0\r\n\r\n"
    running.exchange(wire)
    assert functional_apps.CLOSED[0] == 4


@pytest.fixture(scope="module")
def rules() -> Iterator[Running]:
    server = Running(rules_app)
    yield server
    server.stop()


def ask(server: Running, path: str, method: str = "GET") -> bytes:
    return server.exchange(f"{method} {path} HTTP/1.1\r\nConnection: close\r\n\r\n".encode())


@pytest.mark.parametrize(
    "path",
    [
        "/second-call",  # a second start_response without exc_info
        "/hop-by-hop",  # PEP 3333: hop-by-hop headers are the server's
        "/status-not-str",
        "/header-crlf",  # CR/LF in a header value: never on the wire
        "/status-nul",
        "/str-body",  # an iterable of str, not bytes
    ],
)
def test_rule_violations_before_the_head_are_500(rules: Running, path: str) -> None:
    response = ask(rules, path)
    assert response.startswith(b"HTTP/1.1 500 Internal Server Error\r\n"), response
    assert b"Injected" not in response and b"never" not in response


def test_exc_info_before_the_head_replaces_the_response(rules: Running) -> None:
    (response,) = parse_responses(ask(rules, "/exc-info-before-head"))
    assert response.status == "HTTP/1.1 503 Service Unavailable"
    assert response.body == b"replaced"


def test_exc_info_after_the_head_reraises_and_closes(rules: Running) -> None:
    response = ask(rules, "/exc-info-after-head")
    assert response.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"partial" in response and b"never" not in response


def test_body_beyond_content_length_is_truncated(rules: Running) -> None:
    (response,) = parse_responses(ask(rules, "/too-long"))
    assert response.headers["content-length"] == "3" and response.body == b"abc"


@pytest.mark.parametrize(
    ("value", "body"),
    [
        ("3", b"abc"),  # plain digits: read in Rust
        ("0003", b"abc"),
        ("%203%20", b"abc"),  # anything else is what Python's int() makes of it
        ("%2B3", b"abc"),
        ("0", b""),
    ],
)
def test_an_application_content_length_is_read_as_int_reads_it(
    rules: Running, value: str, body: bytes
) -> None:
    (response,) = parse_responses(ask(rules, f"/length?{value}"))
    assert response.status == "HTTP/1.1 200 OK" and response.body == body


def test_an_application_content_length_int_refuses_is_500(rules: Running) -> None:
    response = ask(rules, "/length?3x")
    assert response.startswith(b"HTTP/1.1 500 Internal Server Error\r\n"), response


def test_no_content_status_drops_the_body_and_length(rules: Running) -> None:
    raw = ask(rules, "/no-content-with-body")
    assert raw.startswith(b"HTTP/1.1 204 No Content\r\n")
    assert b"Content-Length" not in raw and raw.endswith(b"\r\n\r\n")


def test_header_names_are_capitalised_and_sorted(rules: Running) -> None:
    raw = ask(rules, "/names")
    head = raw.split(b"\r\n\r\n")[0].split(b"\r\n")[1:]
    names = [line.split(b":")[0] for line in head]
    assert names == sorted(names)
    assert b"X-Lower: 1" in head and b"Etag: 2" in head


def test_the_servers_lines_merge_in_name_order_after_equal_application_names(
    rules: Running,
) -> None:
    """SPEC §3.10: one stable sort by name of the application's lines and the server's
    (Connection, Date, Via): equal names keep the application's order, its own first."""
    raw = ask(rules, "/merged-names")
    head = raw.split(b"\r\n\r\n")[0].split(b"\r\n")[1:]
    lines = [line if not line.startswith(b"Date: ") else b"Date: -" for line in head]
    assert lines == [
        b"Cf: c",
        b"Connection: close",
        b"Content-Length: 2",
        b"Dat: d",
        b"Date: -",
        b"Server: mine",
        b"Set-Cookie: b=2",
        b"Set-Cookie: a=1",
        b"Via: proxy",
        b"Via: waitress",
        b"Zz: 1",
    ]


def test_a_worker_builds_each_head_from_its_own_request_and_response() -> None:
    """SPEC §3.7, §3.10: one worker (so one reused `Call` and its remembered head) answers
    responses that differ from the one before in a header value, the status, the
    request's Connection or its version: each head is its own."""
    server = Running(rules_app, threads=1)
    try:
        with server.connect() as sock:
            asks = [
                (b"GET /echoed?v=aa HTTP/1.1\r\n\r\n", [b"HTTP/1.1 200 OK", b"X-V: aa"]),
                (b"GET /echoed?v=bb HTTP/1.1\r\n\r\n", [b"HTTP/1.1 200 OK", b"X-V: bb"]),
                (b"GET /echoed?v=bb&s=201 HTTP/1.1\r\n\r\n", [b"HTTP/1.1 201 Created", b"X-V: bb"]),
                (
                    b"GET /echoed?v=bb HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
                    [b"HTTP/1.0 200 OK", b"Connection: Keep-Alive", b"X-V: bb"],
                ),
                (
                    b"GET /echoed?v=bb HTTP/1.1\r\nConnection: close\r\n\r\n",
                    [b"HTTP/1.1 200 OK", b"Connection: close", b"X-V: bb"],
                ),
            ]
            for raw, expected in asks:
                sock.sendall(raw)
                data = b""
                while not data.endswith(b"\r\n\r\nok"):
                    chunk = sock.recv(4096)
                    assert chunk, data
                    data += chunk
                head = data.split(b"\r\n\r\n")[0].split(b"\r\n")
                lines = [line for line in head if not line.startswith((b"Date:", b"Server:"))]
                assert lines == [expected[0], *sorted([b"Content-Length: 2", *expected[1:]])]
    finally:
        server.stop()


def test_a_header_checked_before_is_read_again_from_a_str_subclass() -> None:
    """SPEC §3.9: a Content-Length is what int() makes of the value. One worker checks
    `Content-Length: 2` as a plain str, then a str subclass with the same text whose int()
    is 3: the second is read again, not taken from the first."""
    server = Running(rules_app, threads=1)
    try:
        with server.connect() as sock:
            for query, body in [("plain", b"ab"), ("sub", b"abc"), ("plain", b"ab")]:
                sock.sendall(f"GET /length-kind?{query} HTTP/1.1\r\n\r\n".encode())
                data = b""
                while not data.endswith(body) or b"\r\n\r\n" not in data:
                    chunk = sock.recv(4096)
                    assert chunk, data
                    data += chunk
                assert data.split(b"\r\n\r\n", 1)[1] == body, (query, data)
    finally:
        server.stop()


@pytest.mark.parametrize("bad", [3, 31, 32, 33, 35])
def test_a_header_that_changes_is_checked_again_wherever_it_is_in_the_list(bad: int) -> None:
    """SPEC §3.9: one worker answers forty headers, then the same with a line feed in the
    value of one (among the places a worker recalls, or past them), then forty again: the
    second is refused with a 500 and the others are answered."""
    server = Running(rules_app, threads=1)
    try:
        for query, status in [("", b"200 OK"), (f"bad={bad}", b"500 "), ("", b"200 OK")]:
            raw = ask(server, f"/many-headers?{query}")
            assert raw.startswith(b"HTTP/1.1 " + status), (query, raw[:80])
    finally:
        server.stop()


# Header tuples an application keeps as constants: the same objects on every call.
_TWO = ("Content-Length", "2")
_THREE = ("Content-Length", "3")
_PLAIN = ("Content-Type", "text/plain")
_HOP = ("Connection", "close")
_OK = "200 OK"


def _constant_headers(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    kind = environ["QUERY_STRING"]
    if kind == "hop":
        start_response(_OK, [_PLAIN, _HOP])
        return [b"no"]
    start_response(_OK, [_PLAIN, _TWO if kind == "two" else _THREE])
    return [b"ab" if kind == "two" else b"abc"]


def test_the_same_header_tuples_again_are_recalled_only_where_they_are_given() -> None:
    """SPEC §3.9, §3.10: one worker answers responses built from constant header tuples and
    status (the very same objects each time), alternating two Content-Lengths at the same
    place, then a hop-by-hop tuple twice: every head carries its own length, and the
    hop-by-hop header is refused every time, not only the first."""
    server = Running(_constant_headers, threads=1)
    try:
        with server.connect() as sock:
            for kind in ["two", "two", "three", "two", "three", "three", "hop", "hop"]:
                sock.sendall(f"GET /?{kind} HTTP/1.1\r\n\r\n".encode())
                data = b""
                while b"\r\n\r\n" not in data or len(data.split(b"\r\n\r\n", 1)[1]) < (
                    2 if kind == "two" else 3
                ):
                    chunk = sock.recv(4096)
                    assert chunk, (kind, data)
                    data += chunk
                head, body = data.split(b"\r\n\r\n", 1)
                if kind == "hop":
                    assert head.startswith(b"HTTP/1.1 500 "), (kind, head)
                    # A 500 for an application error closes the connection.
                    sock.close()
                    sock = server.connect()
                    continue
                length = 2 if kind == "two" else 3
                assert f"Content-Length: {length}\r\n".encode() in head + b"\r\n", (kind, head)
                assert body == (b"ab" if kind == "two" else b"abc"), (kind, data)
        sock.close()
    finally:
        server.stop()


@pytest.mark.parametrize("offset", [-1, 0, 1])
def test_a_head_at_the_size_a_worker_remembers_is_its_own_each_time(offset: int) -> None:
    """SPEC §3.10: a worker remembers heads of at most 4,096 bytes. Heads of 4,095, 4,096
    and 4,097 bytes are each answered twice, then with another value of the same length:
    every head carries its own value."""
    server = Running(rules_app, threads=1)
    try:

        def head(length: int, letter: str) -> bytes:
            raw = ask(server, f"/padded?len={length}&c={letter}")
            return raw.split(b"\r\n\r\n")[0] + b"\r\n\r\n"

        length = 100 + 4096 - len(head(100, "a")) + offset
        for letter in "aab":
            got = head(length, letter)
            assert len(got) == 4096 + offset
            assert f"X-Pad: {letter * length}\r\n".encode() in got
    finally:
        server.stop()


def test_an_application_server_header_gets_a_via(rules: Running) -> None:
    raw = ask(rules, "/own-server-header")
    assert b"Server: mine\r\n" in raw and b"Via: waitress\r\n" in raw


def test_a_generator_body_with_empty_pieces(rules: Running) -> None:
    (response,) = parse_responses(ask(rules, "/generator"))
    assert response.body == b"abcdef"


def test_head_request_sends_no_body(rules: Running) -> None:
    raw = ask(rules, "/names", "HEAD")
    assert raw.endswith(b"\r\n\r\n") and b"Content-Length: 2" in raw


def test_a_start_response_the_application_keeps_is_never_another_requests() -> None:
    """A worker reuses its `start_response` object for its next request only when nothing
    else holds it: one the application kept stays that request's (a second call raises,
    as the response is done), and later requests get their own."""
    kept: list[Any] = []

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        if environ["PATH_INFO"] == "/keep":
            kept.append(start_response)
        start_response("200 OK", [("Content-Length", "2")])
        return [b"ok"]

    server = Running(app, threads=1)
    try:
        for path in (b"/keep", b"/other", b"/other", b"/keep", b"/other"):
            response = server.exchange(b"GET " + path + b" HTTP/1.0\r\n\r\n")
            assert response.startswith(b"HTTP/1.0 200 OK"), response
    finally:
        server.stop()
    assert len(kept) == 2 and kept[0] is not kept[1]
    for start_response in kept:
        with pytest.raises(AssertionError):
            start_response("500 Oops", [])


def test_a_write_the_application_keeps_is_never_another_requests() -> None:
    """The `write` callable an application keeps holds its own request's response: a worker
    reuses its `start_response` for the next request only when nothing holds either, so a
    later request gets a `write` of its own, and a kept one called after its response has
    ended sends nothing into another request's response."""
    kept: list[Any] = []
    same: list[bool] = []

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        write = start_response("200 OK", [("Content-Length", "2")])
        if environ["PATH_INFO"] == "/keep":
            kept.append(write)  # the one reference kept: no other list holds a write
        elif kept:
            same.append(write is kept[0])
            kept[0](b"XX")  # its own response is over: past its Content-Length, dropped
        return [b"ok"]

    server = Running(app, threads=1)
    try:
        for path in (b"/keep", b"/other", b"/other"):
            response = server.exchange(b"GET " + path + b" HTTP/1.0\r\n\r\n")
            assert response.startswith(b"HTTP/1.0 200 OK"), response
            assert response.endswith(b"\r\n\r\nok"), response
    finally:
        server.stop()
    assert same == [False, False]


@pytest.mark.parametrize(
    ("status", "value", "expected"),
    [
        ("200 OK", "plain", b"X-Word: plain\r\n"),
        ("200 OK", "caf\u00e9", b"X-Word: caf\xe9\r\n"),
        ("200 \u00c7a va", "plain", b"HTTP/1.0 200 \xc7a va\r\n"),
        ("200 OK", "\u20ac", None),
    ],
)
def test_the_response_head_is_latin_1(status: str, value: str, expected: bytes | None) -> None:
    """PEP 3333: the status and header strings go out as latin-1, each character one byte;
    a character past U+00FF cannot, and the application's response is then a 500."""

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response(status, [("X-Word", value), ("Content-Length", "2")])
        return [b"ok"]

    server = Running(app, threads=1)
    try:
        response = server.exchange(b"GET / HTTP/1.0\r\n\r\n")
    finally:
        server.stop()
    if expected is None:
        assert response.startswith(b"HTTP/1.0 500 Internal Server Error\r\n"), response
    else:
        assert expected in response and response.endswith(b"\r\n\r\nok"), response


def _hop_by_hop_names() -> list[str]:
    from waitress.task import hop_by_hop

    names = sorted(hop_by_hop)
    return names + [name.upper() for name in names] + [name.title() for name in names]


@pytest.mark.parametrize("name", [*_hop_by_hop_names(), "\u212aeep-alive"])
def test_every_hop_by_hop_header_is_refused_in_any_case(name: str) -> None:
    """PEP 3333: each hop-by-hop name (any letter case; a name whose lower case is one, as
    the Kelvin sign's `k`, too) makes the application's response a 500, while a name of the
    same length that is none goes out."""

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        header = name if environ["PATH_INFO"] == "/hop" else "x" * len(name)
        start_response("200 OK", [(header, "v"), ("Content-Length", "2")])
        return [b"ok"]

    server = Running(app, threads=1)
    try:
        refused = server.exchange(b"GET /hop HTTP/1.0\r\n\r\n")
        control = server.exchange(b"GET /control HTTP/1.0\r\n\r\n")
    finally:
        server.stop()
    assert refused.startswith(b"HTTP/1.0 500 Internal Server Error\r\n"), refused
    assert control.startswith(b"HTTP/1.0 200 OK\r\n"), control
