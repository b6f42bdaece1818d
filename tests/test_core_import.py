"""The extension's import guard (docs/compat.md, server-level differences): waitress._core
keeps per-call state that only the GIL protects (crates/python/src/gil.rs), so it refuses
to load in an interpreter whose GIL is off, with an ImportError that says why."""

from __future__ import annotations

import subprocess
import sys

LOAD = "import sys\n{setup}\nimport waitress._core\nprint('loaded')\n"


def load_core(setup: str) -> subprocess.CompletedProcess[str]:
    """Import waitress._core in a fresh interpreter after running `setup`."""
    return subprocess.run(
        [sys.executable, "-c", LOAD.format(setup=setup)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_extension_refuses_an_interpreter_whose_gil_is_off() -> None:
    # A free-threaded interpreter answers sys._is_gil_enabled() with False; 3.11 has no
    # such function, so the test gives it one.
    done = load_core("sys._is_gil_enabled = lambda: False")
    assert done.returncode != 0
    assert "ImportError: waitress._core needs the GIL" in done.stderr, done.stderr


def test_the_extension_loads_where_the_gil_is_on() -> None:
    for setup in ("", "sys._is_gil_enabled = lambda: True"):
        done = load_core(setup)
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == "loaded"
