"""Server benchmarks of waitress-rs against its peers (`make bench`).

Runs every scenario on every server that can serve it, one server at a time on 127.0.0.1,
drives it with wrk, and writes the "Server benchmarks" section of docs/benchmarks.md (plus
the raw results under bench/out/). Standard library only; the charts are drawn by
bench/chart.py in the bench tools venv (matplotlib).

Servers interleave (A B C A B C): the repeat loop is the outermost. Each cell starts a fresh
server in its own process group, checks its answer (status, body length, bytes where they
are known), warms it up, waits until it is idle, measures, and kills the group.
"""

from __future__ import annotations

import argparse
import atexit
import http.client
import json
import os
import resource
import shlex
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import report

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
VENVS = HERE / ".venvs"
OUT = HERE / "out"
FILE = OUT / "file.bin"
HOST = "127.0.0.1"
THREADS = 4
IDLE_LIMIT = 12000  # connection_limit given to our server in the idle scenario
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")

HELLO = b"Hello, world!"
SIZES = {
    "hello": len(HELLO),
    "big": 1 << 20,
    "stream": 100 * 16384,
    "echo": len(b"65536"),
    "file": 4 << 20,
    "sleep": len(HELLO),
}
EXACT = {"hello": HELLO, "sleep": HELLO, "echo": b"65536"}
POST_BYTES = {"echo": 65536}


@dataclass(frozen=True)
class Scenario:
    name: str
    app: str
    conns: int
    title: str
    pinned: bool = False
    idle: bool = False


SCENARIOS = [
    Scenario("hello@1", "hello", 1, "hello (13 B), 1 connection"),
    Scenario("hello@16", "hello", 16, "hello (13 B), 16 connections"),
    Scenario("hello@128", "hello", 128, "hello (13 B), 128 connections"),
    Scenario("big", "big", 16, "1 MiB body, 16 connections"),
    Scenario("stream", "stream", 16, "100 × 16 KiB streamed, no Content-Length, 16 connections"),
    Scenario("echo", "echo", 16, "64 KiB POST read and answered with its length, 16 connections"),
    Scenario("file", "file", 16, "4 MiB file via wsgi.file_wrapper (nginx: static), 16 conns"),
    Scenario("sleep", "sleep", 16, "app sleeps 10 ms, threads=4, 16 connections"),
    Scenario(
        "cpu-pinned",
        "hello",
        16,
        "hello@16, server pinned to CPU 0 and wrk to CPU 1: server CPU per request",
        pinned=True,
    ),
    Scenario(
        "idle10k",
        "hello",
        16,
        "hello@16 while 10,000 idle keep-alive connections are open",
        idle=True,
    ),
]

PY_APPS = frozenset(SIZES)


@dataclass(frozen=True)
class Server:
    name: str
    cmd: str  # formatted with port, app, threads, venvs, here, root, rundir
    apps: frozenset[str]
    idle: bool  # can hold 10,000 connections
    note: str
    idle_extra: str = ""
    version: str = ""  # distribution name in its venv, or a command printing a version


SERVERS = [
    Server(
        "waitress-rs",
        "{venvs}/waitress-rs/bin/waitress-serve --listen={host}:{port} --threads={threads} "
        "{extra}apps:{app}",
        PY_APPS,
        True,
        "ours: release wheel from this tree",
        idle_extra=f"--connection-limit={IDLE_LIMIT} ",
        version="waitress-rs",
    ),
    Server(
        "waitress",
        "{venvs}/waitress/bin/waitress-serve --listen={host}:{port} --threads={threads} apps:{app}",
        PY_APPS,
        False,
        "waitress 3.0.2, defaults (select() loop and connection_limit 100: no idle run)",
        version="waitress",
    ),
    Server(
        "granian",
        "{venvs}/granian/bin/granian --interface wsgi --host {host} --port {port} --workers 1 "
        "--blocking-threads {threads} --runtime-threads 1 {extra}apps:{app}",
        PY_APPS,
        True,
        "Rust core (hyper), 1 worker process + its supervisor; no wsgi.file_wrapper "
        "(the file app falls back to 64 KiB reads)",
        idle_extra="--backpressure 12000 ",
        version="granian",
    ),
    Server(
        "bjoern",
        "{venvs}/bjoern/bin/python {here}/run_bjoern.py {host} {port} apps:{app}",
        PY_APPS,
        True,
        "C (libev), single-threaded",
        version="bjoern",
    ),
    Server(
        "gunicorn",
        "{venvs}/gunicorn/bin/gunicorn -k gthread -w 1 --threads {threads} --backlog 1024 "
        "-b {host}:{port} apps:{app}",
        PY_APPS,
        False,
        "gthread worker, 1 process + arbiter (worker_connections 1000: no idle run)",
        version="gunicorn",
    ),
    Server(
        "nginx",
        "nginx -e stderr -p {rundir} -c {rundir}/nginx.conf",
        frozenset({"hello", "big", "echo", "file"}),
        True,
        "static ceiling, no Python: return 200 / static files / body read and discarded",
        version="nginx",
    ),
    Server(
        "rust-hello",
        "{root}/target/release/examples/hello_server {host}:{port} {threads} {limit}",
        frozenset({"hello"}),
        True,
        "no-Python ceiling: waitress_server::serve with a Rust handler (4 worker threads)",
        version="rust-hello",
    ),
]

