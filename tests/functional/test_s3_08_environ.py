"""SPEC §3.8 The WSGI environ."""

from __future__ import annotations

import json

from tests.functional.serving import Running, body_of


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
