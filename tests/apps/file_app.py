"""A WSGI app returning ``wsgi.file_wrapper`` over a file named in the query string
(tests of SPEC §3.12). Query: ``path`` (required), ``cl`` (a Content-Length to declare),
``kind``: ``file`` (a regular file, the default), ``nonseekable`` (a raw reader whose
``seekable()`` is False) or ``readonly`` (an object with only ``read``), ``skip`` (bytes
to read before handing the file over)."""

from __future__ import annotations

import io
from typing import Any, Callable, Iterable
from urllib.parse import parse_qs

StartResponse = Callable[..., Any]


class _NotSeekable(io.RawIOBase):
    def __init__(self, path: str) -> None:
        self._file = open(path, "rb", buffering=0)  # closed by close()

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def readinto(self, buffer: Any) -> int:
        return self._file.readinto(buffer) or 0

    def close(self) -> None:
        self._file.close()
        super().close()


class _ReadOnly:
    def __init__(self, path: str) -> None:
        self._file = open(path, "rb")  # closed by close()

    def read(self, size: int = -1) -> bytes:
        return self._file.read(size)

    def close(self) -> None:
        self._file.close()


def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    query = {k: v[0] for k, v in parse_qs(environ["QUERY_STRING"]).items()}
    kind = query.get("kind", "file")
    handle: Any
    if kind == "nonseekable":
        handle = _NotSeekable(query["path"])
    elif kind == "readonly":
        handle = _ReadOnly(query["path"])
    else:
        handle = open(query["path"], "rb")  # the server closes it
    if "skip" in query:
        handle.read(int(query["skip"]))
    headers = [("Content-Type", "application/octet-stream")]
    if "cl" in query:
        headers.append(("Content-Length", query["cl"]))
    start_response("200 OK", headers)
    wrapper: Iterable[bytes] = environ["wsgi.file_wrapper"](handle, 8192)
    return wrapper
