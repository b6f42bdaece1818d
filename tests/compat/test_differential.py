"""Differential suite: the same raw requests to waitress 3.0.2 (run from its own venv,
``.venv-waitress``, made by ``make test``; never installed in the project's venv) and to
waitress-rs, both serving ``tests/apps/compat_app.py``. Status, headers (but ``Date``),
body and whether the connection stayed open must match, except where SPEC allows a
difference (each listed in docs/compat.md and tagged here)."""

from __future__ import annotations

import re
import socket
import subprocess
from pathlib import Path
from typing import Iterator, NamedTuple, Optional

import pytest

ROOT = Path(__file__).resolve().parents[2]
THEIRS = ROOT / ".venv-waitress" / "bin" / "waitress-serve"
OURS = ROOT / ".venv" / "bin" / "waitress-serve"


class Response(NamedTuple):
    status: bytes
    headers: list[tuple[bytes, bytes]]
    body: bytes
    kept_alive: bool


def start(executable: Path) -> tuple[subprocess.Popen[str], int]:
    proc = subprocess.Popen(
        [str(executable), "--listen=127.0.0.1:0", "--threads=2", "tests.apps.compat_app:app"],
        cwd=ROOT,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    while True:
        line = proc.stderr.readline()
        assert line, f"{executable} did not start"
        match = re.search(r"Serving on http://127\.0\.0\.1:(\d+)", line)
        if match:
            return proc, int(match.group(1))


@pytest.fixture(scope="module")
def ports() -> Iterator[tuple[int, int]]:
    if not THEIRS.exists():
        pytest.fail("waitress 3.0.2 is missing: `make test` creates .venv-waitress")
    theirs, their_port = start(THEIRS)
    ours, our_port = start(OURS)
    yield their_port, our_port
    for proc in (theirs, ours):
        proc.terminate()
        proc.wait(10)
        if proc.stderr is not None:
            proc.stderr.close()


def read_response(
    sock: socket.socket, buf: bytes, head_request: bool
) -> tuple[Optional[Response], bytes]:
    def fill() -> bool:
        nonlocal buf
        data = sock.recv(65536)
        buf += data
        return bool(data)

    while b"\r\n\r\n" not in buf:
        if not fill():
            return None, buf
    head, buf = buf.split(b"\r\n\r\n", 1)
    lines = head.split(b"\r\n")
    status = lines[0]
    headers = [tuple(line.split(b": ", 1)) for line in lines[1:]]
    names = {name.lower(): value for name, value in headers}  # type: ignore[misc]
    code = int(status.split()[1])
    body = b""
    if head_request or code in (204, 304) or code < 200:
        pass
    elif b"content-length" in names:
        length = int(names[b"content-length"])
        while len(buf) < length:
            if not fill():
                break
        body, buf = buf[:length], buf[length:]
    elif names.get(b"transfer-encoding") == b"chunked":
        while True:
            while b"\r\n" not in buf:
                fill()
            size_line, buf = buf.split(b"\r\n", 1)
            size = int(size_line, 16)
            while len(buf) < size + 2:
                fill()
            body += buf[:size]
            buf = buf[size + 2 :]
            if size == 0:
                break
    else:
        while fill():
            pass
        body, buf = buf, b""
    return Response(status, headers, body, kept_alive=True), buf  # type: ignore[arg-type]


def exchange(port: int, raw: bytes) -> Response:
    """Send ``raw``, read one response, then probe whether the connection is still open."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(raw)
        response, rest = read_response(sock, b"", raw.startswith(b"HEAD "))
        assert response is not None, "no response"
        if raw.startswith(b"HEAD "):
            return response  # waitress sends a HEAD body (D5 Q3): no reliable probe
        # Still open? A second request gets an answer only on a kept-alive connection.
        try:
            sock.sendall(b"GET /hello HTTP/1.1\r\nConnection: close\r\n\r\n")
            second, _ = read_response(sock, rest, False)
        except OSError:
            second = None
        return response._replace(kept_alive=second is not None)


def comparable(response: Response) -> Response:
    headers = [(n, v) for n, v in response.headers if n.lower() != b"date"]
    return response._replace(headers=headers)


# (id, raw request, allowed difference or None)
CASES: list[tuple[str, bytes, Optional[str]]] = [
    ("get-hello-11", b"GET /hello HTTP/1.1\r\nHost: h\r\n\r\n", None),
    ("get-hello-10", b"GET /hello HTTP/1.0\r\n\r\n", None),
    ("get-hello-10-keepalive", b"GET /hello HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", None),
    ("get-hello-11-close", b"GET /hello HTTP/1.1\r\nConnection: close\r\n\r\n", None),
    ("get-hello-11-CLOSE", b"GET /hello HTTP/1.1\r\nConnection: CLOSE\r\n\r\n", None),
    (
        "get-hello-11-keepalive-close",
        b"GET /hello HTTP/1.1\r\nConnection: keep-alive, close\r\n\r\n",
        None,
    ),
    ("get-nocl-11", b"GET /nocl HTTP/1.1\r\n\r\n", None),
    ("get-nocl-10", b"GET /nocl HTTP/1.0\r\n\r\n", None),
    ("get-nocl-10-keepalive", b"GET /nocl HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", None),
    ("get-one-11", b"GET /one HTTP/1.1\r\n\r\n", None),
    ("get-one-10-keepalive", b"GET /one HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", None),
    ("get-generator-11", b"GET /generator HTTP/1.1\r\n\r\n", None),
    ("get-generator-10", b"GET /generator HTTP/1.0\r\n\r\n", None),
    ("get-empty", b"GET /empty HTTP/1.1\r\n\r\n", None),
    ("get-headers", b"GET /headers HTTP/1.1\r\n\r\n", None),
    ("get-server-via", b"GET /server HTTP/1.1\r\n\r\n", None),
    ("get-app-date", b"GET /date HTTP/1.1\r\n\r\n", None),
    ("get-write", b"GET /write HTTP/1.1\r\n\r\n", None),
    ("get-big", b"GET /big HTTP/1.1\r\n\r\n", None),
    ("get-bigchunks", b"GET /bigchunks HTTP/1.1\r\n\r\n", None),
    ("get-long-truncated", b"GET /long HTTP/1.1\r\n\r\n", None),
    ("get-redirect", b"GET /redirect HTTP/1.1\r\n\r\n", None),
    ("get-teapot", b"GET /teapot HTTP/1.1\r\n\r\n", None),
    ("get-404", b"GET /nowhere HTTP/1.1\r\n\r\n", None),
    ("get-raise", b"GET /raise HTTP/1.1\r\n\r\n", None),
    ("get-raise-10", b"GET /raise HTTP/1.0\r\n\r\n", None),
    ("get-query", b"GET /query?a=1&b=%20c HTTP/1.1\r\n\r\n", None),
    ("get-query-empty", b"GET /query? HTTP/1.1\r\n\r\n", None),
    ("get-path-escaped", b"GET /path/a%20b HTTP/1.1\r\n\r\n", None),
    ("get-path-utf8", b"GET /path/caf%C3%A9 HTTP/1.1\r\n\r\n", None),
    ("get-path-bad-escape", b"GET /path/%zz%41 HTTP/1.1\r\n\r\n", None),
    ("get-path-double-slash", b"GET //path//x HTTP/1.1\r\n\r\n", None),
    ("get-path-fragment", b"GET /path/frag#part HTTP/1.1\r\n\r\n", None),
    (
        "get-absolute-form",
        b"GET http://example.com/path/abs?q=1 HTTP/1.1\r\nHost: example.com\r\n\r\n",
        None,
    ),
    ("get-env", b"GET /env?x=%20 HTTP/1.1\r\nHost: example.com:81\r\n\r\n", None),
    ("get-env-10", b"GET /env HTTP/1.0\r\n\r\n", None),
    ("get-env-repeated-header", b"GET /env HTTP/1.1\r\nX-Foo: a\r\nX-Foo: b\r\n\r\n", None),
    ("get-env-underscore-dropped", b"GET /env HTTP/1.1\r\nX_Foo: a\r\nX-Bar: b\r\n\r\n", None),
    (
        "get-env-proxy-cleared",
        b"GET /env HTTP/1.1\r\nX-Forwarded-For: 1.2.3.4\r\nForwarded: for=1.2.3.4\r\nX-Real-IP: 5.6.7.8\r\n\r\n",
        None,
    ),
    ("get-env-obs-text", b"GET /env HTTP/1.1\r\nX-Name: caf\xe9\r\n\r\n", None),
    ("get-env-x85-kept", b"GET /env HTTP/1.1\r\nX-Name: \x85admin\xa0\r\n\r\n", None),
    ("get-env-empty-value", b"GET /env HTTP/1.1\r\nX-Empty:\r\n\r\n", None),
    ("get-env-ows-trimmed", b"GET /env HTTP/1.1\r\nX-Ows: \t value \t\r\n\r\n", None),
    ("get-env-content-type", b"GET /env HTTP/1.1\r\nContent-Type: text/x\r\n\r\n", None),
    ("get-env-no-host-11", b"GET /env HTTP/1.1\r\n\r\n", None),
    ("get-env-http12", b"GET /env HTTP/1.1\r\nUser-Agent: test/1.0\r\nAccept: */*\r\n\r\n", None),
    ("post-echo-cl", b"POST /echo HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello", None),
    ("post-echo-cl-10", b"POST /echo HTTP/1.0\r\nContent-Length: 5\r\n\r\nhello", None),
    ("post-echo-cl-zero", b"POST /echo HTTP/1.1\r\nContent-Length: 0\r\n\r\n", None),
    (
        "post-echo-cl-leading-zeros",
        b"POST /echo HTTP/1.1\r\nContent-Length: 005\r\n\r\nhello",
        None,
    ),
    (
        "post-echo-chunked",
        b"POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
        None,
    ),
    (
        "post-echo-chunked-ext",
        b"POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5;a=b\r\nhello\r\n0\r\n\r\n",
        None,
    ),
    (
        "post-echo-chunked-trailer",
        b"POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nX-T: 1\r\n\r\n",
        None,
    ),
    (
        "post-echo-chunked-upper",
        b"POST /echo HTTP/1.1\r\nTransfer-Encoding: Chunked\r\n\r\n0\r\n\r\n",
        None,
    ),
    (
        "post-env-chunked-length",
        b"POST /env HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
        None,
    ),
    (
        "post-env-form",
        b"POST /env HTTP/1.1\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 7\r\n\r\na=1&b=2",
        None,
    ),
    ("put-echo", b"PUT /echo HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc", None),
    ("delete-hello", b"DELETE /hello HTTP/1.1\r\n\r\n", None),
    ("options-star", b"OPTIONS * HTTP/1.1\r\n\r\n", None),
    ("patch-echo", b"PATCH /echo HTTP/1.1\r\nContent-Length: 1\r\n\r\nx", None),
    ("get-leading-crlf", b"\r\nGET /hello HTTP/1.1\r\n\r\n", None),
    ("head-hello", b"HEAD /hello HTTP/1.1\r\n\r\n", "D5-Q3"),
    ("head-nocl", b"HEAD /nocl HTTP/1.1\r\n\r\n", "D5-Q3"),
    ("get-limit-body", b"POST /echo HTTP/1.1\r\nContent-Length: 2000000000\r\n\r\n", None),
    ("get-bad-header", b"GET /hello HTTP/1.1\r\nfoo : bar\r\n\r\n", "detail"),
    ("get-lowercase-method", b"get /hello HTTP/1.1\r\n\r\n", "detail"),
    ("post-bad-cl", b"POST /echo HTTP/1.1\r\nContent-Length: +5\r\n\r\nhello", None),
    ("post-te-gzip", b"POST /echo HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", None),
]


@pytest.mark.parametrize(("case_id", "raw", "allowed"), CASES, ids=[c[0] for c in CASES])
def test_same_response_as_waitress(
    ports: tuple[int, int], case_id: str, raw: bytes, allowed: Optional[str]
) -> None:
    their_port, our_port = ports
    theirs = comparable(exchange(their_port, raw))
    ours = comparable(exchange(our_port, raw))
    if allowed == "D5-Q3":
        # SPEC D5 Q3: no body for HEAD; waitress sends whatever the app yields, so its
        # connection cannot be probed with a second request either. Heads must match.
        assert (ours.status, ours.headers) == (theirs.status, theirs.headers)
        return
    if allowed == "detail":
        # Our error bodies name the rule in our words (docs/compat.md); status and
        # framing headers must still match.
        assert ours.status == theirs.status
        assert ours.kept_alive == theirs.kept_alive
        return
    assert ours == theirs
