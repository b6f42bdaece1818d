"""SPEC §3.8 The WSGI environ."""

from __future__ import annotations

import json
import logging
import socket
import time
from typing import Any

import pytest

from tests.functional.serving import Running, body_of, read_all


def answer(
    sock: socket.socket, raw: bytes, *, until: tuple[bytes, ...] = (b"\r\n\r\nok",)
) -> bytes:
    """Send `raw` on a kept-alive connection and read until the data ends with (or, for an
    error page, holds) one of `until`."""
    sock.sendall(raw)
    data = b""
    while not any(data.endswith(end) or (end.startswith(b"HTTP") and end in data) for end in until):
        chunk = sock.recv(65536)
        assert chunk, data
        data += chunk
    return data


def test_environ_keys_and_values(running: Running) -> None:
    raw = (
        b"POST /env?x=%20 HTTP/1.1\r\nHost: example.com:81\r\nX-Foo: a\r\nX-Foo: b\r\n"
        b"Content-Type: text/x\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc"
    )
    env = json.loads(body_of(running.exchange(raw)))
    assert env["REQUEST_METHOD"] == "POST"
    assert env["PATH_INFO"] == "/env"
    assert env["QUERY_STRING"] == "x=%20"
    assert env["REQUEST_URI"] == "/env?x=%20"
    assert env["SERVER_PROTOCOL"] == "HTTP/1.1"
    assert env["SERVER_NAME"] == "waitress.invalid"
    assert env["SERVER_PORT"] == str(running.server.effective_port)
    assert env["SERVER_SOFTWARE"] == "waitress"
    assert env["REMOTE_ADDR"] == env["REMOTE_HOST"] == "127.0.0.1"
    assert env["REMOTE_PORT"].isdigit()
    assert env["HTTP_HOST"] == "example.com:81"
    assert env["HTTP_X_FOO"] == "a, b"
    assert env["CONTENT_TYPE"] == "text/x"
    assert env["CONTENT_LENGTH"] == "3"
    assert env["wsgi.input.read"] == "abc"
    assert env["wsgi.url_scheme"] == "http"
    assert env["wsgi.multithread"] is True and env["wsgi.input_terminated"] is True


def test_each_request_has_its_own_method_protocol_query_and_uri(running: Running) -> None:
    """The environ starts from a template holding the likeliest values (GET, HTTP/1.1, no
    query): requests with other ones on the same server, before and after such a request,
    each see their own."""
    shapes = [
        (b"GET /env HTTP/1.1\r\nConnection: close", ("GET", "HTTP/1.1", "", "/env")),
        (b"DELETE /env?a=1 HTTP/1.0", ("DELETE", "HTTP/1.0", "a=1", "/env?a=1")),
        (b"GET /%65nv HTTP/1.0", ("GET", "HTTP/1.0", "", "/%65nv")),
        (b"PATCH /env#frag HTTP/1.1\r\nConnection: close", ("PATCH", "HTTP/1.1", "", "/env#frag")),
        (b"GET /env HTTP/1.1\r\nConnection: close", ("GET", "HTTP/1.1", "", "/env")),
    ]
    for head, (method, protocol, query, uri) in shapes:
        env = json.loads(body_of(running.exchange(head + b"\r\n\r\n")))
        seen = (env["REQUEST_METHOD"], env["SERVER_PROTOCOL"], env["QUERY_STRING"])
        assert seen == (method, protocol, query), head
        assert (env["PATH_INFO"], env["REQUEST_URI"]) == ("/env", uri), head


