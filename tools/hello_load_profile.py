"""Callgrind instructions per hello request with N requests in flight (docs/benchmarks.md
Sessions 8 and 9): the count a burst of ready connections really costs, which a
one-connection profile (tools/hello_profile.py) does not see.

    python tools/hello_load_profile.py SERVER [CONNECTIONS] [REQUESTS] [--browser] [--locks]

SERVER is a Python with waitress installed (e.g. bench/.venvs/waitress-rs/bin/python, a
release build: `make bench-setup`) serving bench/apps.py's hello with threads=4, or the path
of crates/server's `hello_server` example (the same I/O with a Rust handler). The server runs
under valgrind; a selector client keeps CONNECTIONS keep-alive requests in flight, the
counters are zeroed after a warm-up and dumped after REQUESTS more. `--browser` sends ten
header fields a browser sends instead of `Host` alone. Prints instructions per request.
`--locks` also counts the locked (atomic read-modify-write) instructions a request runs and
the functions that run them (docs/benchmarks.md, Session 12): callgrind counts one such
instruction as one, but each costs ~20 cycles, so they are most of the gap between
instruction counts and measured CPU.
"""

from __future__ import annotations

import collections
import os
import re
import selectors
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PORT = 8097
HELLO = b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n"
BROWSER = (
    b"GET /hello HTTP/1.1\r\nHost: example.com\r\n"
    b"User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\r\n"
    b"Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n"
    b"Accept-Language: en-US,en;q=0.5\r\nAccept-Encoding: gzip, deflate, br\r\n"
    b"Connection: keep-alive\r\nCookie: session=abc123; theme=dark\r\n"
    b"Upgrade-Insecure-Requests: 1\r\nSec-Fetch-Dest: document\r\nSec-Fetch-Mode: navigate\r\n\r\n"
)
WARM_UP = 500


def load(request: bytes, connections: int, count: int) -> None:
    """Send `count` requests over `connections` keep-alive connections, each sending its
    next request as soon as its last answer is in."""
    selector = selectors.DefaultSelector()
    socks = []
    for _ in range(connections):
        sock = socket.create_connection(("127.0.0.1", PORT))
        sock.setblocking(False)
        selector.register(sock, selectors.EVENT_READ, [b""])
        socks.append(sock)
    sent = done = 0
    for sock in socks:
        sock.send(request)
        sent += 1
    while done < count:
        for key, _ in selector.select(timeout=30):
            sock, pending = key.fileobj, key.data
            if not isinstance(sock, socket.socket):
                continue
            data = sock.recv(65536)
            if not data:
                raise RuntimeError("the server closed a connection")
            pending[0] += data
            while b"Hello, world!" in pending[0]:
                pending[0] = pending[0].split(b"Hello, world!", 1)[1]
                done += 1
                if sent < count:
                    sock.send(request)
                    sent += 1
    for sock in socks:
        sock.close()


def executed(dump: Path) -> tuple[dict[tuple[str, int], int], dict[tuple[str, int], str]]:
    """Instructions executed at each (object, address) of a `--dump-instr=yes` callgrind
    dump, and the function each address is in (self cost only: call lines skipped)."""
    names: dict[str, dict[str, str]] = {"ob": {}, "fn": {}}
    counts: dict[tuple[str, int], int] = collections.Counter()
    function: dict[tuple[str, int], str] = {}
    obj = fn = ""
    address = 0
    after_call = False
    for line in dump.read_text(errors="replace").splitlines():
        named = re.match(r"(c?ob|c?fn|c?fi|c?fe|fl)=\((\d+)\)(?: (.*))?", line)
        if named:
            kind, ident, name = named.groups()
            table = (
                names["ob"] if kind.endswith("ob") else names["fn"] if kind.endswith("fn") else None
            )
            if table is not None and name:
                table[ident] = name
            if kind == "ob":
                obj = names["ob"].get(ident, "")
            elif kind == "fn":
                fn = names["fn"].get(ident, "")
            continue
        if line.startswith("calls="):
            after_call = True
            continue
        if not line or line[0] not in "0123456789+-*":
            continue
        fields = line.split()
        position = fields[0]
        if position.startswith(("+", "-")):
            step = int(position[1:], 0)
            address += step if position[0] == "+" else -step
        elif position != "*":
            address = int(position, 0)
        if after_call:
            after_call = False
            continue
        if len(fields) >= 3:
            counts[(obj, address)] += int(fields[2])
            function[(obj, address)] = fn
    return counts, function


