"""Tests for the waitress-serve command line (waitress.runner, SPEC §2.5)."""

from __future__ import annotations

import io
import logging
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import waitress
from tests.apps import runner_app
from waitress import runner
from waitress.adjustments import _OPTIONS, Adjustments
from waitress.runner import HELP, run, show_exception, show_help

USAGE = re.compile(r"^Usage:\n\n    waitress-serve")


class FakeServe:
    """Stands in for waitress.serve and records what run() passed it."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, dict[str, Any]]] = []

    def __call__(self, app: Any, **kw: Any) -> None:
        self.calls.append((app, kw))


@pytest.fixture
def serve() -> FakeServe:
    return FakeServe()


@pytest.fixture(autouse=True)
def _restore_global_state(monkeypatch: pytest.MonkeyPatch) -> None:
    # run() appends the cwd to sys.path and sets the waitress logger's level.
    monkeypatch.setattr(sys, "path", list(sys.path))
    logger = logging.getLogger("waitress")
    monkeypatch.setattr(logger, "level", logging.NOTSET)


def waitress_serve(*args: str, serve: FakeServe) -> int:
    return run(["/usr/bin/waitress-serve", *args], _serve=serve)


def test_help_goes_to_stdout(serve: FakeServe, capsys: pytest.CaptureFixture[str]) -> None:
    assert waitress_serve("--help", serve=serve) == 0
    out, err = capsys.readouterr()
    assert USAGE.match(out)
    assert out == HELP.format("waitress-serve") + "\n"
    assert err == ""
    assert serve.calls == []


def test_help_wins_over_other_arguments(
    serve: FakeServe, capsys: pytest.CaptureFixture[str]
) -> None:
    assert waitress_serve("--port=1", "--help", "a:b", "c:d", serve=serve) == 0
    assert USAGE.match(capsys.readouterr().out)
    assert serve.calls == []


@pytest.mark.parametrize(
    ("argv", "error"),
    [
        (["--bad-opt"], "option --bad-opt not recognized"),
        (["--threads"], "option --threads requires argument"),
        (["--max-request", "5"], "option --max-request not a unique prefix"),
        ([], "Specify one application only"),
        (["a:b", "c:d"], "Specify one application only"),
        (["a:b", "--port=1"], "Specify one application only"),  # getopt stops at "a:b"
    ],
)
def test_usage_errors(
    argv: list[str], error: str, serve: FakeServe, capsys: pytest.CaptureFixture[str]
) -> None:
    assert waitress_serve(*argv, serve=serve) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err == f"Error: {error}\n\n" + HELP.format("waitress-serve") + "\n"
    assert serve.calls == []


def import_error_output(error: str, kind: str) -> str:
    return (
        f"Error: {error}\n\n"
        + HELP.format("waitress-serve")
        + "\n"
        + f"There was an exception ({kind}) importing your module.\n\n"
        + f"It had these arguments: \n1. {error}\n\n"
    )


@pytest.mark.parametrize(
    ("spec", "error", "kind"),
    [
        ("a", "No module named 'a'", "ModuleNotFoundError"),
        ("no_such_module_xyz:app", "No module named 'no_such_module_xyz'", "ModuleNotFoundError"),
        (
            "tests.apps.runner_app:a",
            "module 'tests.apps.runner_app' has no attribute 'a'",
            "AttributeError",
        ),
        ("1bad", "invalid format: '1bad'", "ValueError"),
        ("a:b:c", "invalid format: 'a:b:c'", "ValueError"),
    ],
)
def test_import_errors(
    spec: str, error: str, kind: str, serve: FakeServe, capsys: pytest.CaptureFixture[str]
) -> None:
    assert waitress_serve(spec, serve=serve) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err == import_error_output(error, kind)
    assert serve.calls == []


def test_other_import_errors_propagate(serve: FakeServe) -> None:
    with pytest.raises(RuntimeError, match="refuses to be imported"):
        waitress_serve("tests.apps.broken_app:app", serve=serve)
    assert serve.calls == []


@pytest.mark.parametrize(
    "spec",
    [
        "tests.apps.runner_app:app",
        "tests.apps.runner_app.app",  # dotted name without a colon
        "tests.apps.runner_app:Namespace.app",
    ],
)
def test_serves_the_named_app(spec: str, serve: FakeServe) -> None:
    assert waitress_serve(spec, serve=serve) == 0
    assert serve.calls == [(runner_app.app, {})]


def test_call_serves_what_the_factory_returns(serve: FakeServe) -> None:
    assert waitress_serve("--call", "tests.apps.runner_app:make_app", serve=serve) == 0
    assert serve.calls == [(runner_app.app, {})]


def test_options_reach_serve_as_strings(serve: FakeServe) -> None:
    argv = [
        "--port=9000",
        "--no-ipv6",
        "--listen=a:1",
        "--listen=b:2",
        "--header-timeout=5",
        "--expose-tracebacks",
        "tests.apps.runner_app:app",
    ]
    assert waitress_serve(*argv, serve=serve) == 0
    assert serve.calls == [
        (
            runner_app.app,
            {
                "port": "9000",
                "ipv6": "false",
                "listen": " a:1 b:2",
                "header_timeout": "5",
                "expose_tracebacks": "true",
            },
        )
    ]


def test_adjustment_errors_propagate_from_serve() -> None:
    def serve(app: Any, **kw: Any) -> None:
        Adjustments(**kw)

    with pytest.raises(ValueError, match="invalid literal for int"):
        run(["waitress-serve", "--port=abc", "tests.apps.runner_app:app"], _serve=serve)


def test_sets_waitress_logger_to_info_when_unset(serve: FakeServe) -> None:
    logger = logging.getLogger("waitress")
    assert waitress_serve("tests.apps.runner_app:app", serve=serve) == 0
    assert logger.level == logging.INFO


def test_keeps_a_configured_logger_level(serve: FakeServe) -> None:
    logger = logging.getLogger("waitress")
    logger.setLevel(logging.ERROR)
    assert waitress_serve("tests.apps.runner_app:app", serve=serve) == 0
    assert logger.level == logging.ERROR


def test_appends_the_working_directory_to_sys_path(serve: FakeServe) -> None:
    before = list(sys.path)
    assert waitress_serve("tests.apps.runner_app:app", serve=serve) == 0
    assert sys.path == [*before, os.getcwd()]


def test_imports_app_from_the_working_directory(
    serve: FakeServe, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "cwd_app_for_runner.py").write_text("def app(environ, start_response):\n    pass\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delitem(sys.modules, "cwd_app_for_runner", raising=False)
    assert waitress_serve("cwd_app_for_runner:app", serve=serve) == 0
    assert serve.calls[0][0].__module__ == "cwd_app_for_runner"
    sys.modules.pop("cwd_app_for_runner", None)


def test_default_serve_looks_up_waitress_serve_when_called(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake = FakeServe()
    monkeypatch.setattr(waitress, "serve", fake, raising=False)
    assert run(["waitress-serve", "--threads=2", "tests.apps.runner_app:app"]) == 0
    assert fake.calls == [(runner_app.app, {"threads": "2"})]


# --- show_help / show_exception / HELP ----------------------------------------------------


def test_show_help_without_error() -> None:
    stream = io.StringIO()
    show_help(stream, "prog")
    assert stream.getvalue() == HELP.format("prog") + "\n"
    assert stream.getvalue().startswith("Usage:\n\n    prog [OPTS] MODULE:OBJECT\n")


def test_show_help_with_error() -> None:
    stream = io.StringIO()
    show_help(stream, "prog", "boom")
    assert stream.getvalue() == "Error: boom\n\n" + HELP.format("prog") + "\n"


def test_show_exception_with_arguments() -> None:
    stream = io.StringIO()
    try:
        raise ImportError("first", "second")
    except ImportError:
        show_exception(stream)
    assert stream.getvalue() == (
        "There was an exception (ImportError) importing your module.\n\n"
        "It had these arguments: \n1. first\n\n2. second\n\n"
    )


def test_show_exception_without_arguments() -> None:
    stream = io.StringIO()
    try:
        raise AttributeError
    except AttributeError:
        show_exception(stream)
    assert stream.getvalue() == (
        "There was an exception (AttributeError) importing your module.\n\nIt had no arguments.\n"
    )


def option_block(text: str, flag: str) -> str:
    match = re.search(rf"^    {re.escape(flag)}\n((?:        .*\n)+)", text, re.MULTILINE)
    assert match, f"{flag} missing from the help"
    return match.group(1)


def test_help_layout() -> None:
    text = HELP.format("waitress-serve") + "\n"
    assert USAGE.match(text)
    assert text.startswith("Usage:\n\n    waitress-serve [OPTS] MODULE:OBJECT\n\n")
    standard = text.index("\nStandard options:\n\n")
    tuning = text.index("\nTuning options:\n\n")
    assert standard < tuning
    for line in text.splitlines()[4:]:
        assert len(line) <= 79, line
        assert line == "" or re.match(r"(\S|    --\S|        \S)", line), line
    assert option_block(text, "--help")
    assert option_block(text, "--call")


def test_help_lists_every_option_with_its_default() -> None:
    text = HELP.format("waitress-serve") + "\n"
    tuning = text.index("\nTuning options:\n")
    for option in _OPTIONS:
        name = option.name.replace("_", "-")
        flag = f"--{name}={option.metavar}" if option.metavar else f"--[no-]{name}"
        if option.section == "":
            assert f"--{name}" not in text
            continue
        block = option_block(text, flag)
        assert "Default: " in block
        in_tuning = text.index(f"    {flag}\n") > tuning
        assert in_tuning == (option.section == "tuning"), flag


@pytest.mark.parametrize(
    ("flag", "default"),
    [
        ("--host=ADDR", "0.0.0.0"),
        ("--port=PORT", "8080"),
        ("--listen=ip:port", "0.0.0.0:8080"),
        ("--[no-]ipv6", "on"),
        ("--unix-socket-perms=PERMS", "600"),
        ("--send-bytes=INT", "1"),  # waitress 3.0.2's help says 18000
        ("--connection-limit=INT", "2048"),
        ("--server-name=NAME", "waitress.invalid"),
        ("--trusted-proxy=IP", "unset"),
        ("--trusted-proxy-count=INT", "1"),
        ("--[no-]clear-untrusted-proxy-headers", "on"),
        ("--header-timeout=INT", "30"),
        ("--max-request-line=INT", "65536"),
        ("--max-request-headers=INT", "200"),
        ("--shutdown-timeout=INT", "30"),
    ],
)
def test_help_defaults(flag: str, default: str) -> None:
    block = option_block(HELP.format("waitress-serve") + "\n", flag)
    assert block.endswith(f"        Default: {default}\n")


# --- through a real process ---------------------------------------------------------------


def python_m_waitress(*args: str) -> subprocess.CompletedProcess[str]:
    package_root = str(Path(waitress.__file__).resolve().parent.parent)
    env = {**os.environ, "PYTHONPATH": package_root}
    return subprocess.run(
        [sys.executable, "-m", "waitress", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


def test_python_m_waitress_help() -> None:
    proc = python_m_waitress("--help")
    assert proc.returncode == 0
    assert proc.stdout.startswith("Usage:\n\n    __main__.py [OPTS] MODULE:OBJECT\n")
    assert proc.stderr == ""


def test_python_m_waitress_bad_option_exits_1() -> None:
    # waitress 3.0.2 exits 0 here; SPEC D5 Q11 makes it the CLI's exit code.
    proc = python_m_waitress("--bogus")
    assert proc.returncode == 1
    assert proc.stderr.startswith("Error: option --bogus not recognized\n\nUsage:\n")
    assert proc.stdout == ""


def test_python_m_waitress_without_app_exits_1() -> None:
    proc = python_m_waitress()
    assert proc.returncode == 1
    assert proc.stderr.startswith("Error: Specify one application only\n\nUsage:\n")


def test_python_m_waitress_import_error_exits_1(tmp_path: Path) -> None:
    proc = python_m_waitress("no_such_module_xyz:app")
    assert proc.returncode == 1
    assert proc.stderr.startswith("Error: No module named 'no_such_module_xyz'\n")
    assert "There was an exception (ModuleNotFoundError) importing your module." in proc.stderr


def test_runner_module_names_its_public_api() -> None:
    assert set(runner.__all__) == {"HELP", "run", "show_exception", "show_help"}
