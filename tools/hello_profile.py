"""Where a hello request's instructions go: callgrind's inclusive profile, per request.

Runs ``waitress-serve`` (threads=1) under callgrind like ``hello_instructions.py``, but
counts only the measured requests (``callgrind_control -z`` after the warm-up, ``-d``
after them) and prints the functions with the most inclusive instructions, divided by the
number of requests, then the callees of the functions named on the command line. Session
6 found its steps this way (docs/benchmarks.md). Usage, with the venv whose build is to be
measured (a release build for figures worth recording)::

    python tools/hello_profile.py [N] [FUNCTION ...]

e.g. ``python tools/hello_profile.py 3000 wsgi::request_environ Call::write_bytes``.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from hello_instructions import WARMUP, ask, start_server

TOP = 60
#: Path prefixes that only make the names long.
NOISE = re.compile(
    r"/root/\.cargo/registry/src/[^/]+/|/?(tmp/)?python-build[^:]*:|/rustc/[0-9a-f]+/library/"
    r"|\[/[^\]]*\]"
)
ENTRY = re.compile(r"\s*([\d,]+) \([ \d.]+%\)\s+(\*|>)?\s*(.*)")


def profile(requests: int, out: Path) -> None:
    proc, sock = start_server(str(out), subprocess.DEVNULL)
    try:
        with sock:
            ask(sock, WARMUP)
            control = ["callgrind_control"]
            subprocess.run([*control, "-z", str(proc.pid)], check=True, capture_output=True)
            ask(sock, requests)
            subprocess.run([*control, "-d", str(proc.pid)], check=True, capture_output=True)
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=300)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)


def annotate(dump: Path, tree: bool) -> str:
    command = ["callgrind_annotate", "--inclusive=yes", "--threshold=100"]
    if tree:
        command.append("--tree=calling")
    return subprocess.run([*command, str(dump)], check=True, capture_output=True, text=True).stdout


def main() -> None:
    args = sys.argv[1:]
    requests = int(args.pop(0)) if args and args[0].isdigit() else 3000
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "callgrind.out"
        profile(requests, out)
        dumps = sorted(Path(tmp).glob("callgrind.out*.1")) or sorted(Path(tmp).glob("*"))
        if not dumps:
            raise SystemExit("callgrind wrote no dump")
        flat = annotate(dumps[0], tree=False)
        tree = annotate(dumps[0], tree=True) if args else ""
    print(f"inclusive instructions per request ({requests} keep-alive hello requests):")
    shown = 0
    for line in flat.splitlines():
        match = ENTRY.match(line)
        if match and shown < TOP:
            print(
                f"{int(match.group(1).replace(',', '')) // requests:8d}  "
                f"{NOISE.sub('', match.group(3))[:150]}"
            )
            shown += 1
    for block in tree.split("\n\n"):
        lines = block.strip().splitlines()
        head = next((ln for ln in lines if ENTRY.match(ln) and " * " in ln), None)
        if head is None or not any(name in head for name in args):
            continue
        callees = []
        for line in lines:
            match = ENTRY.match(line)
            if match and match.group(2) == ">":
                cost = int(match.group(1).replace(",", "")) // requests
                if cost >= 20:
                    callees.append(f"  {cost:8d}  {NOISE.sub('', match.group(3))[:150]}")
        if callees:
            total = int(ENTRY.match(head).group(1).replace(",", "")) // requests  # type: ignore[union-attr]
            print(f"\n{total:8d}  {NOISE.sub('', head.split('*', 1)[1]).strip()[:150]}")
            print("\n".join(callees))


if __name__ == "__main__":
    main()