NGINX_CONF = """\
daemon off;
master_process off;
worker_processes 1;
worker_rlimit_nofile 20000;
pid {rundir}/nginx.pid;
error_log stderr warn;
events {{ worker_connections 12000; }}
http {{
    access_log off;
    client_body_temp_path {rundir}/tmp;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 1000000;
    keepalive_timeout 120s;
    server {{
        listen {host}:{port} backlog=1024;
        location = /hello {{ default_type text/plain; return 200 "Hello, world!"; }}
        location = /echo {{ client_body_buffer_size 128k; default_type text/plain;
                            return 200 "$content_length"; }}
        location = /big {{ default_type application/octet-stream; alias {out}/big.bin; }}
        location = /file {{ default_type application/octet-stream; alias {out}/file.bin; }}
    }}
}}
"""

LIVE: dict[int, subprocess.Popen[bytes]] = {}


class CellError(Exception):
    """A server failed a check or died: the cell is recorded as failed, the run goes on."""


@dataclass
class Settings:
    repeats: int
    duration: int
    warmup: int
    idle: int
    servers: list[Server]
    scenarios: list[Scenario]
    run_dir: Path
    docs: bool
    quick: bool
    dry_run: bool = False
    report_only: str | None = None
    meta: dict = field(default_factory=dict)
    results: list[dict] = field(default_factory=list)


# ---------------------------------------------------------------- process tree accounting


