"""Scorecard item 9, property: generated valid requests, written to a real socket in random
pieces, reach the application as the generator's model says (SPEC §3.3-§3.5, §3.8)."""

from __future__ import annotations

import json
import string
from dataclasses import dataclass, field
from typing import Iterator, Optional
from urllib.parse import unquote_to_bytes

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.reliability.support import ServerProcess, read_response, read_until_eof


@pytest.fixture(scope="module")
def server() -> Iterator[ServerProcess]:
    process = ServerProcess(app="tests.apps.reliability_apps:env_app")
    yield process
    process.stop()


TCHAR = "!#$&'*+-.^`|~" + string.ascii_letters + string.digits  # no "%" or "_": see below
UNRESERVED = string.ascii_letters + string.digits + "-._~"
PCHAR = UNRESERVED + "!$&'()*+,;=:@"
VISIBLE = "".join(chr(c) for c in range(0x21, 0x7F))
OBS_TEXT = "".join(chr(c) for c in range(0x80, 0x100))


@dataclass
class Model:
    """A generated request and what the application must see."""

    method: str
    target: str
    version: str
    headers: list[tuple[str, str]]  # as sent (with surrounding whitespace)
    body: bytes
    framing: str  # "none", "length", "chunked"
    chunks: list[bytes] = field(default_factory=list)
    close: bool = False

    def raw(self) -> bytes:
        lines = [f"{self.method} {self.target} {self.version}"]
        lines += [f"{name}:{value}" for name, value in self.headers]
        if self.framing == "length":
            lines.append(f"Content-Length: {len(self.body)}")
        elif self.framing == "chunked":
            lines.append("Transfer-Encoding: chunked")
        if self.close:
            lines.append("Connection: close")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        if self.framing != "chunked":
            return head + self.body
        chunked = b"".join(b"%x;ext=1\r\n%s\r\n" % (len(c), c) for c in self.chunks if c)
        return head + chunked + b"0\r\nX-Trailer: t\r\n\r\n"

    def environ(self) -> dict[str, str]:
        path, _, query = self.target.partition("?")
        path_info = unquote_to_bytes(path).decode("latin-1")
        expected = {
            "REQUEST_METHOD": self.method,
            "PATH_INFO": "/" + path_info.lstrip("/"),  # a leading run of "/" is one
            "QUERY_STRING": query,
            "REQUEST_URI": self.target,
            "SERVER_PROTOCOL": self.version,
            "body": self.body.decode("latin-1"),
        }
        for name, value in self.headers:
            if "_" in name:
                continue  # dropped (SPEC §3.4)
            key = name.upper().replace("-", "_")
            key = key if key == "CONTENT_TYPE" else "HTTP_" + key
            value = value.strip(" \t")
            expected[key] = f"{expected[key]}, {value}" if key in expected else value
        if self.close:
            expected["HTTP_CONNECTION"] = "close"
        if self.framing != "none":
            expected["CONTENT_LENGTH"] = str(len(self.body))
        return expected


def escaped(allowed: str) -> st.SearchStrategy[str]:
    """Strings of ``allowed`` characters or of any bytes: a byte in ``allowed`` is sent as
    it is or as ``%XX`` (a random mask picks), every other byte as ``%XX`` (upper or lower
    case hex). Few draws per string keep generation cheap."""

    def render(pair: tuple[bytes, int]) -> str:
        raw, mask = pair
        out = []
        for i, byte in enumerate(raw):
            if chr(byte) in allowed and not mask >> i & 1:
                out.append(chr(byte))
            else:
                out.append(f"%{byte:02X}" if mask >> (i + 1) & 1 else f"%{byte:02x}")
        return "".join(out)

    raw = st.one_of(st.text(allowed, max_size=16).map(str.encode), st.binary(max_size=16))
    return st.tuples(raw, st.integers(0, 2**18 - 1)).map(render)


