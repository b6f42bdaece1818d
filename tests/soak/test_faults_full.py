"""Scorecard item 4 at full scale (``make soak``): 10,000 disconnects mid-upload and 1,000
mid-response, 10,000 connect-then-RST, 10,000 requests to apps raising at every stage.
tests/reliability/test_faults.py runs the same checks at a tenth of the counts."""

from __future__ import annotations

import pytest

from tests.reliability.test_faults import connect_then_rst, disconnects, raising_apps


@pytest.mark.timeout(900)
def test_disconnects_mid_upload_and_mid_response_full() -> None:
    disconnects(uploads=10_000, responses=1_000)


@pytest.mark.timeout(600)
def test_connect_then_rst_leaves_the_server_idle_full() -> None:
    connect_then_rst(10_000)


@pytest.mark.timeout(900)
def test_apps_raising_at_every_stage_full() -> None:
    raising_apps(10_000)
