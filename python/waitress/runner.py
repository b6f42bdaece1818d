"""The ``waitress-serve`` command line (also ``python -m waitress``).

``run()`` pre-parses the options with :meth:`Adjustments.parse_args`, imports the
``MODULE:OBJECT`` application with :func:`pkgutil.resolve_name` and hands both to
``waitress.serve``, which converts and validates the option strings. It returns the exit
code: 0 after serving or ``--help``, 1 for a usage or import error (SPEC §2.5). The help text
is generated from the option table in :mod:`waitress.adjustments`, so every option the server
accepts is documented here.
"""

from __future__ import annotations

import getopt
import importlib
import logging
import os
import pkgutil
import sys
import textwrap
from typing import Any, Callable, List, Optional, Sequence, TextIO

from .adjustments import _OPTIONS, Adjustments, _Option

__all__ = ["HELP", "run", "show_exception", "show_help"]

_WIDTH = 79
_OPTION_INDENT = " " * 4
_TEXT_INDENT = " " * 8

# The two flags that belong to the command line rather than to Adjustments.
_CLI_FLAGS = (
    ("--help", "Show this help and exit."),
    (
        "--call",
        "Call MODULE:OBJECT with no arguments and serve the WSGI application it returns.",
    ),
)

_SECTIONS = (("standard", "Standard options:"), ("tuning", "Tuning options:"))


def _flag(option: _Option) -> str:
    name = option.name.replace("_", "-")
    return f"--{name}={option.metavar}" if option.metavar else f"--[no-]{name}"


def _shown_default(option: _Option) -> str:
    if option.shown_default is not None:
        return option.shown_default
    default = option.default
    if isinstance(default, bool):
        return "on" if default else "off"
    if default is None:
        return "unset"
    return str(default) if default != "" else "empty"


def _entry(flag: str, text: str, default: Optional[str] = None) -> List[str]:
    lines = [_OPTION_INDENT + flag]
    lines += textwrap.wrap(
        text,
        width=_WIDTH,
        initial_indent=_TEXT_INDENT,
        subsequent_indent=_TEXT_INDENT,
        break_on_hyphens=False,
    )
    if default is not None:
        lines.append(f"{_TEXT_INDENT}Default: {default}")
    return [*lines, ""]


def _build_help() -> str:
    """Lay the option table out as waitress's help does: ``Usage:``, then one section per
    kind of option, each option indented 4 spaces and its description 8.

    Unlike waitress 3.0.2 this lists the proxy options and ``--server-name`` (waitress's main
    branch lists them too) and the options of SPEC D7; ``sockets`` stays out because only
    Python callers can pass sockets.
    """
    lines = ["Usage:", "", _OPTION_INDENT + "{0} [OPTS] MODULE:OBJECT", ""]
    for section, title in _SECTIONS:
        lines += [title, ""]
        if section == "standard":
            for flag, text in _CLI_FLAGS:
                lines += _entry(flag, text)
        for option in _OPTIONS:
            if option.section == section:
                # The template is filled with str.format: keep literal braces literal.
                text = option.help.replace("{", "{{").replace("}", "}}")
                lines += _entry(_flag(option), text, _shown_default(option))
    return "\n".join(lines).rstrip("\n")


#: The help template; ``{0}`` is the program name.
HELP: str = _build_help()


def show_help(stream: TextIO, name: str, error: Optional[str] = None) -> None:
    """Write ``Error: <error>`` and a blank line (if given), then the help for ``name``."""
    if error is not None:
        print(f"Error: {error}", file=stream)
        print(file=stream)
    print(HELP.format(name), file=stream)


def show_exception(stream: TextIO) -> None:
    """Describe the exception being handled, which happened while importing the app."""
    exc = sys.exc_info()[1]
    kind = type(exc).__name__ if exc is not None else "unknown"
    print(f"There was an exception ({kind}) importing your module.", file=stream)
    print(file=stream)
    args = exc.args if exc is not None else ()
    if args:
        print("It had these arguments: ", file=stream)
        for number, arg in enumerate(args, start=1):
            print(f"{number}. {arg}", file=stream)
            print(file=stream)
    else:
        print("It had no arguments.", file=stream)


def _default_serve(app: Any, **kw: Any) -> None:
    """Call ``waitress.serve``, looked up at call time: the package ``__init__`` that defines
    it imports the server modules, and this module must import without them (and without an
    import cycle if ``__init__`` ever imports it)."""
    importlib.import_module("waitress").serve(app, **kw)


def run(argv: Sequence[str] = sys.argv, _serve: Callable[..., object] = _default_serve) -> int:
    """Run ``waitress-serve`` with ``argv`` (program name first); return the exit code.

    Errors in the option values themselves surface from ``_serve`` as exceptions.
    """
    name = os.path.basename(argv[0])
    try:
        kw, args = Adjustments.parse_args(argv[1:])
    except getopt.GetoptError as exc:
        show_help(sys.stderr, name, str(exc))
        return 1

    if kw["help"]:
        show_help(sys.stdout, name)
        return 0
    if len(args) != 1:
        show_help(sys.stderr, name, "Specify one application only")
        return 1

    # Show the "Serving on" banner and other INFO records unless the user configured the
    # level; serve() adds the handler (logging.basicConfig).
    logger = logging.getLogger("waitress")
    if logger.level == logging.NOTSET:
        logger.setLevel(logging.INFO)

    # Appended, not prepended: an app module must not shadow installed packages.
    sys.path.append(os.getcwd())
    try:
        app = pkgutil.resolve_name(args[0])
    except (ValueError, ImportError, AttributeError) as exc:
        show_help(sys.stderr, name, str(exc))
        show_exception(sys.stderr)
        return 1

    if kw["call"]:
        app = app()
    del kw["call"], kw["help"]
    _serve(app, **kw)
    return 0
