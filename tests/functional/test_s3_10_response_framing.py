"""SPEC §3.10 Response framing: Content-Length from a one-piece body, chunked streaming on
HTTP/1.1, close-delimited streaming on HTTP/1.0, no body for HEAD."""

from __future__ import annotations

from tests.functional.serving import Running, parse_responses


def test_streaming_without_content_length_is_chunked_on_1_1(running: Running) -> None:
    (response,) = parse_responses(
        running.exchange(b"GET /stream HTTP/1.1\r\nConnection: close\r\n\r\n")
    )
    assert response.headers["transfer-encoding"] == "chunked"
    assert "content-length" not in response.headers
    assert response.headers["connection"] == "close", "chunked, then close (as waitress)"
    assert response.body == b"one two three"


def test_streaming_without_content_length_closes_on_1_0(running: Running) -> None:
    raw = running.exchange(b"GET /stream HTTP/1.0\r\n\r\n")
    (response,) = parse_responses(raw)
    assert "transfer-encoding" not in response.headers
    assert response.headers["connection"] == "close"
    assert response.body == b"one two three"


def test_a_one_piece_body_gets_a_content_length(running: Running) -> None:
    (response,) = parse_responses(
        running.exchange(b"GET /env HTTP/1.1\r\nConnection: close\r\n\r\n")
    )
    assert response.headers["content-length"] == str(len(response.body))


def test_head_gets_the_head_and_no_body(running: Running) -> None:
    raw = running.exchange(b"HEAD /counted HTTP/1.1\r\nConnection: close\r\n\r\n")
    (response,) = parse_responses(raw, head_only=True)
    assert response.code == 200 and response.headers["content-length"] == "7"
    assert raw.endswith(b"\r\n\r\n"), "no body bytes after the head"
