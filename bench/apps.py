"""The WSGI applications the server benchmarks run (`bench/bench.py`), one per scenario.

Every server imports them from this directory (`apps:hello`, ...). The sizes are fixed here
and checked by the harness before each measured run.
"""

import os
import time

HELLO = b"Hello, world!"
BIG = b"x" * (1 << 20)
STREAM_PART = b"s" * 16384
STREAM_PARTS = 100
FILE = os.environ.get("BENCH_FILE", os.path.join(os.path.dirname(__file__), "out", "file.bin"))


def hello(environ, start_response):
    """13 bytes with a Content-Length."""
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "13")])
    return [HELLO]


def big(environ, start_response):
    """1 MiB as one bytes object, with a Content-Length."""
    start_response(
        "200 OK",
        [("Content-Type", "application/octet-stream"), ("Content-Length", str(len(BIG)))],
    )
    return [BIG]


def stream(environ, start_response):
    """100 x 16 KiB from a generator, no Content-Length (the server chunks it)."""
    start_response("200 OK", [("Content-Type", "application/octet-stream")])
    return (STREAM_PART for _ in range(STREAM_PARTS))


def echo(environ, start_response):
    """Reads the whole request body, answers with its length in decimal."""
    length = int(environ.get("CONTENT_LENGTH") or 0)
    stream = environ["wsgi.input"]
    seen = 0
    while seen < length:
        data = stream.read(min(65536, length - seen))
        if not data:
            break
        seen += len(data)
    body = str(seen).encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


def file(environ, start_response):
    """A 4 MiB file through wsgi.file_wrapper, with a Content-Length.

    A server without file_wrapper (it is optional in PEP 3333; granian has none) gets the
    fallback PEP 3333 asks for: the file read in 64 KiB blocks.
    """
    handle = open(FILE, "rb")  # the server closes it (wrapper or iterable close())
    size = os.fstat(handle.fileno()).st_size
    start_response(
        "200 OK", [("Content-Type", "application/octet-stream"), ("Content-Length", str(size))]
    )
    wrapper = environ.get("wsgi.file_wrapper")
    if wrapper is not None:
        return wrapper(handle, 65536)
    return _blocks(handle)


def _blocks(handle):
    with handle:
        yield from iter(lambda: handle.read(65536), b"")


def sleep(environ, start_response):
    """10 ms of time.sleep (a blocking call: thread-pool behaviour), then hello."""
    time.sleep(0.01)
    return hello(environ, start_response)
