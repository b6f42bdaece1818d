"""waitress-rs: the waitress WSGI server on a Rust core.

``serve``, ``serve_paste``, ``profile`` and ``create_server`` as waitress has them (SPEC §1.2).
Importing the package starts nothing (SPEC D4).
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Optional

from waitress.server import create_server

__all__ = ["create_server", "profile", "serve", "serve_paste"]


def serve(app: Callable[..., Any], **kw: Any) -> None:
    """Serve ``app`` with waitress options ``kw`` until Ctrl-C or SIGTERM."""
    _server = kw.pop("_server", create_server)  # test shim
    _quiet = kw.pop("_quiet", False)  # test shim
    _profile = kw.pop("_profile", False)  # test shim
    if not _quiet:  # pragma: no cover
        logging.basicConfig()
    server = _server(app, **kw)
    if not _quiet:  # pragma: no cover
        server.print_listen("Serving on http://{}:{}")
    if _profile:  # pragma: no cover
        profile("server.run()", globals(), locals(), (), False)
    else:
        server.run()


def serve_paste(app: Callable[..., Any], global_conf: Any, **kw: Any) -> int:
    """The PasteDeploy ``paste.server_runner`` entry point: serve, then return 0."""
    serve(app, **kw)
    return 0


def profile(
    cmd: str,
    globals: dict[str, Any],
    locals: dict[str, Any],
    sort_order: Optional[tuple[str, ...]],
    callers: bool,
) -> None:
    """Run ``cmd`` under the stdlib profiler and print the top 30% of its statistics."""
    import os
    import profile as profile_module
    import pstats
    import tempfile

    fd, path = tempfile.mkstemp()
    os.close(fd)
    try:
        profile_module.runctx(cmd, globals, locals, path)
        stats = pstats.Stats(path)
        stats.strip_dirs()
        stats.sort_stats(*(sort_order or ("cumulative", "calls", "time")))
        if callers:
            stats.print_callers(0.3)
        else:
            stats.print_stats(0.3)
    finally:
        os.remove(path)
