"""SPEC §3.13 Client disconnect."""

from __future__ import annotations

import time

import pytest

from tests.functional.serving import Running


@pytest.mark.parametrize("lookahead", [0, 5])
def test_client_disconnected_is_seen_only_with_lookahead(lookahead: int) -> None:
    from tests.apps import functional_apps

    functional_apps.WATCHED.clear()
    server = Running(channel_request_lookahead=lookahead)
    try:
        with server.connect() as sock:
            sock.sendall(b"GET /watch HTTP/1.1\r\n\r\n")
            time.sleep(0.2)
        deadline = time.monotonic() + 5
        while not functional_apps.WATCHED and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        server.stop()
    # SPEC §3.13: EOF is only observed while the connection is reading, i.e. during a
    # request only when channel_request_lookahead > 0.
    assert functional_apps.WATCHED == [lookahead > 0]
