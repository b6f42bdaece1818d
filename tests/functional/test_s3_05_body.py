"""SPEC §3.5 Body framing: chunked and Content-Length bodies reach wsgi.input whole, in memory or
spilled to a temp file.
"""

from __future__ import annotations

import os

from tests.functional.serving import Running, body_of


def test_chunked_upload_spilled_to_a_temp_file() -> None:
    server = Running(inbuf_overflow=1000)
    try:
        payload = os.urandom(300_000)
        chunks = b"".join(
            b"%x\r\n%s\r\n" % (len(payload[i : i + 7000]), payload[i : i + 7000])
            for i in range(0, len(payload), 7000)
        )
        raw = (
            b"POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
            + chunks
            + b"0\r\n\r\n"
        )
        response = server.exchange(raw)
        assert body_of(response) == payload
    finally:
        server.stop()
