"""SPEC §3.2-§3.4 (request head framing, request line, header fields) over a socket: every hostile
vector of the corpus gets its status, one response, then the close.
"""

from __future__ import annotations

import re

import pytest

from tests.functional.serving import Running
from tests.security.vectors import OK, VECTORS

HOSTILE = [v for v in VECTORS if v[2] != OK and len(v[1]) < 2000]


@pytest.mark.parametrize(("vector_id", "raw", "expected"), HOSTILE, ids=[v[0] for v in HOSTILE])
def test_hostile_vector_over_a_socket(
    running: Running, vector_id: str, raw: bytes, expected: int
) -> None:
    response = running.exchange(raw + b"GET /smuggled HTTP/1.1\r\n\r\n")
    assert response.startswith(b"HTTP/1.") and response[9:12] == str(expected).encode()
    statuses = re.findall(rb"HTTP/1\.[01] \d{3} ", response)
    assert len(statuses) == 1, "one response, then the connection closed"
