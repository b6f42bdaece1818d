"""Slow clients (reliability scorecard item 3), with slowhttptest from Debian, against
waitress-rs in a subprocess with ``threads=4``, on 127.0.0.1, each attack bounded to
``DURATION`` seconds:

- slowloris: 1000 sockets trickling a request head that never ends;
- slow body: 500 sockets trickling a 1 MB POST body;
- slow read: 500 sockets reading a 1 MiB response a few bytes at a time through a tiny window.

During each, a normal client making 10 requests a second (a fresh connection each) sees p99
< 100 ms and no error, and no application call holds its worker more than a second (the app
records, per call, the time from the call until the server has taken the whole response).

With ``connection_limit=100`` and ``header_timeout=5``, slowloris sockets get 408 and are
closed within header_timeout + 1 s, and the normal client is served again within 1 s of the
attack's end.

``python -m tests.soak.test_slow_clients theirs`` measures waitress 3.0.2 the same way (it has
no ``header_timeout``, so its limit run uses only ``connection_limit``).
"""

from __future__ import annotations

import csv
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Optional

import pytest

from tests.reliability.harness import Server, SteadyClient

DURATION = 20  # seconds per attack
HEADER_TIMEOUT = 5

ATTACKS: dict[str, tuple[str, list[str]]] = {
    # name: (target path, slowhttptest options)
    "slowloris": ("/", ["-H", "-c", "1000", "-r", "500", "-i", "5", "-x", "24"]),
    "slow-body": ("/", ["-B", "-c", "500", "-r", "500", "-i", "5", "-s", "1000000", "-x", "24"]),
    "slow-read": (
        "/big",
        ["-X", "-c", "500", "-r", "500", "-w", "512", "-y", "1024", "-n", "5", "-z", "32"],
    ),
}
SOCKETS = {"slowloris": 1000, "slow-body": 500, "slow-read": 500}


def _slowhttptest() -> str:
    found = shutil.which("slowhttptest")
    if found is None:
        pytest.fail("slowhttptest is missing: `make sysdeps` installs it")
    return found


