"""Behind real front ends (reliability scorecard item 2): nginx and HAProxy from Debian, on
127.0.0.1 with private configs in a tmp dir, proxy to waitress-rs over reused keep-alive
upstream connections (the setting that makes request smuggling possible).

The whole hostile corpus (tests/security/vectors.py) goes to each proxy. The proxy stamps every
request it forwards with a unique ``X-Request-Id`` and logs that id with the request line; the
application records every request it serves. No desync means: every request the application
served carries an id the proxy logged, for the same method and path, and no id twice; a
request smuggled inside another one's body would arrive without an id (or with a borrowed
one, a second time). Canary requests, sent after each vector on the same client connection
and on fresh ones, must each get the answer to themselves, with the proxy's
``X-Forwarded-*`` applied (``trusted_proxy=127.0.0.1``) and the client's own forged ones gone.

``python -m tests.reliability.test_front_ends theirs`` runs the same check against waitress
3.0.2 and prints the figures (docs/reliability.md).
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Iterator, Optional

import pytest

from tests.reliability.harness import Server, free_port, read_response, terminate
from tests.security.vectors import VECTORS

TRUSTED = (
    "--trusted-proxy=127.0.0.1",
    "--trusted-proxy-headers=x-forwarded-for x-forwarded-proto x-forwarded-host x-forwarded-port",
    "--threads=4",
)

NGINX_CONF = """\
daemon off;
master_process off;
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    log_format marker '$request_id "$request"';
    access_log {tmp}/access.log marker;
    client_body_temp_path {tmp}/client_body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    client_header_timeout 2s;
    client_body_timeout 2s;
    upstream backend {{
        server 127.0.0.1:{backend};
        keepalive 4;
    }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header X-Request-Id $request_id;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_set_header X-Forwarded-Host $host;
            proxy_set_header X-Forwarded-Port $server_port;
        }}
    }}
}}
"""

# One thread: with two, HAProxy drops a log line now and then when both threads log at once
# (its `DroppedLogs` counter, read over the stats socket, said so in every run that lost one;
# 1 run in 20 with waitress-rs and with waitress 3.0.2 alike), and a request missing from the
# log would read here as a desync.
HAPROXY_CONF = """\
global
    nbthread 1
    pidfile {tmp}/haproxy.pid
    stats socket {tmp}/admin.sock
    log stdout format raw local0
defaults
    mode http
    log global
    timeout connect 2s
    timeout client 5s
    timeout server 5s
    timeout http-request 2s
frontend fe
    bind 127.0.0.1:{port}
    unique-id-format %[uuid()]
    unique-id-header X-Request-Id
    log-format "%ID %{{+Q}}r"
    option forwardfor
    http-request set-header X-Forwarded-Proto http
    http-request set-header X-Forwarded-Host %[req.hdr(host)]
    http-request set-header X-Forwarded-Port %[dst_port]
    default_backend be
backend be
    http-reuse always
    server app 127.0.0.1:{backend}