def test_wsgi_errors_is_sys_stderr_as_it_is_at_each_request(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """SPEC §3.8: `wsgi.errors` is `sys.stderr`, the object it is when the request comes,
    also after it was replaced while the server runs."""
    import io
    import sys

    seen: list[object] = []

    def app(environ: dict[str, object], start_response: Any) -> list[bytes]:
        seen.append(environ["wsgi.errors"])
        start_response("200 OK", [("Content-Length", "0")])
        return []

    server = Running(app)
    try:
        first = sys.stderr
        server.exchange(b"GET / HTTP/1.0\r\n\r\n")
        replaced = io.StringIO()
        monkeypatch.setattr(sys, "stderr", replaced)
        server.exchange(b"GET / HTTP/1.0\r\n\r\n")
        monkeypatch.setattr(sys, "stderr", first)
        server.exchange(b"GET / HTTP/1.0\r\n\r\n")
    finally:
        server.stop()
    assert seen[0] is first and seen[1] is replaced and seen[2] is first


PROXY_FIELDS = (
    b"Forwarded: for=203.0.113.9\r\nX-Forwarded-For: 203.0.113.9\r\n"
    b"X-Forwarded-Host: forged.example\r\nX-Forwarded-Proto: https\r\n"
    b"X-Forwarded-Port: 9999\r\nX-Forwarded-By: 203.0.113.1\r\nx-forwarded-for: again\r\n"
)
PROXY_KEYS = {
    "HTTP_FORWARDED",
    "HTTP_X_FORWARDED_FOR",
    "HTTP_X_FORWARDED_HOST",
    "HTTP_X_FORWARDED_PROTO",
    "HTTP_X_FORWARDED_PORT",
    "HTTP_X_FORWARDED_BY",
}


def _environ_with_proxy_fields(**kw: object) -> dict[str, object]:
    running = Running(**kw)
    try:
        raw = b"GET /env HTTP/1.1\r\nHost: h\r\n" + PROXY_FIELDS + b"Connection: close\r\n\r\n"
        env: dict[str, object] = json.loads(body_of(running.exchange(raw)))
    finally:
        running.stop()
    return env


def test_untrusted_proxy_headers_never_reach_the_app_by_default() -> None:
    """SPEC §4 rule 6 with no trusted_proxy: the six proxy headers are not in the environ
    (the Rust core leaves them out; `server.application` is still the middleware)."""
    env = _environ_with_proxy_fields()
    assert not PROXY_KEYS & env.keys(), sorted(PROXY_KEYS & env.keys())
    assert env["REMOTE_ADDR"] == "127.0.0.1" and env["wsgi.url_scheme"] == "http"
    assert env["HTTP_HOST"] == "h"


def test_untrusted_proxy_headers_reach_the_app_when_clearing_is_off() -> None:
    env = _environ_with_proxy_fields(clear_untrusted_proxy_headers=False)
    assert PROXY_KEYS <= env.keys()
    assert env["HTTP_X_FORWARDED_FOR"] == "203.0.113.9, again"


def test_untrusted_proxy_headers_are_logged_and_dropped_with_log_untrusted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="waitress"):
        env = _environ_with_proxy_fields(log_untrusted_proxy_headers=True)
    assert not PROXY_KEYS & env.keys()
    assert any("Removed untrusted headers" in r.getMessage() for r in caplog.records)


def test_remote_addr_and_port_are_each_requests_own_peer() -> None:
    """REMOTE_ADDR/REMOTE_HOST/REMOTE_PORT are the client's address and port, from two
    source addresses in turn on one worker (the last address is reused, not re-formatted,
    when it repeats): never the previous peer's."""
    server = Running(threads=1)
    try:
        for source in ["127.0.0.2", "127.0.0.1", "127.0.0.2", "127.0.0.2", "127.0.0.1"]:
            with socket.create_connection(
                ("127.0.0.1", server.port), source_address=(source, 0)
            ) as sock:
                sock.settimeout(10)
                sock.sendall(b"GET /env HTTP/1.0\r\n\r\n")
                env = json.loads(body_of(read_all(sock)))
                assert env["REMOTE_ADDR"] == env["REMOTE_HOST"] == source
                assert env["REMOTE_PORT"] == str(sock.getsockname()[1])
    finally:
        server.stop()


@pytest.mark.parametrize("method", ["GET", "PATCH", "OPTIONS", "PURGE", "M-SEARCH"])
def test_header_names_map_to_cgi_keys_whatever_their_case(running: Running, method: str) -> None:
    """SPEC §3.8: every field name becomes its CGI key (upper case, `_` for `-`) however it
    is spelled, the common ones included (the core matches them without building the key),
    and the method is the request's own, common or not."""
    raw = (
        method.encode() + b" /env HTTP/1.1\r\nhOsT: h\r\nuser-AGENT: ua\r\ncOnTeNt-TyPe: t/x\r\n"
        b"X-Trace-1: one\r\nx-trace-1: two\r\nACCEPT: a/b\r\nConnection: close\r\n\r\n"
    )
    env = json.loads(body_of(running.exchange(raw)))
    assert env["REQUEST_METHOD"] == method
    assert env["HTTP_HOST"] == "h"
    assert env["HTTP_USER_AGENT"] == "ua"
    assert env["CONTENT_TYPE"] == "t/x" and "HTTP_CONTENT_TYPE" not in env
    assert env["HTTP_X_TRACE_1"] == "one, two"
    assert env["HTTP_ACCEPT"] == "a/b"
    assert env["HTTP_CONNECTION"] == "close"