def locked(dump: Path, requests: int) -> None:
    """Print the locked instructions a request ran, in all and by function."""
    counts, function = executed(dump)
    by_function: collections.Counter[str] = collections.Counter()
    for obj in {obj for obj, _ in counts if obj.startswith("/")}:
        listing = subprocess.run(
            ["objdump", "-d", "--no-show-raw-insn", obj],
            capture_output=True,
            text=True,
            check=False,
        ).stdout
        for line in listing.splitlines():
            # `lock`-prefixed instructions, and `xchg` with memory (locked implicitly).
            found = re.match(r"\s*([0-9a-f]+):\s+(lock |xchg\s+\S*\()", line)
            if found:
                at = (obj, int(found.group(1), 16))
                if counts.get(at):
                    label = f"{function[at][:90]} [{Path(obj).name.split('.')[0]}]"
                    by_function[label] += counts[at]
    total = sum(by_function.values())
    print(f"{total / requests:.1f} locked instructions per request")
    for label, count in by_function.most_common(25):
        print(f"  {count / requests:5.2f}  {label}")


def main() -> None:
    locks = "--locks" in sys.argv
    args = [arg for arg in sys.argv[1:] if arg not in ("--browser", "--locks")]
    if not args:
        raise SystemExit(__doc__)
    # Absolute (the server runs in bench/), but not resolved: a venv's python is a symlink.
    server = os.path.abspath(args[0])
    connections = int(args[1]) if len(args) > 1 else 16
    count = int(args[2]) if len(args) > 2 else 3000
    request = BROWSER if "--browser" in sys.argv else HELLO
    out = Path(tempfile.mkdtemp()) / "callgrind.out"
    if server.endswith("hello_server"):
        argv = [server, f"127.0.0.1:{PORT}", "4", "2048"]
    else:
        argv = [server, "-m", "waitress", f"--listen=127.0.0.1:{PORT}", "--threads=4"]
        argv.append("apps:hello")
    proc = subprocess.Popen(
        [
            "valgrind",
            "--tool=callgrind",
            f"--callgrind-out-file={out}",
            *(["--dump-instr=yes"] if locks else []),
            *argv,
        ],
        cwd=ROOT / "bench",
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                socket.create_connection(("127.0.0.1", PORT)).close()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("the server did not start under valgrind") from None
                time.sleep(0.3)
        load(request, connections, WARM_UP)
        subprocess.run(["callgrind_control", "-z", str(proc.pid)], check=True, capture_output=True)
        load(request, connections, count)
        subprocess.run(["callgrind_control", "-d", str(proc.pid)], check=True, capture_output=True)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(60)
    dump = sorted(out.parent.glob("callgrind.out*.1"))[0]
    summary = subprocess.run(
        ["callgrind_annotate", "--auto=no", "--threshold=100", str(dump)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    match = re.search(r"([\d,]+) \(100\.0%\)\s+PROGRAM TOTALS", summary)
    if match is None:
        raise RuntimeError("no total in callgrind's summary")
    total = int(match.group(1).replace(",", ""))
    per_request = total / count
    print(
        f"{per_request:.0f} instructions per request",
        f"({connections} connections, {count} requests)",
    )
    print(f"callgrind data: {dump}")
    if locks:
        locked(dump, count)


if __name__ == "__main__":
    main()
