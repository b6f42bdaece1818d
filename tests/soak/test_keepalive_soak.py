"""Scorecard item 5, soak (``make soak``): one million keep-alive requests to an echo app,
driven by wrk (tests/soak/echo.lua). After them the server's RSS is within 5% (or 5 MiB)
of its RSS after a 10,000-request warm-up, its open-file count is the same, and every
answer was a 2xx with the request body echoed."""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from tests.reliability.support import MIB, ServerProcess, report

SCRIPT = Path(__file__).with_name("echo.lua")
CONNECTIONS = 8
#: wrk's own bound on each run, in seconds; the request counts end it sooner.
LIMIT_SECONDS = 1500


def wrk(server: ServerProcess, requests: int, marker: Path) -> dict[str, int]:
    """Run wrk until ``requests`` responses (one thread, CONNECTIONS keep-alive
    connections); returns its tallies."""
    executable = shutil.which("wrk")
    if executable is None:
        pytest.fail("wrk is missing: `make sysdeps` installs it")
    marker.unlink(missing_ok=True)
    proc = subprocess.Popen(
        [
            executable,
            "-t1",
            f"-c{CONNECTIONS}",
            f"-d{LIMIT_SECONDS}s",
            "--timeout=10s",
            "-s",
            str(SCRIPT),
            f"http://127.0.0.1:{server.port}/echo",
            "--",
            str(requests),
            str(marker),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + LIMIT_SECONDS
        while not marker.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        proc.send_signal(signal.SIGINT)  # wrk then reports at once
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    match = re.search(r"SOAK (.*)", stdout)
    assert match, stdout + stderr
    return {key: int(value) for key, value in re.findall(r"(\w+)=(\d+)", match.group(1))}


@pytest.mark.timeout(LIMIT_SECONDS * 2)
def test_a_million_keep_alive_requests(tmp_path: Path) -> None:
    marker = tmp_path / "done"
    server = ServerProcess()
    try:
        warm = wrk(server, 10_000, marker)
        time.sleep(1)
        rss, fds = server.rss(), server.fds()
        samples: list[float] = []  # RSS in MiB every 30 s: a plateau, or a slope?
        done = threading.Event()

        def sample() -> None:
            while not done.is_set():
                samples.append(round(server.rss() / MIB, 2))
                done.wait(30)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        started = time.monotonic()
        try:
            tally = wrk(server, 1_000_000, marker)
        finally:
            done.set()
            sampler.join(5)
        elapsed = time.monotonic() - started
        time.sleep(1)
        rss_after, fds_after = server.rss(), server.fds()
        report(
            "5-soak",
            responses=tally["responses"],
            seconds=round(elapsed),
            per_second=round(tally["responses"] / elapsed),
            rss_warm_mib=round(rss / MIB, 2),
            rss_after_mib=round(rss_after / MIB, 2),
            rss_every_30s_mib=samples,
            fds=[fds, fds_after],
            tally=tally,
        )
        assert warm["responses"] >= 10_000 and warm["non2xx"] == 0
        assert tally["responses"] >= 1_000_000, tally
        assert tally["non2xx"] == 0 and tally["badbody"] == 0, tally
        assert tally["connect"] == tally["read"] == tally["write"] == tally["timeout"] == 0
        assert fds_after == fds, (fds, fds_after)
        assert rss_after - rss <= max(rss * 0.05, 5 * MIB), (rss, rss_after)
    finally:
        server.stop()
