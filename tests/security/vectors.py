"""The hostile-request corpus (SPEC Part B): raw requests and the verdict each must get.

Each vector is ``(id, raw bytes, expected)`` where ``expected`` is the status the server
answers with before closing (400, 413, 414, 431, 501, 505), or ``OK`` for a positive control
that must be accepted. Ids name the Part B row, CVE or short id (``te-x85``, ``cl-plus``…)
they cover. The same list drives the parser-level test (every split of every vector) and,
with the server, the socket-level tests.
"""

from __future__ import annotations

OK = 200

_GET = b"GET / HTTP/1.1\r\nHost: example.com\r\n"
_POST = b"POST /p HTTP/1.1\r\nHost: example.com\r\n"


def _req(*lines: bytes, start: bytes = _POST, body: bytes = b"") -> bytes:
    return start + b"".join(line + b"\r\n" for line in lines) + b"\r\n" + body


VECTORS: list[tuple[str, bytes, int]] = [
    # ---- positive controls ----
    ("ok-get", _GET + b"\r\n", OK),
    ("ok-get-http10", b"GET / HTTP/1.0\r\n\r\n", OK),
    ("ok-no-host-http11", b"GET / HTTP/1.1\r\n\r\n", OK),  # SPEC D10
    ("ok-post-cl", _req(b"Content-Length: 5", body=b"hello"), OK),
    ("ok-post-chunked", _req(b"Transfer-Encoding: chunked", body=b"5\r\nhello\r\n0\r\n\r\n"), OK),
    (
        "ok-chunked-ext",
        _req(b"Transfer-Encoding: chunked", body=b"5;a=b\r\nhello\r\n0\r\n\r\n"),
        OK,
    ),
    ("ok-chunked-trailer", _req(b"Transfer-Encoding: chunked", body=b"0\r\nX: y\r\n\r\n"), OK),
    ("ok-cl-leading-zeros", _req(b"Content-Length: 005", body=b"hello"), OK),
    ("ok-te-case", _req(b"Transfer-Encoding: Chunked", body=b"0\r\n\r\n"), OK),
    ("ok-obs-text-value", _GET + b"X-Name: caf\xe9\r\n\r\n", OK),
    ("ok-empty-value", _GET + b"X-Empty:\r\n\r\n", OK),
    ("ok-one-leading-crlf", b"\r\n" + _GET + b"\r\n", OK),
    ("ok-http-1-2", b"GET / HTTP/1.2\r\n\r\n", OK),
    ("ok-absolute-form", b"GET http://example.com/x HTTP/1.1\r\nHost: example.com\r\n\r\n", OK),
    ("ok-host-port", b"GET / HTTP/1.1\r\nHost: example.com:8080\r\n\r\n", OK),
    ("ok-host-ipv6", b"GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n", OK),
    ("ok-repeated-other-field", _GET + b"X-Foo: a\r\nX-Foo: b\r\n\r\n", OK),
    ("ok-underscore-dropped", _GET + b"X_Forwarded_For: 1.2.3.4\r\n\r\n", OK),
    ("ok-options-star", b"OPTIONS * HTTP/1.1\r\n\r\n", OK),
    ("ok-tab-in-value", _GET + b"X: a\tb\r\n\r\n", OK),
    # ---- row 1: CL.TE / TE.CL ----
    (
        "cl-te-both",
        _req(b"Content-Length: 5", b"Transfer-Encoding: chunked", body=b"0\r\n\r\n"),
        400,
    ),
    (
        "te-cl-both",
        _req(b"Transfer-Encoding: chunked", b"Content-Length: 5", body=b"0\r\n\r\n"),
        400,
    ),
    ("cl-te-both-zero", _req(b"Content-Length: 0", b"Transfer-Encoding: chunked"), 400),
    # ---- row 2: TE obfuscation ----
    ("te-xchunked", _req(b"Transfer-Encoding: xchunked"), 501),
    ("te-chunked-vtab", _req(b"Transfer-Encoding: chunked\x0b"), 400),
    ("te-nbsp", _req(b"Transfer-Encoding: \xa0chunked"), 501),
    ("te-x85", _req(b"Transfer-Encoding: \x85chunked"), 501),
    ("te-chunked-x85", _req(b"Transfer-Encoding: chunked\x85"), 501),
    ("te-quoted", _req(b'Transfer-Encoding: "chunked"'), 501),
    ("te-space-before-colon", _req(b"Transfer-Encoding : chunked"), 400),
    ("te-obs-fold", _req(b"Transfer-Encoding:", b" chunked"), 400),
    ("te-dup-header", _req(b"Transfer-Encoding: chunked", b"Transfer-Encoding: chunked"), 400),
    ("te-double-list", _req(b"Transfer-Encoding: chunked, chunked"), 400),
    ("te-not-final", _req(b"Transfer-Encoding: chunked, gzip"), 400),
    ("te-gzip-chunked", _req(b"Transfer-Encoding: gzip, chunked"), 501),
    ("te-param", _req(b"Transfer-Encoding: chunked;a=b"), 501),
    ("te-identity", _req(b"Transfer-Encoding: identity"), 501),
    ("te-empty-item", _req(b"Transfer-Encoding: , chunked"), 400),
    ("te-ff", _req(b"Transfer-Encoding: chunked\x0c"), 400),
    (
        "te-chunked-then-gzip-lines",
        _req(b"Transfer-Encoding: chunked", b"Transfer-Encoding: gzip"),
        400,
    ),
    ("te-kelvin", _req("Transfer-Encoding: \u212aunked".encode()), 501),
    # ---- row 3: duplicate / list Content-Length ----
    ("dup-cl-diff", _req(b"Content-Length: 1", b"Content-Length: 0", body=b"x"), 400),
    ("dup-cl-same", _req(b"Content-Length: 1", b"Content-Length: 1", body=b"x"), 400),
    ("cl-list-diff", _req(b"Content-Length: 1, 2", body=b"xx"), 400),
    ("cl-list-same", _req(b"Content-Length: 5, 5", body=b"hello"), 400),
    # ---- row 4: lenient CL digits ----
    ("cl-plus", _req(b"Content-Length: +5", body=b"hello"), 400),
    ("cl-minus", _req(b"Content-Length: -1"), 400),
    ("cl-minus-zero", _req(b"Content-Length: -0"), 400),
    ("cl-hex", _req(b"Content-Length: 0x5", body=b"hello"), 400),
    ("cl-underscore", _req(b"Content-Length: 1_0"), 400),
    ("cl-inner-space", _req(b"Content-Length: 1 0"), 400),
    ("cl-trailing-junk", _req(b"Content-Length: 5x"), 400),
    ("cl-empty", _req(b"Content-Length:"), 400),
    ("cl-arabic-digit", _req("Content-Length: \u0661".encode()), 400),
    ("cl-decimal", _req(b"Content-Length: 1.0"), 400),
    ("cl-huge", _req(b"Content-Length: 123456789012345678901234567890"), 400),
    ("cl-over-limit", _req(b"Content-Length: 1073741824"), 413),
    # ---- row 5: chunk sizes ----
    (
        "chunk-size-hex-prefix",
        _req(b"Transfer-Encoding: chunked", body=b"0x5\r\nhello\r\n0\r\n\r\n"),
        400,
    ),
    ("chunk-size-plus", _req(b"Transfer-Encoding: chunked", body=b"+5\r\nhello\r\n0\r\n\r\n"), 400),
    (
        "chunk-size-minus",
        _req(b"Transfer-Encoding: chunked", body=b"-5\r\nhello\r\n0\r\n\r\n"),
        400,
    ),
    ("chunk-size-underscore", _req(b"Transfer-Encoding: chunked", body=b"0_5\r\nhello\r\n"), 400),
    ("chunk-size-leading-space", _req(b"Transfer-Encoding: chunked", body=b" 5\r\nhello\r\n"), 400),
    (
        "chunk-size-trailing-space",
        _req(b"Transfer-Encoding: chunked", body=b"5 \r\nhello\r\n"),
        400,
    ),
    ("chunk-size-empty", _req(b"Transfer-Encoding: chunked", body=b"\r\nhello\r\n0\r\n\r\n"), 400),
    ("chunk-size-bad-hex", _req(b"Transfer-Encoding: chunked", body=b"5g\r\nhello\r\n"), 400),
    (
        "chunk-size-overflow",
        _req(b"Transfer-Encoding: chunked", body=b"10000000000000000\r\n"),
        400,
    ),
    ("chunk-size-over-limit", _req(b"Transfer-Encoding: chunked", body=b"FFFFFFFFFFFF\r\n"), 413),
    # ---- row 6: chunk extensions ----
    ("chunk-ext-empty", _req(b"Transfer-Encoding: chunked", body=b"5;\r\nhello\r\n0\r\n\r\n"), 400),
    ("chunk-ext-lf", _req(b"Transfer-Encoding: chunked", body=b"5;a\nhello\r\n0\r\n\r\n"), 400),
    ("chunk-ext-cr", _req(b"Transfer-Encoding: chunked", body=b"5;a\rb\r\nhello\r\n"), 400),
    ("chunk-ext-nul", _req(b"Transfer-Encoding: chunked", body=b"5;a\x00\r\nhello\r\n"), 400),
    ("chunk-ext-spaces", _req(b"Transfer-Encoding: chunked", body=b"5;a = b\r\nhello\r\n"), 400),
    ("chunk-ext-no-value", _req(b"Transfer-Encoding: chunked", body=b"5;a=\r\nhello\r\n"), 400),
    (
        "chunk-ext-huge",
        _req(b"Transfer-Encoding: chunked", body=b"5;" + b"a" * 20000 + b"\r\n"),
        400,
    ),
    # ---- row 7: chunk data framing and trailers ----
    ("chunk-data-no-crlf", _req(b"Transfer-Encoding: chunked", body=b"5\r\nhelloXX0\r\n\r\n"), 400),
    ("chunk-data-lf", _req(b"Transfer-Encoding: chunked", body=b"5\r\nhello\n0\r\n\r\n"), 400),
    ("chunk-data-cr", _req(b"Transfer-Encoding: chunked", body=b"5\r\nhello\r0\r\n\r\n"), 400),
    (
        "chunk-data-too-long",
        _req(b"Transfer-Encoding: chunked", body=b"3\r\nhello\r\n0\r\n\r\n"),
        400,
    ),
    ("last-chunk-lf", _req(b"Transfer-Encoding: chunked", body=b"0\n\r\n"), 400),
    ("trailer-lf", _req(b"Transfer-Encoding: chunked", body=b"0\r\nX: y\n\r\n"), 400),
    (
        "trailer-space-before-colon",
        _req(b"Transfer-Encoding: chunked", body=b"0\r\nX : y\r\n\r\n"),
        400,
    ),
    ("trailer-fold", _req(b"Transfer-Encoding: chunked", body=b"0\r\nX: y\r\n z\r\n\r\n"), 400),
    (
        "trailer-huge",
        _req(b"Transfer-Encoding: chunked", body=b"0\r\nX: " + b"a" * 20000 + b"\r\n\r\n"),
        431,
    ),
    # ---- rows 8-9: bare LF / bare CR ----
    ("hdr-lf-in-line", _POST + b"X: a\nContent-Length: 0\r\n\r\n", 400),
    ("request-line-lf", b"GET / HTTP/1.1\nHost: x\r\n\r\n", 400),
    ("head-lf-only", b"GET / HTTP/1.1\nHost: x\n\n", 400),
    ("hdr-cr-in-value", _GET + b"X: a\rb\r\n\r\n", 400),
    ("head-bare-cr-end", _GET + b"\rX: y\r\n\r\n", 400),
    ("request-line-cr", b"GET /\r HTTP/1.1\r\n\r\n", 400),
    # ---- row 10: value characters ----
    ("hdr-nul-in-value", _GET + b"X: a\x00b\r\n\r\n", 400),
    ("hdr-ctl-in-value", _GET + b"X: a\x01b\r\n\r\n", 400),
    ("hdr-del-in-value", _GET + b"X: a\x7fb\r\n\r\n", 400),
    ("hdr-vtab-in-value", _GET + b"X: a\x0bb\r\n\r\n", 400),
    # ---- rows 11-12: names ----
    ("hdr-space-before-colon", _GET + b"Foo : bar\r\n\r\n", 400),
    ("hdr-tab-before-colon", _GET + b"Content-Length\t: 0\r\n\r\n", 400),
    ("hdr-empty-name", _GET + b": bar\r\n\r\n", 400),
    ("hdr-no-colon", _GET + b"NoColon\r\n\r\n", 400),
    ("hdr-paren-in-name", _GET + b"X(y): z\r\n\r\n", 400),
    ("hdr-high-byte-name", _GET + b"X\xe9: z\r\n\r\n", 400),
    ("hdr-nul-in-name", _GET + b"X\x00Y: z\r\n\r\n", 400),
    # ---- rows 13-14: obs-fold and leading whitespace ----
    ("obs-fold", _GET + b"X: a\r\n b\r\n\r\n", 400),
    ("obs-fold-tab", _GET + b"X: a\r\n\tb\r\n\r\n", 400),
    ("space-before-first-field", b"GET / HTTP/1.1\r\n Host: x\r\n\r\n", 400),
    ("two-leading-crlf", b"\r\n\r\n" + _GET + b"\r\n", 400),
    ("leading-space", b" GET / HTTP/1.1\r\n\r\n", 400),
    # ---- row 15: request line ----
    ("rl-double-space", b"GET  / HTTP/1.1\r\n\r\n", 400),
    ("rl-tab", b"GET\t/ HTTP/1.1\r\n\r\n", 400),
    ("rl-trailing-space", b"GET / HTTP/1.1 \r\n\r\n", 400),
    ("rl-space-in-target", b"GET /a b HTTP/1.1\r\n\r\n", 400),
    ("rl-lowercase-method", b"get / HTTP/1.1\r\n\r\n", 400),
    ("rl-bad-method-char", b"G=T / HTTP/1.1\r\n\r\n", 400),
    ("rl-version-lowercase", b"GET / http/1.1\r\n\r\n", 400),
    ("rl-version-two-digits", b"GET / HTTP/1.32\r\n\r\n", 400),
    ("rl-version-huge", b"GET / HTTP/4294967297.1\r\n\r\n", 400),
    ("rl-http2", b"GET / HTTP/2.0\r\n\r\n", 505),
    ("rl-http3", b"GET / HTTP/3.0\r\n\r\n", 505),
    ("rl-empty-target", b"GET  HTTP/1.1\r\n\r\n", 400),
    # ---- row 16: NUL ----
    ("nul-in-target", b"GET /a\x00b HTTP/1.1\r\n\r\n", 400),
    ("nul-in-method", b"G\x00T / HTTP/1.1\r\n\r\n", 400),
    # ---- row 17: sizes ----
    ("huge-uri", b"GET /" + b"a" * 70000 + b" HTTP/1.1\r\n\r\n", 414),
    ("huge-header", _GET + b"X: " + b"a" * 300000 + b"\r\n\r\n", 431),
    ("many-fields", _GET + b"X: y\r\n" * 3000 + b"\r\n", 431),
    ("huge-no-crlf", b"GET / HTTP/1.1\r\nX: " + b"a" * 300000, 431),
    # ---- row 18: HTTP/0.9 ----
    ("http09", b"GET /\r\n\r\n", 400),
    # ---- rows 19-20: Host ----
    ("absolute-host-mismatch", b"GET http://evil/x HTTP/1.1\r\nHost: good\r\n\r\n", 400),
    ("host-dup", b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
    ("host-space", b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400),
    ("host-at", b"GET / HTTP/1.1\r\nHost: a@b\r\n\r\n", 400),
    ("host-slash", b"GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", 400),
    ("host-bad-port", b"GET / HTTP/1.1\r\nHost: a:8x\r\n\r\n", 400),
    ("content-type-dup", _GET + b"Content-Type: a\r\nContent-Type: b\r\n\r\n", 400),
    # ---- row 22: HTTP/1.0 with TE ----
    ("te-http10", b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    (
        "te-http10-with-cl",
        b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\nabc",
        400,
    ),
]
