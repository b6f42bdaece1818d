"""A WSGI app whose routes each break or bend one rule of SPEC §3.9/§3.10, for the
functional tests of the server's start_response, write() and framing."""

from __future__ import annotations

import sys
import urllib.parse
from typing import Any, Callable, Iterable

StartResponse = Callable[..., Any]
PLAIN = [("Content-Type", "text/plain")]


class IntThree(str):
    """A str whose int() is 3, whatever it reads."""

    def __int__(self) -> int:
        return 3


def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    route = environ["PATH_INFO"]
    if route == "/second-call":
        start_response("200 OK", PLAIN)
        start_response("500 Oops", PLAIN)
        return [b"never"]
    if route == "/exc-info-before-head":
        start_response("200 OK", PLAIN)
        try:
            raise ValueError("handled")
        except ValueError:
            start_response("503 Service Unavailable", PLAIN, sys.exc_info())
        return [b"replaced"]
    if route == "/exc-info-after-head":
        write = start_response("200 OK", PLAIN)
        write(b"partial")
        try:
            raise ValueError("too late")
        except ValueError:
            start_response("500 Oops", PLAIN, sys.exc_info())
        return [b"never"]
    if route == "/hop-by-hop":
        start_response("200 OK", [("Connection", "keep-alive")])
        return [b"never"]
    if route == "/status-not-str":
        start_response(b"200 OK", PLAIN)
        return [b"never"]
    if route == "/header-crlf":
        start_response("200 OK", [("X-Evil", "a\r\nInjected: yes")])
        return [b"never"]
    if route == "/status-nul":
        start_response("200 O\0K", PLAIN)
        return [b"never"]
    if route == "/str-body":
        start_response("200 OK", PLAIN)
        return ["text, not bytes"]
    if route == "/too-long":
        start_response("200 OK", [("Content-Length", "3")])
        return [b"abc", b"def"]
    if route == "/no-content-with-body":
        start_response("204 No Content", [("Content-Length", "5")])
        return [b"hello"]
    if route == "/names":
        start_response("200 OK", [("x-lower", "1"), ("ETAG", "2"), ("Content-Length", "2")])
        return [b"ok"]
    if route == "/length-kind":
        # Content-Length "2" as a plain str, or as a str whose int() is 3.
        length = "2" if environ["QUERY_STRING"] == "plain" else IntThree("2")
        start_response("200 OK", [("Content-Length", length)])
        return [b"abcdef"]
    if route == "/many-headers":
        # Forty headers; `bad=N` puts a line feed in the value of the Nth.
        bad = int(environ["QUERY_STRING"].partition("bad=")[2] or -1)
        headers = [(f"X-H{n}", "v\nx" if n == bad else "v") for n in range(40)]
        start_response("200 OK", [*headers, ("Content-Length", "2")])
        return [b"ok"]
    if route == "/padded":
        # An X-Pad header of `len` times the letter `c`.
        query = dict(part.split("=") for part in environ["QUERY_STRING"].split("&"))
        pad = query["c"] * int(query["len"])
        start_response("200 OK", [("X-Pad", pad), ("Content-Length", "2")])
        return [b"ok"]
    if route == "/echoed":
        # Status and an X-V header from the query (`s=201&v=aa`), a body of two bytes.
        query = dict(part.split("=") for part in environ["QUERY_STRING"].split("&"))
        status = {"200": "200 OK", "201": "201 Created"}[query.get("s", "200")]
        start_response(status, [("X-V", query["v"]), ("Content-Length", "2")])
        return [b"ok"]
    if route == "/merged-names":
        headers = [
            ("set-cookie", "b=2"),
            ("Zz", "1"),
            ("Set-Cookie", "a=1"),
            ("Via", "proxy"),
            ("Server", "mine"),
            ("Content-Length", "2"),
            ("Dat", "d"),
            ("Cf", "c"),
        ]
        start_response("200 OK", headers)
        return [b"ok"]
    if route == "/own-server-header":
        start_response("200 OK", [("Server", "mine"), ("Content-Length", "2")])
        return [b"ok"]
    if route == "/generator":
        start_response("200 OK", [("Content-Length", "6")])
        return (piece for piece in [b"ab", b"", b"cd", b"ef"])
    if route == "/length":
        # The Content-Length value is the query string, percent-decoded; six bytes follow.
        length = urllib.parse.unquote(environ["QUERY_STRING"])
        start_response("200 OK", [("Content-Length", length)])
        return [b"abcdef"]
    start_response("404 Not Found", [("Content-Length", "0")])
    return []
