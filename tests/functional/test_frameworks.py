"""Flask and Django apps served by `waitress-serve` (a subprocess), as a user runs them:
UTF-8 form posts, a 10 MiB multipart upload (spooled to disk), streaming, a redirect that
sets a cookie, JSON, and a 500."""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import re
import subprocess
import sys
import urllib.parse
from pathlib import Path
from typing import Iterator

import pytest

ROOT = Path(__file__).resolve().parents[2]
SERVE = Path(sys.executable).with_name("waitress-serve")


@pytest.fixture(
    scope="module", params=["tests.apps.flask_app:app", "tests.apps.django_app:application"]
)
def port(request: pytest.FixtureRequest) -> Iterator[int]:
    proc = subprocess.Popen(
        [str(SERVE), "--listen=127.0.0.1:0", str(request.param)],
        cwd=ROOT,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    while True:
        line = proc.stderr.readline()
        assert line, "waitress-serve did not start"
        match = re.search(r"Serving on http://127\.0\.0\.1:(\d+)", line)
        if match:
            break
    yield int(match.group(1))
    proc.terminate()
    proc.wait(10)
    proc.stderr.close()


def call(
    port: int, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request(method, path, body=body, headers=headers or {})
    response = conn.getresponse()
    data = response.read()
    conn.close()
    return response.status, {k.lower(): v for k, v in response.getheaders()}, data


def test_utf8_form_post(port: int) -> None:
    body = urllib.parse.urlencode({"name": "Zoë 🚀"}).encode()
    status, _, data = call(
        port, "POST", "/form", body, {"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert status == 200
    assert json.loads(data) == {"name": "Zoë 🚀"}


def test_ten_mib_multipart_upload(port: int) -> None:
    payload = os.urandom(10 * 1024 * 1024)
    boundary = "waitress-rs-boundary"
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="blob.bin"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        + payload
        + f"\r\n--{boundary}--\r\n".encode()
    )
    status, _, data = call(
        port, "POST", "/upload", body, {"Content-Type": f"multipart/form-data; boundary={boundary}"}
    )
    assert status == 200
    result = json.loads(data)
    assert result["size"] == len(payload)
    assert result["sha256"] == hashlib.sha256(payload).hexdigest()


def test_streaming_response(port: int) -> None:
    status, headers, data = call(port, "GET", "/stream")
    assert status == 200
    assert data == b"".join(f"part {n}\n".encode() for n in range(5))
    assert headers.get("transfer-encoding") == "chunked"


def test_redirect_with_cookie_then_json(port: int) -> None:
    status, headers, _ = call(port, "GET", "/redirect")
    assert status == 302
    assert headers["location"].endswith("/json")
    assert "flavour=oatmeal" in headers["set-cookie"]
    status, headers, data = call(port, "GET", "/json", headers={"Cookie": "flavour=oatmeal"})
    assert status == 200 and headers["content-type"].startswith("application/json")
    assert json.loads(data) == {"ok": True, "cookie": "oatmeal"}


def test_a_view_that_raises_is_a_500(port: int) -> None:
    status, _, _ = call(port, "GET", "/error")
    assert status == 500