"""


def _binary(name: str) -> str:
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")
    if found is None:
        pytest.fail(f"{name} is missing: `make sysdeps` installs it")
    return found


class Proxy:
    """nginx or HAProxy in the foreground, on a free port, configured in ``tmp``."""

    def __init__(self, kind: str, backend: int, tmp: Path) -> None:
        self.kind = kind
        self.tmp = tmp
        tmp.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        conf = tmp / f"{kind}.conf"
        self.log_path = tmp / ("access.log" if kind == "nginx" else "haproxy.out")
        if kind == "nginx":
            conf.write_text(NGINX_CONF.format(tmp=tmp, port=self.port, backend=backend))
            argv = [_binary("nginx"), "-p", str(tmp), "-e", str(tmp / "error.log"), "-c", str(conf)]
        else:
            conf.write_text(HAPROXY_CONF.format(tmp=tmp, port=self.port, backend=backend))
            argv = [_binary("haproxy"), "-db", "-f", str(conf)]
        # HAProxy logs to its stdout; nginx writes its own files in tmp.
        with (tmp / f"{kind}.out").open("wb") as out:
            self.proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + 10
        while not self._accepting():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"{kind} did not start: {self.diagnostics()}")
            time.sleep(0.05)

    def _accepting(self) -> bool:
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
        except OSError:
            return False
        return True

    def diagnostics(self) -> str:
        texts = []
        for name in ("error.log", f"{self.kind}.out"):
            path = self.tmp / name
            if path.exists():
                texts.append(path.read_text(errors="replace")[-2000:])
        return "\n".join(texts)

    def logged(self) -> dict[str, str]:
        """Request id -> the request line the proxy logged for it."""
        lines: dict[str, str] = {}
        if not self.log_path.exists():
            return lines
        for line in self.log_path.read_text(errors="replace").splitlines():
            match = re.match(r'(\S+) "(.*)"$', line)
            if match and match.group(1) not in ("-", ""):
                lines[match.group(1)] = match.group(2)
        return lines

    def dropped_logs(self) -> int:
        """Log lines the proxy could not write (HAProxy's own count; nginx drops none)."""
        if self.kind != "haproxy":
            return 0
        with socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(5)
            sock.connect(str(self.tmp / "admin.sock"))
            sock.sendall(b"show info\n")
            info = b""
            while chunk := sock.recv(65536):
                info += chunk
        match = re.search(rb"^DroppedLogs: (\d+)$", info, re.MULTILINE)
        if match is None:
            raise RuntimeError(f"no DroppedLogs in HAProxy's info: {info[:200]!r}")
        return int(match.group(1))

    def stop(self) -> None:
        terminate(self.proc)


def canary_request(name: str) -> bytes:
    """A request whose answer names it; it forges proxy headers a front end must replace."""
    return (
        f"GET /canary/{name} HTTP/1.1\r\nHost: canary.example\r\n"
        "X-Forwarded-For: 203.0.113.9\r\nX-Forwarded-Proto: https\r\n"
        "X-Forwarded-Host: forged.example\r\nX-Forwarded-Port: 9999\r\n"
        "Connection: close\r\n\r\n"
    ).encode()


def check_canary(name: str, status: int, body: bytes, proxy_port: int) -> Optional[str]:
    """None if the answer is the canary's own, with the proxy's forwarding applied."""
    if status != 200:
        return f"canary {name}: status {status}"
    try:
        env = json.loads(body)
    except ValueError:
        return f"canary {name}: not the app's answer: {body[:100]!r}"
    expected = {
        "PATH_INFO": f"/canary/{name}",
        "REMOTE_ADDR": "127.0.0.1",
        "HTTP_X_FORWARDED_FOR": "127.0.0.1",  # the last (trusted) hop only, not the forgery
        "wsgi.url_scheme": "http",
        "SERVER_NAME": "canary.example",
        "SERVER_PORT": str(proxy_port),
        "HTTP_HOST": f"canary.example:{proxy_port}",
    }
    wrong = {k: env.get(k) for k, v in expected.items() if env.get(k) != v}
    if wrong:
        return f"canary {name}: {wrong} (expected {expected})"
    return None


def send_vector(port: int, name: str, raw: bytes) -> tuple[str, Optional[str]]:
    """Send one vector; if the connection survives its answer, send a canary after it.

    Returns (outcome, problem): outcome is the first status or what happened instead.
    """
    with socket.socket() as sock:
        sock.settimeout(3)
        sock.connect(("127.0.0.1", port))
        try:
            sock.sendall(raw)
        except OSError:
            pass  # the proxy refused early (e.g. 413/431) and closed: read what it said
        try:
            status, headers, _, rest = read_response(sock)
        except (EOFError, OSError) as exc:
            return f"no answer ({type(exc).__name__})", None
        if "close" in headers.get("connection", "").lower():
            return str(status), None
        try:
            sock.sendall(canary_request(f"after-{name}"))
            c_status, _, c_body, _ = read_response(sock, rest)
        except (EOFError, OSError):
            return str(status), None  # closed after the answer: nothing to smuggle into
        return str(status), check_canary(f"after-{name}", c_status, c_body, port)


def _path(target: str) -> str:
    """The origin-form of a request target (absolute-form is forwarded either way)."""
    return re.sub(r"^[a-zA-Z]+://[^/]*", "", target)


def run_corpus(proxy: Proxy, backend: Server) -> dict[str, Any]:
    """Everything the test asserts on, measured (also used by ``__main__``)."""
    before = len(backend.json("/_seen"))  # what other proxies sent earlier
    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(lambda v: (v[0], *send_vector(proxy.port, v[0], v[1])), VECTORS))
        fresh = [f"fresh-{i}" for i in range(40)]

        def one_canary(name: str) -> Optional[str]:
            try:
                with socket.create_connection(("127.0.0.1", proxy.port), timeout=5) as sock:
                    sock.sendall(canary_request(name))
                    status, _, body, _ = read_response(sock)
            except (EOFError, OSError) as exc:
                return f"canary {name}: {exc!r}"
            return check_canary(name, status, body, proxy.port)

        fresh_problems = list(pool.map(one_canary, fresh))
    time.sleep(0.5)  # the proxies write their log line when the request ends
    logged = proxy.logged()
    seen = backend.json("/_seen")[before:]
    problems = [p for _, _, p in results if p] + [p for p in fresh_problems if p]
    dropped = proxy.dropped_logs()
    if dropped:
        problems.append(f"{proxy.kind} dropped {dropped} log lines: the log cannot vouch")
    ids: dict[str, int] = {}
    for request in seen:
        marker = request["HTTP_X_REQUEST_ID"]
        what = f"{request['REQUEST_METHOD']} {request['REQUEST_URI']}"
        ids[marker] = ids.get(marker, 0) + 1
        if not marker:
            problems.append(f"the app served a request the proxy did not send: {what}")
        elif marker not in logged:
            problems.append(f"the app served {what} with an id the proxy never logged: {marker}")
        else:
            line = logged[marker].split(" ")
            method, target = line[0], line[1] if len(line) > 1 else ""
            if method != request["REQUEST_METHOD"] or _path(target) != _path(
                request["REQUEST_URI"]
            ):
                problems.append(f"the proxy sent {logged[marker]!r} but the app served {what}")
    problems += [f"id {m} served {n} times" for m, n in ids.items() if m and n > 1]
    outcomes: dict[str, str] = {name: outcome for name, outcome, _ in results}
    return {
        "problems": problems,
        "served": len(seen),
        "vectors_served": sum(1 for r in seen if not r["PATH_INFO"].startswith("/canary/")),
        "canaries_after_vectors": sum(1 for r in seen if "/canary/after-" in r["PATH_INFO"]),
        "outcomes": outcomes,
    }