segment = escaped(PCHAR)
path = st.lists(segment, min_size=1, max_size=5).map(lambda parts: "/" + "/".join(parts))
query = st.one_of(st.none(), escaped(PCHAR + "/?"))
method = st.one_of(
    st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"]),
    st.text(string.ascii_uppercase + "-", min_size=1, max_size=8).filter(
        lambda m: m not in ("HEAD", "CONNECT")
    ),
)
# A small pool of names, in random case, so repeats (joined with ", ") are common; a name
# with "_" must be dropped.
header_name = st.tuples(
    st.sampled_from(["X-A", "X-B", "X-Long-Name", "X-H" + TCHAR[:13], "X_Under", "Content-Type"]),
    st.integers(0, 2**16 - 1),
).map(lambda pair: "".join(c.lower() if pair[1] >> i & 1 else c for i, c in enumerate(pair[0])))
header_value = st.tuples(
    st.sampled_from(["", " ", "\t", "  "]),
    st.text(VISIBLE + OBS_TEXT + " \t", max_size=30).map(lambda v: v.strip(" \t")),
    st.sampled_from(["", " ", "\t "]),
).map("".join)


@st.composite
def requests(draw: st.DrawFn) -> tuple[Model, list[int]]:
    version = draw(st.sampled_from(["HTTP/1.0", "HTTP/1.1"]))
    target = draw(path)
    q = draw(query)
    if q is not None:
        target += "?" + q
    headers = draw(st.lists(st.tuples(header_name, header_value), max_size=8))
    # One Content-Type at most (a second one is refused, SPEC D11).
    seen_type = False
    kept = []
    for name, value in headers:
        if name.lower() == "content-type":
            if seen_type:
                continue
            seen_type = True
        kept.append((name, value))
    if draw(st.booleans()):
        kept.append(("Host", " " + draw(st.sampled_from(["example.com", "h:8080", "127.0.0.1"]))))
    framings = ["none", "length", "chunked"] if version == "HTTP/1.1" else ["none", "length"]
    framing = draw(st.sampled_from(framings))
    body = b"" if framing == "none" else draw(st.binary(max_size=3000))
    chunks: list[bytes] = []
    if framing == "chunked":
        cuts = sorted(draw(st.lists(st.integers(0, len(body)), max_size=5)))
        chunks = [body[a:b] for a, b in zip([0, *cuts], [*cuts, len(body)])]
    model = Model(
        method=draw(method),
        target=target,
        version=version,
        headers=kept,
        body=body,
        framing=framing,
        chunks=chunks,
        close=version == "HTTP/1.1" and draw(st.booleans()),
    )
    size = len(model.raw())
    splits = sorted(set(draw(st.lists(st.integers(1, max(size - 1, 1)), max_size=8))))
    return model, splits


def seen(server: ServerProcess, raw: bytes, splits: list[int]) -> Optional[bytes]:
    with server.connect() as sock:
        for start, end in zip([0, *splits], [*splits, len(raw)]):
            sock.sendall(raw[start:end])
        response = read_response(sock)
        if response is not None:
            read_until_eof(sock, limit=0)
    if response is None:
        return None
    assert response[0] == 200, (response[0], raw[:300], response[2][:300])
    return response[2]


@pytest.mark.timeout(300)  # about 40 s alone; more on a loaded CI machine
@settings(
    max_examples=2000,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(case=requests())
def test_the_environ_matches_the_generated_request(
    server: ServerProcess, case: tuple[Model, list[int]]
) -> None:
    model, splits = case
    raw = model.raw()
    body = seen(server, raw, splits)
    assert body is not None, f"no response to {raw[:300]!r}"
    environ = json.loads(body)
    expected = model.environ()
    keys = set(expected) | {"CONTENT_LENGTH", "CONTENT_TYPE"}
    keys |= {key for key in environ if key.startswith("HTTP_")}
    assert {k: environ.get(k) for k in keys} == {k: expected.get(k) for k in keys}, raw[:500]