def group_pids(pgid: int) -> list[int]:
    """Every process whose process group is `pgid` (the server and its children)."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:
            pids.append(int(entry))
    return pids


def group_cpu(pgid: int) -> float:
    """utime + stime of the group, in seconds."""
    ticks = 0
    for pid in group_pids(pgid):
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        ticks += int(fields[11]) + int(fields[12])
    return ticks / CLK_TCK


def group_rss(pgid: int) -> int:
    """Summed resident set of the group, in bytes."""
    total = 0
    for pid in group_pids(pgid):
        try:
            with open(f"/proc/{pid}/statm", "rb") as f:
                total += int(f.read().split()[1]) * PAGE
        except OSError:
            continue
    return total


def machine_busy() -> float:
    """Busy CPU seconds of the whole machine (all cores) since boot."""
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:]]
    idle = values[3] + values[4]
    return (sum(values[:8]) - idle) / CLK_TCK


class RssSampler(threading.Thread):
    """Peak RSS of a process group, sampled every 0.1 s until stopped."""

    def __init__(self, pgid: int) -> None:
        super().__init__(daemon=True)
        self.pgid = pgid
        self.peak = group_rss(pgid)
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.wait(0.1):
            self.peak = max(self.peak, group_rss(self.pgid))

    def stop(self) -> int:
        self.halt.set()
        self.join()
        return self.peak


# ---------------------------------------------------------------- servers


def server_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONHOME")}
    env["PYTHONPATH"] = str(HERE)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env["BENCH_FILE"] = str(FILE)
    return env


def server_argv(server: Server, scenario: Scenario, port: int, rundir: Path) -> list[str]:
    cmd = server.cmd.format(
        host=HOST,
        port=port,
        app=scenario.app,
        threads=THREADS,
        venvs=VENVS,
        here=HERE,
        root=ROOT,
        rundir=rundir,
        extra=server.idle_extra if scenario.idle else "",
        limit=IDLE_LIMIT if scenario.idle else 2048,
    )
    argv = shlex.split(cmd)
    if scenario.pinned:
        argv = ["taskset", "-c", "0", *argv]
    return argv


def start_server(server: Server, scenario: Scenario, port: int, rundir: Path):
    rundir.mkdir(parents=True, exist_ok=True)
    if server.name == "nginx":
        (rundir / "tmp").mkdir(exist_ok=True)
        conf = NGINX_CONF.format(rundir=rundir, host=HOST, port=port, out=OUT)
        (rundir / "nginx.conf").write_text(conf)
    argv = server_argv(server, scenario, port, rundir)
    log = open(rundir / "server.log", "wb")  # closed in stop_server
    proc = subprocess.Popen(
        argv,
        cwd=HERE,
        env=server_env(),
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    proc.log = log  # type: ignore[attr-defined]
    LIVE[proc.pid] = proc
    return proc, argv


def stop_server(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the process group, SIGKILL whatever is left after 1 s."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    try:
        proc.wait(timeout=1.0)
    except subprocess.TimeoutExpired:
        pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        pass
    proc.log.close()  # type: ignore[attr-defined]
    LIVE.pop(proc.pid, None)


def stop_all() -> None:
    for proc in list(LIVE.values()):
        stop_server(proc)


def log_tail(rundir: Path, lines: int = 8) -> str:
    try:
        text = (rundir / "server.log").read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.strip().splitlines()[-lines:])


def wait_ready(proc: subprocess.Popen[bytes], port: int, limit: float = 20.0) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise CellError(f"exited with {proc.returncode} before listening")
        try:
            socket.create_connection((HOST, port), timeout=0.5).close()
        except OSError:
            time.sleep(0.05)
            continue
        if proc.poll() is not None:
            raise CellError(f"exited with {proc.returncode}; another process has the port")
        return
    raise CellError(f"not listening after {limit:.0f} s")


def request(conn: http.client.HTTPConnection, app: str) -> tuple[int, bytes, dict[str, str]]:
    if app in POST_BYTES:
        body = b"p" * POST_BYTES[app]
        conn.request("POST", f"/{app}", body=body)
    else:
        conn.request("GET", f"/{app}")
    response = conn.getresponse()
    data = response.read()
    headers = {k.lower(): v for k, v in response.getheaders()}
    return response.status, data, headers


def check(app: str, port: int) -> str:
    """Two requests on one connection: status, exact length (and bytes where known)."""
    conn = http.client.HTTPConnection(HOST, port, timeout=10)
    framing = ""
    try:
        for _ in range(2):
            status, data, headers = request(conn, app)
            if status != 200:
                raise CellError(f"check: status {status} for /{app}")
            if len(data) != SIZES[app]:
                raise CellError(f"check: /{app} body {len(data)} B, expected {SIZES[app]} B")
            if app in EXACT and data != EXACT[app]:
                raise CellError(f"check: /{app} body {data[:40]!r}")
            framing = "chunked" if "chunked" in headers.get("transfer-encoding", "") else "length"
    except (OSError, http.client.HTTPException) as exc:
        raise CellError(f"check: /{app}: {exc!r}") from exc
    finally:
        conn.close()
    return framing


# ---------------------------------------------------------------- load


def wrk(port: int, scenario: Scenario, seconds: int) -> dict:
    """One bounded wrk run; the parsed JSON line of wrk.lua plus wrk's own CPU seconds."""
    argv = wrk_argv(port, scenario, seconds)
    env = dict(os.environ)
    if scenario.app in POST_BYTES:
        env["BENCH_POST_BYTES"] = str(POST_BYTES[scenario.app])
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    try:
        done = subprocess.run(argv, capture_output=True, env=env, timeout=seconds + 30, check=False)
    except subprocess.TimeoutExpired as exc:
        raise CellError(f"wrk did not finish within {seconds + 30} s") from exc
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    lines = [ln for ln in done.stdout.decode().splitlines() if ln.startswith("{")]
    if done.returncode != 0 or not lines:
        raise CellError(f"wrk failed ({done.returncode}): {done.stderr.decode()[-300:]}")
    result = json.loads(lines[-1])
    result["wrk_cpu"] = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return result


def wrk_argv(port: int, scenario: Scenario, seconds: int) -> list[str]:
    argv = [
        "wrk",
        "-t1",
        f"-c{scenario.conns}",
        f"-d{seconds}s",
        "--timeout",
        "5s",
        "-s",
        str(HERE / "wrk.lua"),
        f"http://{HOST}:{port}/{scenario.app}",
    ]
    if scenario.pinned:
        argv = ["taskset", "-c", "1", *argv]
    return argv