@pytest.mark.parametrize("count", [15, 16, 17, 40])
def test_every_header_field_reaches_the_environ_however_many_there_are(
    running: Running, count: int
) -> None:
    """SPEC §3.8: with 15, 16, 17 and 40 distinct fields, each repeated once after all the
    others, every field arrives, its two values joined in order."""
    names = [f"X-Field-{n}" for n in range(count - 1)]  # and Connection: close
    lines = [f"{name}: first-{n}" for n, name in enumerate(names)]
    lines += [f"{name}: second-{n}" for n, name in enumerate(names)]
    raw = ("GET /env HTTP/1.1\r\n" + "\r\n".join(lines) + "\r\nConnection: close\r\n\r\n").encode()
    env = json.loads(body_of(running.exchange(raw)))
    for n, name in enumerate(names):
        key = "HTTP_" + name.upper().replace("-", "_")
        assert env[key] == f"first-{n}, second-{n}", key
    assert env["HTTP_CONNECTION"] == "close"
    assert sum(key.startswith("HTTP_X_FIELD_") for key in env) == count - 1


def test_non_ascii_bytes_are_latin_1_in_the_environ(running: Running) -> None:
    """SPEC §3.8: header values and the target are latin-1 text, each byte one code point
    (0x80 to 0xFF included); the path is percent-decoded first."""
    raw = (
        b"GET /%65nv?q=%E9 HTTP/1.1\r\nHost: h\r\nX-Name: caf\xe9 \xff\r\nConnection: close\r\n\r\n"
    )
    env = json.loads(body_of(running.exchange(raw)))
    assert env["PATH_INFO"] == "/env"
    assert env["QUERY_STRING"] == "q=%E9"
    assert env["REQUEST_URI"] == "/%65nv?q=%E9"
    assert env["HTTP_X_NAME"] == "caf\xe9 \xff"


@pytest.mark.parametrize("body", [b"", b"abc"])
def test_wsgi_input_an_app_keeps_is_closed_after_the_response(
    running: Running, body: bytes
) -> None:
    """SPEC §3.8: the server closes `wsgi.input` once the response is done. A stream the
    application let go of is simply freed (closing it would show nobody anything); one it
    kept is closed, as waitress closes its request body buffer."""
    from tests.apps import functional_apps

    functional_apps.KEPT.clear()
    raw = (
        b"POST /keep-input HTTP/1.1\r\nHost: h\r\nContent-Length: "
        + str(len(body)).encode()
        + b"\r\nConnection: close\r\n\r\n"
        + body
    )
    assert body_of(running.exchange(raw)) == b"kept"
    [kept] = functional_apps.KEPT
    deadline = time.monotonic() + 5
    while not kept.closed and time.monotonic() < deadline:
        time.sleep(0.01)
    assert kept.closed
    with pytest.raises(ValueError):
        kept.read()