def start_attack(name: str, port: int, out: Path) -> subprocess.Popen[bytes]:
    path, options = ATTACKS[name]
    return subprocess.Popen(
        [
            _slowhttptest(),
            *options,
            "-l",
            str(DURATION),
            "-p",
            "3",
            "-g",
            "-o",
            str(out),
            "-u",
            f"http://127.0.0.1:{port}{path}",
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def attack_report(out: Path) -> dict[str, int]:
    """Peak connected sockets and final closed count from slowhttptest's CSV."""
    with Path(f"{out}.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    return {
        "peak_connected": max((int(r["Connected"]) for r in rows), default=0),
        "closed": int(rows[-1]["Closed"]) if rows else 0,
    }


def measure_attack(which: str, name: str, tmp: Path) -> dict[str, Any]:
    server = Server(which, "--threads=4")
    try:
        server.json("/_stats")  # reset
        attack = start_attack(name, server.port, tmp / name)
        time.sleep(2)  # slowhttptest opens 500 sockets a second
        steady = SteadyClient(server.port, rate=10)
        try:
            attack.wait(DURATION + 30)
        finally:
            steady.stop()
            if attack.poll() is None:
                attack.kill()
                attack.wait()
        stats = server.json("/_stats")
        alive = server.proc.poll() is None
    finally:
        server.stop()
    return {
        "p50_ms": round(steady.percentile(0.5) * 1000, 1),
        "p99_ms": round(steady.p99() * 1000, 1),
        "max_ms": round(steady.percentile(1.0) * 1000, 1),
        "requests": len(steady.latencies) + len(steady.errors),
        "errors": steady.errors,
        "longest_hold_s": round(stats["longest_hold"], 2),
        "max_active": stats["max_active"],
        "server_alive": alive,
        **attack_report(tmp / name),
    }


@pytest.mark.slow
@pytest.mark.timeout(DURATION + 60)
@pytest.mark.parametrize("name", list(ATTACKS))
def test_a_normal_client_is_served_during_a_slow_client_attack(name: str, tmp_path: Path) -> None:
    figures = measure_attack("ours", name, tmp_path)
    print(name, figures)
    assert figures["server_alive"]
    # The attack was real: (nearly) all its sockets were connected at its peak.
    assert figures["peak_connected"] >= 0.9 * SOCKETS[name], figures
    assert figures["requests"] >= 10 * (DURATION - 4), figures
    assert not figures["errors"], figures["errors"][:10]
    assert figures["p99_ms"] < 100, figures
    # No worker waited on a slow socket: every call was over within a second.
    assert figures["longest_hold_s"] < 1.0, figures


def _probe(port: int, results: list[Optional[float]], i: int) -> None:
    """A slowloris socket of our own: the time from connect to 408 + close, or None."""
    start = time.monotonic()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: probe\r\n")
            data = b""
            while time.monotonic() - start < HEADER_TIMEOUT + 5:
                try:
                    chunk = sock.recv(65536)
                except socket.timeout:
                    try:
                        sock.sendall(b"X-Slow: %d\r\n" % i)
                    except OSError:
                        break
                    continue
                if not chunk:
                    break
                data += chunk
            closed_at = time.monotonic() - start
            if data.startswith(b"HTTP/1.") and data.split(b" ", 2)[1] == b"408":
                results[i] = closed_at
    except OSError:
        pass


def measure_connection_limit(which: str, tmp: Path) -> dict[str, Any]:
    options = ["--threads=4", "--connection-limit=100"]
    if which != "theirs":  # waitress 3.0.2 has no header_timeout
        options.append(f"--header-timeout={HEADER_TIMEOUT}")
    server = Server(which, *options)
    try:
        probes: list[Optional[float]] = [None] * 20
        threads = [
            threading.Thread(target=_probe, args=(server.port, probes, i), daemon=True)
            for i in range(len(probes))
        ]
        for thread in threads:
            thread.start()
        time.sleep(0.2)  # the probes hold the first slots
        attack = start_attack("slowloris", server.port, tmp / "limit")
        steady = SteadyClient(server.port, rate=10, timeout=2)
        try:
            attack.wait(DURATION + 30)
            ended = time.monotonic()
            time.sleep(3)
        finally:
            steady.stop()
            if attack.poll() is None:
                attack.kill()
                attack.wait()
        for thread in threads:
            thread.join(HEADER_TIMEOUT + 10)
        after = [t - ended for t in steady.successes if t > ended]
        alive = server.proc.poll() is None
    finally:
        server.stop()
    return {
        "probes_408_within_s": probes,
        "recovered_after_s": round(min(after), 2) if after else None,
        "served_during_last_2s": sum(1 for t in after if t > 1.0),
        "server_alive": alive,
        **attack_report(tmp / "limit"),
    }


@pytest.mark.slow
@pytest.mark.timeout(DURATION + 60)
def test_connection_limit_slowloris_gets_408_and_service_recovers(tmp_path: Path) -> None:
    figures = measure_connection_limit("ours", tmp_path)
    print(figures)
    assert figures["server_alive"]
    probes = figures["probes_408_within_s"]
    assert all(t is not None and t <= HEADER_TIMEOUT + 1 for t in probes), probes
    # The attack's own sockets are cycled through the 100 slots, 408 after 408.
    assert figures["closed"] >= 200, figures
    assert figures["recovered_after_s"] is not None and figures["recovered_after_s"] <= 1.0
    assert figures["served_during_last_2s"] >= 15, figures


def main(which: str) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        for name in ATTACKS:
            figures = measure_attack(which, name, Path(tmp))
            figures["error_count"] = len(figures["errors"])
            figures["errors"] = figures["errors"][:3]
            print(which, name, figures, flush=True)
        print(which, "connection_limit=100", measure_connection_limit(which, Path(tmp)))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "ours")
