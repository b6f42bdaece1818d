"""The ``running`` fixture: the functional echo app served in a thread of the test process."""

from __future__ import annotations

from typing import Iterator

import pytest

from tests.functional.serving import Running


@pytest.fixture
def running() -> Iterator[Running]:
    server = Running()
    yield server
    server.stop()
