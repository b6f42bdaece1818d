"""WebTest's ``StopableWSGIServer`` (SPEC §A6): it subclasses ``waitress.server.WSGIServer``,
runs ``self.asyncore.loop(.5, map=self._map)`` in a thread, and stops by calling
``handle_close()`` on every value of ``self._map``, ``maintenance(0)`` and
``task_dispatcher.shutdown()``. All of that must keep working on waitress-rs.

WebTest is installed with ``--no-deps`` (requirements-nodeps.txt): it declares a dependency
on the distribution ``waitress``, which would replace our package.
"""

from __future__ import annotations

import http.client
import logging
import socket
import warnings
from typing import Iterator
from urllib.parse import urlsplit

import pytest

from tests.apps import hello_app

with warnings.catch_warnings():
    # WebOb 1.8 imports the stdlib ``cgi`` module, deprecated since Python 3.11.
    warnings.filterwarnings("ignore", message="'cgi' is deprecated", category=DeprecationWarning)
    from webtest.http import StopableWSGIServer


@pytest.fixture
def server() -> Iterator[StopableWSGIServer]:
    server = StopableWSGIServer.create(hello_app.app)
    logger = server.logger
    level = logger.level
    yield server
    if not server.was_shutdown:
        server.shutdown()
    logger.setLevel(level)  # shutdown() sets it to FATAL
    server.runner.join(10)


def wait(server: StopableWSGIServer) -> bool:
    """``server.wait()``, whose probe connection WebTest never closes (a ResourceWarning,
    an error under our warning filter, that is not ours to fix)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="unclosed <socket", category=ResourceWarning)
        started: bool = server.wait()
    return started


def get(url: str) -> http.client.HTTPResponse:
    parts = urlsplit(url)
    assert parts.hostname is not None and parts.port is not None
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    connection.request("GET", parts.path or "/")
    response = connection.getresponse()
    response.read()
    connection.close()
    return response


def test_create_wait_request_shutdown(server: StopableWSGIServer) -> None:
    assert wait(server) is True
    assert server.application_url == f"http://{server.adj.host}:{server.adj.port}/"
    parts = urlsplit(server.application_url)
    assert parts.hostname is not None and parts.port is not None
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    connection.request("GET", "/some/path")
    response = connection.getresponse()
    assert response.status == 200
    assert response.read() == hello_app.BODY
    assert response.getheader("X-Path") == "/some/path"
    connection.close()

    assert server.shutdown() is True
    server.runner.join(10)
    assert not server.runner.is_alive(), "asyncore.loop() did not return after shutdown()"
    with pytest.raises(OSError):
        socket.create_connection((parts.hostname, parts.port), timeout=2).close()


def test_ping_path_is_answered_by_webtest_wrapper(server: StopableWSGIServer) -> None:
    assert wait(server) is True
    response = get(server.application_url + "__application__")
    assert response.status == 200


def test_shutdown_silences_the_server_logger(server: StopableWSGIServer) -> None:
    assert wait(server) is True
    server.shutdown()
    assert server.logger.level == logging.FATAL
