"""PasteDeploy integration (SPEC D1, §1.1, §1.2): an ini file's ``[server:main]`` section
loaded with ``paste.deploy.loadserver`` serves for real on port 0, answers an HTTP request,
and returns 0 when the server is closed from another thread (D3).

The ``egg:waitress-rs#main`` form needs the ``paste.server_runner`` entry point, which
exists once the package is installed (``maturin develop``, as ``make build`` does).
"""

from __future__ import annotations

import gc
import http.client
import importlib.metadata
import inspect
import logging
import threading
import time
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List

import pytest
from paste.deploy import loadserver

import waitress
from tests.apps import hello_app

SERVER_SECTION = """\
[server:main]
{use}
host = 127.0.0.1
port = 0
threads = 2
"""


class BannerWatcher(logging.Handler):
    """Collects the ``Serving on ...`` lines ``serve()`` logs."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: List[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if message.startswith("Serving on "):
            self.lines.append(message)


@pytest.fixture
def banner() -> Iterator[BannerWatcher]:
    watcher = BannerWatcher()
    waitress_logger = logging.getLogger("waitress")
    old_level = waitress_logger.level
    waitress_logger.setLevel(logging.INFO)
    waitress_logger.addHandler(watcher)
    yield watcher
    waitress_logger.removeHandler(watcher)
    waitress_logger.setLevel(old_level)


def live_servers() -> List[Any]:
    from waitress.server import BaseWSGIServer

    return [obj for obj in gc.get_objects() if isinstance(obj, BaseWSGIServer)]


def serve_ini(tmp_path: Path, use: str, banner: BannerWatcher) -> None:
    """Load ``[server:main]`` with ``use`` from an ini file, serve ``hello_app`` in a thread,
    request it, close the server and check the runner returned 0."""
    ini = tmp_path / "server.ini"
    ini.write_text(SERVER_SECTION.format(use=use))
    runner: Callable[[Any], Any] = loadserver(f"config:{ini}")
    before = live_servers()  # held, so no new server can reuse an old one's id
    result: Dict[str, Any] = {}

    def run() -> None:
        result["returned"] = runner(hello_app.app)

    thread = threading.Thread(target=run, name="paste-serve", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    new: List[Any] = []
    while not new:
        assert time.monotonic() < deadline, "no server was created"
        assert thread.is_alive() or "returned" in result
        time.sleep(0.01)
        new = [s for s in live_servers() if not any(s is old for old in before)]
    server = new[0]
    port = int(server.effective_port)
    assert port != 0
    try:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        connection.request("GET", "/from/paste")
        response = connection.getresponse()
        assert response.status == 200
        assert response.read() == hello_app.BODY
        assert response.getheader("X-Path") == "/from/paste"
        connection.close()
    finally:
        server.close()
        thread.join(15)
    assert not thread.is_alive(), "run() did not return after close()"
    assert result["returned"] == 0  # serve_paste's return value
    assert f"Serving on http://127.0.0.1:{port}" in banner.lines


def test_entry_point_is_registered() -> None:
    points = importlib.metadata.entry_points(group="paste.server_runner")
    ours = [ep for ep in points if ep.name == "main" and ep.value == "waitress:serve_paste"]
    assert ours, "waitress-rs is not installed (run `make build`)"
    assert ours[0].dist is not None and ours[0].dist.name == "waitress-rs"
    assert ours[0].load() is waitress.serve_paste


def test_egg_waitress_rs_main(tmp_path: Path, banner: BannerWatcher) -> None:
    serve_ini(tmp_path, "use = egg:waitress-rs#main", banner)


def test_explicit_server_runner_without_entry_point(tmp_path: Path, banner: BannerWatcher) -> None:
    serve_ini(tmp_path, "paste.server_runner = waitress:serve_paste", banner)


def test_call_form_treats_serve_paste_as_a_factory(tmp_path: Path) -> None:
    """``use = call:waitress:serve_paste`` is loaded as a *server factory*
    (``factory(global_conf, **settings)``), not a runner, so it fails: docs/migrating.md
    recommends the two forms above instead."""
    params = list(inspect.signature(waitress.serve_paste).parameters.values())
    assert [p.name for p in params[:2]] == ["app", "global_conf"]
    assert all(p.default is inspect.Parameter.empty for p in params[:2])
    ini = tmp_path / "server.ini"
    ini.write_text(SERVER_SECTION.format(use="use = call:waitress:serve_paste"))
    with pytest.raises(TypeError):
        loadserver(f"config:{ini}")
