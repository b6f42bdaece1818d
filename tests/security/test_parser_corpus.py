"""The hostile-request corpus through the server's parser (``waitress.parser`` runs the same
Rust code): each vector whole, split at every byte, and one byte at a time — same verdict."""

from __future__ import annotations

import pytest

from tests.security.vectors import OK, VECTORS
from waitress.adjustments import Adjustments
from waitress.parser import HTTPRequestParser

ADJ = Adjustments()


def verdict(pieces: list[bytes]) -> int:
    parser = HTTPRequestParser(ADJ)
    for piece in pieces:
        while piece and not parser.completed:
            used = parser.received(piece)
            assert 0 <= used <= len(piece)
            piece = piece[used:]
            if used == 0:
                break
    if parser.error is not None:
        return parser.error.code
    assert parser.completed, "a control must be a complete request"
    return OK


def test_corpus_size_and_unique_ids() -> None:
    ids = [vector_id for vector_id, _, _ in VECTORS]
    assert len(ids) == len(set(ids))
    hostile = [vector for vector in VECTORS if vector[2] != OK]
    assert len(hostile) >= 100


@pytest.mark.parametrize(("vector_id", "raw", "expected"), VECTORS, ids=[v[0] for v in VECTORS])
def test_whole_and_every_split(vector_id: str, raw: bytes, expected: int) -> None:
    assert verdict([raw]) == expected
    # Every split point for the heads that are short enough to make this cheap.
    if len(raw) <= 400:
        for at in range(1, len(raw)):
            assert verdict([raw[:at], raw[at:]]) == expected, f"split at {at}"
        assert verdict([raw[i : i + 1] for i in range(len(raw))]) == expected