def settle(pgid: int, limit: float = 5.0) -> None:
    """Wait until the server uses less than 5% of a core (at most `limit` seconds)."""
    deadline = time.monotonic() + limit
    last = group_cpu(pgid)
    while time.monotonic() < deadline:
        time.sleep(0.25)
        now = group_cpu(pgid)
        if now - last < 0.0125:
            return
        last = now


def measure(pgid: int, port: int, scenario: Scenario, seconds: int) -> dict:
    """The measured wrk run with CPU and RSS accounting around it."""
    sampler = RssSampler(pgid)
    sampler.start()
    cpu0, busy0, t0 = group_cpu(pgid), machine_busy(), time.monotonic()
    try:
        result = wrk(port, scenario, seconds)
    finally:
        peak = sampler.stop()
    cpu1, busy1, t1 = group_cpu(pgid), machine_busy(), time.monotonic()
    secs = result["duration_us"] / 1e6
    requests = result["requests"]
    server_cpu = cpu1 - cpu0
    return {
        "requests": requests,
        "rps": requests / secs if secs else 0.0,
        "p50_ms": result["p50_us"] / 1000,
        "p99_ms": result["p99_us"] / 1000,
        "bytes": result["bytes"],
        "errors": {k: result[k] for k in ("connect", "read", "write", "timeout")},
        "non2xx": result["status"],
        "server_cpu_cores": server_cpu / (t1 - t0),
        "cpu_us_per_req": server_cpu * 1e6 / requests if requests else None,
        "wrk_cpu_cores": result["wrk_cpu"] / (t1 - t0),
        "other_cpu_cores": max(0.0, (busy1 - busy0 - server_cpu - result["wrk_cpu"]) / (t1 - t0)),
        "rss_peak_mib": peak / 2**20,
    }


# ---------------------------------------------------------------- idle connections


def open_idle(port: int, count: int, limit: float = 90.0) -> list[socket.socket]:
    """`count` keep-alive connections, each after one answered hello request."""
    req = f"GET /hello HTTP/1.1\r\nHost: {HOST}:{port}\r\n\r\n".encode()
    socks: list[socket.socket] = []
    deadline = time.monotonic() + limit
    try:
        while len(socks) < count:
            if time.monotonic() > deadline:
                raise CellError(f"idle: {len(socks)} of {count} opened in {limit:.0f} s")
            batch = []
            for _ in range(min(100, count - len(socks))):
                sock = socket.create_connection((HOST, port), timeout=10)
                # RST on close: 10,000 TIME_WAIT sockets per run would exhaust local ports.
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                batch.append(sock)
                sock.sendall(req)
            for sock in batch:
                read_hello(sock)
            socks.extend(batch)
    except OSError as exc:
        close_all(socks)
        raise CellError(f"idle: failed after {len(socks)} connections: {exc!r}") from exc
    except CellError:
        close_all(socks)
        raise
    return socks


def read_hello(sock: socket.socket) -> None:
    data = b""
    while not data.endswith(HELLO):
        chunk = sock.recv(4096)
        if not chunk:
            raise CellError(f"idle: connection closed after {len(data)} B")
        data += chunk


def still_open(socks: list[socket.socket]) -> int:
    """How many of the idle connections the server has not closed."""
    alive = 0
    for sock in socks:
        sock.setblocking(False)
        try:
            alive += sock.recv(1, socket.MSG_PEEK) != b""
        except BlockingIOError:
            alive += 1
        except OSError:
            pass
    return alive


def close_all(socks: list[socket.socket]) -> None:
    for sock in socks:
        sock.close()


# ---------------------------------------------------------------- one cell