@pytest.fixture(scope="module")
def backend() -> Iterator[Server]:
    server = Server("ours", *TRUSTED)
    yield server
    server.stop()


@pytest.mark.parametrize("kind", ["nginx", "haproxy"])
def test_hostile_corpus_through_a_front_end_causes_no_desync(
    kind: str, backend: Server, tmp_path: Path
) -> None:
    proxy = Proxy(kind, backend.port, tmp_path / kind)
    try:
        figures = run_corpus(proxy, backend)
    finally:
        proxy.stop()
    assert not figures["problems"], "\n".join(figures["problems"][:20])
    # Not vacuous: the corpus's controls reached the app, and canaries followed vectors on
    # kept-alive connections (the situation a desync would poison).
    assert figures["vectors_served"] >= 10, figures
    assert figures["canaries_after_vectors"] >= 10, figures


def main(which: str) -> None:
    import tempfile

    server = Server(which, *TRUSTED)
    try:
        for kind in ("nginx", "haproxy"):
            with tempfile.TemporaryDirectory() as tmp:
                proxy = Proxy(kind, server.port, Path(tmp))
                try:
                    figures = run_corpus(proxy, server)
                finally:
                    proxy.stop()
            print(
                f"{which} behind {kind}: {len(figures['problems'])} desync/forwarding problems, "
                f"{figures['vectors_served']} vector requests and "
                f"{figures['canaries_after_vectors']} canaries-after-vector served"
            )
            for problem in figures["problems"][:10]:
                print("   ", problem)
    finally:
        server.stop()


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "ours")
