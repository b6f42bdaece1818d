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


def test_a_kept_client_disconnected_check_turns_true_once_its_connection_closes() -> None:
    """SPEC §3.8/§3.13: `waitress.client_disconnected` is the connection's check (waitress's
    bound `channel.check_client_disconnected`): False for each request while the client is
    there, and True once the connection is known closed, for a check an application kept
    from any request on it."""
    from tests.apps import functional_apps

    functional_apps.KEPT_CHECKS.clear()
    server = Running()
    try:
        with server.connect() as sock:
            for _ in range(2):
                sock.sendall(b"GET /keep-check HTTP/1.1\r\nHost: h\r\n\r\n")
                data = b""
                while not data.endswith(b"\r\n\r\nok"):
                    chunk = sock.recv(4096)
                    assert chunk, data
                    data += chunk
            assert [said for _, said in functional_apps.KEPT_CHECKS] == [False, False]
            assert [check() for check, _ in functional_apps.KEPT_CHECKS] == [False, False]
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not all(
            check() for check, _ in functional_apps.KEPT_CHECKS
        ):
            time.sleep(0.02)
        assert [check() for check, _ in functional_apps.KEPT_CHECKS] == [True, True]
    finally:
        server.stop()