def test_a_kept_alive_connections_requests_each_get_a_fresh_environ_with_its_peer() -> None:
    """From a connection's second request on, its environ starts from a copy of a template
    holding its peer and its `waitress.client_disconnected`: each request still gets its own
    dict with the connection's own peer, whatever the application did to an earlier one,
    and each connection its own check (True once that connection is gone)."""
    seen: list[dict[str, Any]] = []

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        seen.append(
            {
                "addr": (environ["REMOTE_ADDR"], environ["REMOTE_HOST"]),
                "port": environ.get("REMOTE_PORT"),
                "added": "X_ADDED" in environ,
                "check": environ["waitress.client_disconnected"],
                "environ": environ,
            }
        )
        # What an application does to its environ stays in that request's.
        environ["REMOTE_ADDR"] = "tampered"
        environ["X_ADDED"] = True
        del environ["REMOTE_PORT"]
        start_response("200 OK", [("Content-Length", "2")])
        return [b"ok"]

    def requests(sock: socket.socket, count: int) -> None:
        for _ in range(count):
            answer(sock, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")

    server = Running(app, threads=1)
    try:
        first = socket.create_connection(("127.0.0.1", server.port), timeout=10)
        requests(first, 4)
        first_port = str(first.getsockname()[1])
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as second:
            requests(second, 3)
            second_port = str(second.getsockname()[1])
            first.close()
            deadline = time.monotonic() + 5
            while not seen[0]["check"]() and time.monotonic() < deadline:
                time.sleep(0.02)
            assert seen[0]["check"]() and not seen[4]["check"]()
    finally:
        server.stop()
    assert [s["port"] for s in seen] == [first_port] * 4 + [second_port] * 3
    assert all(s["addr"] == ("127.0.0.1", "127.0.0.1") and not s["added"] for s in seen)
    assert len({id(s["environ"]) for s in seen}) == len(seen)
    assert len({id(s["check"]) for s in seen[:4]}) == 1
    assert seen[4]["check"] is seen[6]["check"] is not seen[0]["check"]


def test_a_kept_alive_connections_header_fields_are_each_requests_own() -> None:
    """A connection's environ template holds the header fields of its second request (a
    client mostly repeats them): each later request still sees exactly its own fields,
    none it lacks, with its own values, repeated ones joined."""
    seen: list[dict[str, str]] = []

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        seen.append(
            {k: v for k, v in environ.items() if k.startswith("HTTP_") or k.startswith("CONTENT_")}
        )
        environ.pop("wsgi.input").read()
        start_response("200 OK", [("Content-Length", "2")])
        return [b"ok"]

    heads = [
        b"Host: a\r\nX-A: 1\r\n",
        b"Host: a\r\nX-A: 1\r\nCookie: c=1\r\nUser-Agent: ua\r\n",  # the template's
        b"Host: a\r\nCookie: c=1\r\nUser-Agent: ua\r\n",
        b"User-Agent: ua\r\nHost: b\r\nX-A: 2\r\nX-A: 3\r\nX-New: n\r\nContent-Length: 3\r\n",
        b"Host: a\r\nX-A: 1\r\nCookie: c=1\r\nUser-Agent: ua\r\n",
        b"host: a\r\nx-a: 1\r\nCOOKIE: c=2\r\nuser-agent: ua\r\n",
        b"Host: a\r\n",
    ]
    expected = [
        {"HTTP_HOST": "a", "HTTP_X_A": "1"},
        {"HTTP_HOST": "a", "HTTP_X_A": "1", "HTTP_COOKIE": "c=1", "HTTP_USER_AGENT": "ua"},
        {"HTTP_HOST": "a", "HTTP_COOKIE": "c=1", "HTTP_USER_AGENT": "ua"},
        {
            "HTTP_USER_AGENT": "ua",
            "HTTP_HOST": "b",
            "HTTP_X_A": "2, 3",
            "HTTP_X_NEW": "n",
            "CONTENT_LENGTH": "3",
        },
        {"HTTP_HOST": "a", "HTTP_X_A": "1", "HTTP_COOKIE": "c=1", "HTTP_USER_AGENT": "ua"},
        {"HTTP_HOST": "a", "HTTP_X_A": "1", "HTTP_COOKIE": "c=2", "HTTP_USER_AGENT": "ua"},
        {"HTTP_HOST": "a"},
    ]
    server = Running(app, threads=1)
    try:
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            for head in heads:
                body = b"abc" if b"Content-Length" in head else b""
                answer(sock, b"GET / HTTP/1.1\r\n" + head + b"\r\n" + body)
    finally:
        server.stop()
    assert seen == expected


def test_a_kept_alive_connections_targets_are_each_requests_own(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A connection's environ template holds the target keys of the request it was made
    for: a request for the same target sets none of them, any other sets all three (an
    empty query included), and the path in the log is the request's own."""
    seen: list[tuple[str, str, str]] = []

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        seen.append((environ["PATH_INFO"], environ["QUERY_STRING"], environ["REQUEST_URI"]))
        if "HTTP_X_BOOM" in environ:
            raise RuntimeError("boom")
        start_response("200 OK", [("Content-Length", "2")])
        return [b"ok"]

    targets = [
        b"/a?x=1",
        b"/a?x=1",  # the template's
        b"/a?x=1",
        b"/b",
        b"/a?x=1",
        b"/c%20d?",
        b"http://h/abs?z=2",
        b"/a?x=1",
        b"/a?x=1 boom",  # the template's target again, and the application fails
    ]
    server = Running(app, threads=1)
    try:
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            for target in targets:
                target, _, boom = target.partition(b" ")
                extra = b"X-Boom: 1\r\n" if boom else b""
                raw = b"GET " + target + b" HTTP/1.1\r\nHost: h\r\n" + extra + b"\r\n"
                data = answer(sock, raw, until=(b"\r\n\r\nok", b"HTTP/1.1 500 Internal"))
                if b"500 Internal" in data:
                    break
    finally:
        server.stop()
    assert seen == [
        ("/a", "x=1", "/a?x=1"),
        ("/a", "x=1", "/a?x=1"),
        ("/a", "x=1", "/a?x=1"),
        ("/b", "", "/b"),
        ("/a", "x=1", "/a?x=1"),
        ("/c d", "", "/c%20d?"),
        ("/abs", "z=2", "http://h/abs?z=2"),
        ("/a", "x=1", "/a?x=1"),
        ("/a", "x=1", "/a?x=1"),
    ]
    assert any("Exception while serving /a" in r.getMessage() for r in caplog.records)


def fields_and_targets_seen(requests: list[tuple[str, str]]) -> list[dict[str, str]]:
    """Send each `(target, header lines)` as a GET on one kept-alive connection to a
    one-thread server; the header fields and target keys each request's environ held."""
    seen: list[dict[str, str]] = []

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        seen.append(
            {
                k: v
                for k, v in environ.items()
                if k.startswith("HTTP_") or k in ("PATH_INFO", "QUERY_STRING", "REQUEST_URI")
            }
        )
        start_response("200 OK", [("Content-Length", "2")])
        return [b"ok"]

    server = Running(app, threads=1)
    try:
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            for target, head in requests:
                answer(sock, f"GET {target} HTTP/1.1\r\n{head}\r\n".encode())
    finally:
        server.stop()
    return seen


def test_a_kept_alive_connections_template_keeps_no_large_field_or_target() -> None:
    """What a connection's template holds is bounded (an idle kept-alive connection keeps
    little, whatever its requests carried): a large field or a long target is set for each
    request instead, and every request still sees exactly its own."""
    big = "b" * 3000
    long_path = "/" + "p" * 700
    requests = [
        ("/x?q", f"Host: h\r\nX-Big: {big}\r\nX-Small: s\r\n"),
        (f"{long_path}?q", f"Host: h\r\nX-Big: {big}\r\nX-Small: s\r\n"),  # the template's
        (f"{long_path}?q", f"Host: h\r\nX-Big: {big}\r\nX-Small: s\r\n"),
        ("/y", "Host: h\r\nX-Small: s\r\n"),
        (long_path, f"Host: h\r\nX-Big: {big}c\r\n"),
    ]
    seen = fields_and_targets_seen(requests)
    full = {"HTTP_HOST": "h", "HTTP_X_BIG": big, "HTTP_X_SMALL": "s"}
    assert seen == [
        {**full, "PATH_INFO": "/x", "QUERY_STRING": "q", "REQUEST_URI": "/x?q"},
        {**full, "PATH_INFO": long_path, "QUERY_STRING": "q", "REQUEST_URI": f"{long_path}?q"},
        {**full, "PATH_INFO": long_path, "QUERY_STRING": "q", "REQUEST_URI": f"{long_path}?q"},
        {
            "HTTP_HOST": "h",
            "HTTP_X_SMALL": "s",
            "PATH_INFO": "/y",
            "QUERY_STRING": "",
            "REQUEST_URI": "/y",
        },
        {
            "HTTP_HOST": "h",
            "HTTP_X_BIG": big + "c",
            "PATH_INFO": long_path,
            "QUERY_STRING": "",
            "REQUEST_URI": long_path,
        },
    ]


@pytest.mark.parametrize("extra", [-1, 0, 1])
def test_a_kept_alive_connections_template_bounds_hold_at_their_edges(extra: int) -> None:
    """At, one under and one over the template's bounds (2,048 bytes of field names and
    values, a 512-byte target), each request of a connection still sees exactly its own
    fields and target, whether the template holds them or they are set per request."""
    # Host + h is 5 bytes; X-Edge's name is 6: its value fills the rest to 2,048 + extra.
    edge = "e" * (2048 + extra - 5 - 6)
    path = "/" + "t" * (512 + extra - 3)  # and "?q" makes the target 512 + extra
    target = path + "?q"
    assert len(target) == 512 + extra
    requests = [
        (target, f"Host: h\r\nX-Edge: {edge}\r\n"),
        (target, f"Host: h\r\nX-Edge: {edge}\r\n"),  # the template's
        (target, f"Host: h\r\nX-Edge: {edge}\r\n"),
        ("/o", "Host: h\r\n"),
        (target, f"Host: h\r\nX-Edge: {edge}f\r\n"),
        (path, f"Host: h\r\nX-Edge: {edge}\r\n"),
    ]
    seen = fields_and_targets_seen(requests)
    same = {
        "HTTP_HOST": "h",
        "HTTP_X_EDGE": edge,
        "PATH_INFO": path,
        "QUERY_STRING": "q",
        "REQUEST_URI": target,
    }
    assert seen == [
        same,
        same,
        same,
        {"HTTP_HOST": "h", "PATH_INFO": "/o", "QUERY_STRING": "", "REQUEST_URI": "/o"},
        {**same, "HTTP_X_EDGE": edge + "f"},
        {**same, "QUERY_STRING": "", "REQUEST_URI": path},
    ]