def free_port() -> int:
    """A port nothing listens on now (the kernel's pick): never someone else's server."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def run_cell(st: Settings, server: Server, scenario: Scenario, repeat: int) -> dict:
    port = free_port()
    rundir = st.run_dir / "cells" / f"{scenario.name}-{server.name}-{repeat}"
    record: dict = {"server": server.name, "scenario": scenario.name, "repeat": repeat}
    proc, argv = start_server(server, scenario, port, rundir)
    record["argv"] = " ".join(argv).replace(str(ROOT) + "/", "").replace(f":{port}", ":PORT")
    record["argv"] = record["argv"].replace(f" {port} ", " PORT ")
    try:
        wait_ready(proc, port)
        record["framing"] = check(scenario.app, port)
        record["rss_idle_mib"] = group_rss(proc.pid) / 2**20
        if st.warmup:
            wrk(port, scenario, st.warmup)
        settle(proc.pid)
        if scenario.idle:
            record.update(idle_run(st, proc, port, scenario))
        else:
            record.update(measure(proc.pid, port, scenario, st.duration))
        if proc.poll() is not None:
            raise CellError(f"server exited with {proc.returncode} during the run")
        check(scenario.app, port)
        record["ok"] = True
    except (CellError, OSError, ValueError, KeyError) as exc:
        # Recorded as a failed cell; the run goes on with the next one.
        record["ok"] = False
        record["error"] = str(exc) if isinstance(exc, CellError) else repr(exc)
        record["log"] = log_tail(rundir)
    finally:
        stop_server(proc)
    return record


def idle_run(st: Settings, proc: subprocess.Popen[bytes], port: int, scenario: Scenario) -> dict:
    """hello@16 without, then with `st.idle` idle keep-alive connections, on one server."""
    base = measure(proc.pid, port, scenario, st.duration)
    socks = open_idle(port, st.idle)
    try:
        settle(proc.pid)
        loaded = measure(proc.pid, port, scenario, st.duration)
        held = still_open(socks)
    finally:
        close_all(socks)
    loaded["base_rps"] = base["rps"]
    loaded["base_rss_peak_mib"] = base["rss_peak_mib"]
    loaded["idle_opened"] = len(socks)
    loaded["idle_held"] = held
    return loaded


# ---------------------------------------------------------------- run


def plan(st: Settings) -> list[tuple[int, Scenario, Server]]:
    cells = []
    for repeat in range(st.repeats):
        for scenario in st.scenarios:
            for server in st.servers:
                if scenario.app in server.apps and (server.idle or not scenario.idle):
                    cells.append((repeat, scenario, server))
    return cells


def estimate(st: Settings, cells: list[tuple[int, Scenario, Server]]) -> float:
    seconds = 0.0
    for _, scenario, _ in cells:
        seconds += 2.0 + st.warmup + st.duration
        if scenario.idle:
            seconds += st.duration + 4.0 + st.idle / 2000
    return seconds


def versions(st: Settings) -> dict[str, str]:
    found = {}
    for server in st.servers:
        found[server.name] = version_of(server)
    found["wrk"] = first_line(["wrk", "-v"])
    found["python"] = sys.version.split()[0]
    found["rustc"] = first_line(["rustc", "-V"])
    found["kernel"] = os.uname().release
    found["cpu"] = cpu_model()
    found["commit"] = first_line(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"])
    return found


def version_of(server: Server) -> str:
    if server.name == "nginx":
        return first_line(["nginx", "-v"]).replace("nginx version: ", "")
    if server.name == "rust-hello":
        return "this tree, cargo --release"
    python = VENVS / server.name / "bin" / "python"
    code = f"import importlib.metadata as m; print(m.version({server.version!r}))"
    return first_line([str(python), "-c", code])


def first_line(argv: list[str]) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, timeout=20, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    text = (done.stdout or done.stderr).decode(errors="replace").strip()
    return text.splitlines()[0] if text else "?"


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return f"{os.cpu_count()} × {line.split(':', 1)[1].strip()}"
    except OSError:
        pass
    return f"{os.cpu_count()} CPUs"


def prepare(idle: int) -> None:
    """The files nginx and the file app serve; a descriptor limit for the idle run (the
    harness holds the idle connections, the server their other ends; children inherit it)."""
    OUT.mkdir(parents=True, exist_ok=True)
    for name, size in (("file.bin", 4 << 20), ("big.bin", 1 << 20)):
        path = OUT / name
        if not path.exists() or path.stat().st_size != size:
            path.write_bytes(b"f" * size)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = max(soft, idle + 4096)
    if hard == resource.RLIM_INFINITY or hard >= want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
        return
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, want))  # root may raise the hard limit
    except (ValueError, OSError):
        print(f"ulimit -n is at most {hard}: the idle run may fail", file=sys.stderr)
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def missing(st: Settings) -> list[str]:
    gone = []
    for server in st.servers:
        argv0 = server_argv(server, SCENARIOS[0], 1, st.run_dir)[0]
        if "/" in argv0 and not os.access(argv0, os.X_OK):
            gone.append(f"{server.name} ({argv0})")
    return gone


def run(st: Settings) -> None:
    cells = plan(st)
    total = len(cells)
    print(f"{total} cells, about {estimate(st, cells) / 60:.0f} min; raw results in {st.run_dir}")
    started = time.monotonic()
    for index, (repeat, scenario, server) in enumerate(cells, 1):
        record = run_cell(st, server, scenario, repeat)
        st.results.append(record)
        print(progress(index, total, started, record), flush=True)
        save(st)


def save(st: Settings) -> dict:
    data = {"meta": st.meta, "results": st.results}
    (st.run_dir / "results.json").write_text(json.dumps(data, indent=1))
    return data


def progress(index: int, total: int, started: float, record: dict) -> str:
    head = f"[{index}/{total} {time.monotonic() - started:5.0f}s] {record['scenario']:<10} "
    head += f"{record['server']:<11} r{record['repeat']}"
    if not record["ok"]:
        return f"{head} FAILED: {record['error']}"
    line = f"{head} {record['rps']:>9,.0f} req/s  p99 {record['p99_ms']:7.1f} ms"
    line += f"  {record['cpu_us_per_req'] or 0:6.0f} us/req  {record['rss_peak_mib']:5.0f} MiB"
    if "idle_held" in record:
        line += f"  (no idle {record['base_rps']:,.0f} req/s, held {record['idle_held']})"
    return line


def parse_args(argv: list[str]) -> Settings:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick", action="store_true", help="1 repeat of 1 s, no warm-up, docs untouched"
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--duration", type=int, default=3, help="seconds of each measured run")
    parser.add_argument("--warmup", type=int, default=1, help="seconds of wrk before measuring")
    parser.add_argument("--idle", type=int, default=10000, help="idle connections held open")
    parser.add_argument(
        "--servers", help="comma list (default: all): " + ",".join(s.name for s in SERVERS)
    )
    parser.add_argument(
        "--scenarios", help="comma list (default: all): " + ",".join(s.name for s in SCENARIOS)
    )
    parser.add_argument("--no-docs", action="store_true", help="leave docs/ untouched")
    parser.add_argument("--dry-run", action="store_true", help="print the plan and stop")
    parser.add_argument("--report", metavar="RESULTS_JSON", help="only re-render a run's report")
    args = parser.parse_args(argv)
    if args.quick:
        args.repeats, args.duration, args.warmup = 1, 1, 0
    servers = pick(SERVERS, args.servers)
    scenarios = pick(SCENARIOS, args.scenarios)
    run_id = time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + ("-quick" if args.quick else "")
    st = Settings(
        repeats=args.repeats,
        duration=args.duration,
        warmup=args.warmup,
        idle=args.idle,
        servers=servers,
        scenarios=scenarios,
        run_dir=OUT / run_id,
        docs=not (args.no_docs or args.quick),
        quick=args.quick,
        dry_run=args.dry_run,
        report_only=args.report,
    )
    return st


def pick(items: list, names: str | None) -> list:
    if not names:
        return list(items)
    wanted = names.split(",")
    known = {item.name for item in items}
    unknown = [n for n in wanted if n not in known]
    if unknown:
        raise SystemExit(f"unknown: {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    return [item for item in items if item.name in wanted]


def main(argv: list[str]) -> int:
    st = parse_args(argv)
    if st.report_only:
        data = json.loads(Path(st.report_only).read_text())
        report.write(data, Path(st.report_only).parent, docs=not st.quick)
        return 0
    if st.dry_run:
        cells = plan(st)
        print(f"{len(cells)} cells, about {estimate(st, cells) / 60:.1f} min")
        for repeat, scenario, server in cells:
            print(f"  r{repeat} {scenario.name:<10} {server.name}")
        return 0
    gone = missing(st)
    if gone:
        print("not installed (run make bench-setup): " + ", ".join(gone), file=sys.stderr)
        return 2
    prepare(st.idle)
    st.run_dir.mkdir(parents=True, exist_ok=True)
    atexit.register(stop_all)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    st.meta = {
        "started": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "settings": {
            "repeats": st.repeats,
            "duration": st.duration,
            "warmup": st.warmup,
            "idle": st.idle,
            "threads": THREADS,
            "quick": st.quick,
        },
        "versions": versions(st),
        "servers": [{"name": s.name, "note": s.note} for s in st.servers],
        "scenarios": [
            {"name": s.name, "title": s.title.replace("10,000", f"{st.idle:,}")}
            for s in st.scenarios
        ],
        "wrk": " ".join(wrk_argv(0, SCENARIOS[1], st.duration)).replace(str(ROOT) + "/", ""),
    }
    try:
        run(st)
    finally:
        stop_all()
    st.meta["finished"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    report.write(save(st), st.run_dir, docs=st.docs)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
