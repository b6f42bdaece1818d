"""Byte buffers for request bodies, response output and ``wsgi.file_wrapper``.

Every buffer here is a FIFO: ``append`` adds at the end, ``get`` reads from the front
(peeking unless ``skip=True``), ``skip`` drops from the front, ``prune`` gives back the
space of what was already read. ``len(buf)`` is the number of unread bytes; a buffer is
always truthy, even when empty, so ``if buf:`` means "is there a buffer".

- ``FileBasedBuffer`` keeps its data in a file object whose position is the read
  position; appends go to the end of the file and leave that position where it was.
- ``TempfileBasedBuffer`` and ``BytesIOBasedBuffer`` choose the file.
- ``OverflowableBuffer`` starts as a small ``bytes`` object, moves to ``BytesIO`` at
  ``STRBUF_LIMIT`` bytes and to a temporary file at ``overflow`` bytes, so a large upload
  or response never sits in memory (``inbuf_overflow``/``outbuf_overflow``, SPEC §3.14).
- ``ReadOnlyFileBasedBuffer`` is ``wsgi.file_wrapper`` (PEP 3333, SPEC §3.12).
"""

from __future__ import annotations

import tempfile
from io import BytesIO
from typing import IO, Callable, Optional, Protocol, cast

__all__ = [
    "COPY_BYTES",
    "STRBUF_LIMIT",
    "BytesIOBasedBuffer",
    "FileBasedBuffer",
    "OverflowableBuffer",
    "ReadOnlyFileBasedBuffer",
    "TempfileBasedBuffer",
]

#: Bytes moved per read/write when copying one buffer's file into another: large enough to
#: keep the number of system calls low, small enough not to double memory for a big file.
COPY_BYTES = 1 << 18  # 256 KiB

#: Below this many bytes an ``OverflowableBuffer`` keeps a plain ``bytes`` object: most
#: request bodies and response chunks are small, and a ``BytesIO`` costs more than it saves.
STRBUF_LIMIT = 8192


class _Readable(Protocol):
    """The least a ``wsgi.file_wrapper`` argument must offer (PEP 3333)."""

    def read(self, size: int, /) -> bytes: ...


def _copy_unread(source: IO[bytes], dest: IO[bytes]) -> int:
    """Copy ``source`` from its position to EOF onto ``dest``; return the bytes copied.

    ``source`` is left where it was.
    """
    read_pos = source.tell()
    copied = 0
    while True:
        data = source.read(COPY_BYTES)
        if not data:
            break
        dest.write(data)
        copied += len(data)
    source.seek(read_pos)
    return copied


class FileBasedBuffer:
    """A FIFO over a file object; the file's position is the read position.

    ``from_buffer`` (any buffer with ``getfile()``) seeds this one with its *unread* bytes;
    ``from_buffer`` itself is left unchanged.
    """

    remain = 0

    def __init__(self, file: IO[bytes], from_buffer: Optional[FileBasedBuffer] = None) -> None:
        self.file = file
        if from_buffer is not None:
            start = file.tell()
            self.remain = _copy_unread(from_buffer.getfile(), file)
            file.seek(start)

    def __len__(self) -> int:
        return self.remain

    def __bool__(self) -> bool:
        return True

    def append(self, s: bytes) -> None:
        file = self.file
        read_pos = file.tell()
        file.seek(0, 2)
        file.write(s)
        file.seek(read_pos)
        self.remain += len(s)

    def get(self, numbytes: int = -1, skip: bool = False) -> bytes:
        """Return up to ``numbytes`` unread bytes (all when negative); consume them if ``skip``."""
        file = self.file
        if skip:
            res = file.read(numbytes) if numbytes >= 0 else file.read()
            self.remain -= len(res)
            return res
        read_pos = file.tell()
        res = file.read(numbytes) if numbytes >= 0 else file.read()
        file.seek(read_pos)
        return res

    def skip(self, numbytes: int, allow_prune: int = 0) -> None:
        """Drop ``numbytes`` unread bytes; ValueError if fewer remain.

        ``allow_prune`` is accepted for interface compatibility with ``OverflowableBuffer``;
        a file-based buffer only gives space back on an explicit ``prune()``.
        """
        if numbytes > self.remain:
            raise ValueError(f"Can't skip {numbytes} bytes in buffer of {self.remain} bytes")
        self.file.seek(numbytes, 1)
        self.remain -= numbytes

    def newfile(self) -> IO[bytes]:
        """Return a new, empty file of the kind this buffer keeps its data in."""
        raise NotImplementedError

    def prune(self) -> None:
        """Discard the bytes already read by moving the unread ones into a new file."""
        file = self.file
        if self.remain == 0:
            read_pos = file.tell()
            end = file.seek(0, 2)
            file.seek(read_pos)
            if end == 0:
                return  # nothing was ever stored: nothing to give back
        new = self.newfile()
        self.remain = _copy_unread(file, new)
        new.seek(0)
        self.file = new
        file.close()

    def getfile(self) -> IO[bytes]:
        """Return the underlying file, positioned at the first unread byte."""
        return self.file

    def close(self) -> None:
        close = getattr(self.file, "close", None)
        if close is not None:
            close()
        self.remain = 0


class TempfileBasedBuffer(FileBasedBuffer):
    """A ``FileBasedBuffer`` on an anonymous temporary file (deleted when closed)."""

    def __init__(self, from_buffer: Optional[FileBasedBuffer] = None) -> None:
        super().__init__(self.newfile(), from_buffer)

    def newfile(self) -> IO[bytes]:
        return tempfile.TemporaryFile("w+b")


class BytesIOBasedBuffer(FileBasedBuffer):
    """A ``FileBasedBuffer`` in memory."""

    def __init__(self, from_buffer: Optional[FileBasedBuffer] = None) -> None:
        super().__init__(self.newfile(), from_buffer)

    def newfile(self) -> IO[bytes]:
        return BytesIO()


def _is_seekable(fp: object) -> bool:
    """True if ``fp`` says it is seekable, or (having no ``seekable``) has seek and tell."""
    seekable = getattr(fp, "seekable", None)
    if seekable is not None:
        return bool(seekable())
    return hasattr(fp, "seek") and hasattr(fp, "tell")


class ReadOnlyFileBasedBuffer(FileBasedBuffer):
    """``wsgi.file_wrapper``: wraps an application's file so the server can send it.

    Iterating yields ``block_size`` chunks until EOF (the PEP 3333 fallback, used for
    non-seekable files). For a seekable file the server calls ``prepare()`` to learn how
    many bytes to send, then reads them with ``get``/``skip``, never past that count.
    ``seek``, ``tell`` and ``seekable`` are the wrapped file's own methods, present only
    when that file is seekable.
    """

    seek: Callable[..., int]
    tell: Callable[[], int]
    seekable: Callable[[], bool]

    def __init__(self, file: _Readable, block_size: int = 32768) -> None:
        # Only read() is guaranteed; seek/tell are used after _is_seekable() said so.
        self.file = cast(IO[bytes], file)
        self.block_size = block_size
        if _is_seekable(file):
            self.seek = self.file.seek
            self.tell = self.file.tell
            seekable = getattr(file, "seekable", None)
            if seekable is not None:
                self.seekable = seekable

    def prepare(self, size: Optional[int] = None) -> int:
        """Set and return the number of bytes to send: from the current position to EOF,
        capped at ``size`` (the application's Content-Length) when given.

        A non-seekable file cannot be measured: the result is 0 and the server iterates.
        """
        if _is_seekable(self.file):
            start = self.file.tell()
            end = self.file.seek(0, 2)
            self.file.seek(start)
            available = max(end - start, 0)
            self.remain = available if size is None else min(available, size)
        return self.remain

    def get(self, numbytes: int = -1, skip: bool = False) -> bytes:
        """Like ``FileBasedBuffer.get`` but never past the ``prepare()``d byte count."""
        if numbytes < 0 or numbytes > self.remain:
            numbytes = self.remain
        file = self.file
        if skip:
            res = file.read(numbytes)
            self.remain -= len(res)
            return res
        read_pos = file.tell()
        res = file.read(numbytes)
        file.seek(read_pos)
        return res

    def __iter__(self) -> ReadOnlyFileBasedBuffer:
        return self

    def __next__(self) -> bytes:
        val = self.file.read(self.block_size)
        if not val:
            raise StopIteration
        return val

    def append(self, s: bytes) -> None:
        raise NotImplementedError("wsgi.file_wrapper is read-only")

    def newfile(self) -> IO[bytes]:
        raise NotImplementedError("wsgi.file_wrapper cannot be pruned")


class OverflowableBuffer:
    """A FIFO that starts in memory and spills to a temporary file when it grows.

    Stages, by unread size: empty; ``bytes`` below ``STRBUF_LIMIT``; a
    ``BytesIOBasedBuffer``; a ``TempfileBasedBuffer`` once ``overflow`` bytes are held.
    ``prune()`` on a spilled buffer that has shrunk below ``overflow`` moves it back into
    memory. ``skip(n, allow_prune=True)`` that drains everything returns to the empty stage.
    """

    overflowed = False
    buf: Optional[FileBasedBuffer] = None
    strbuf = b""  # stage 1: unread bytes only, never more than STRBUF_LIMIT - 1

    def __init__(self, overflow: int) -> None:
        self.overflow = overflow

    def __len__(self) -> int:
        buf = self.buf
        if buf is not None:
            return len(buf)
        return len(self.strbuf)

    def __bool__(self) -> bool:
        return True

    def _create_buffer(self, extra: int = 0) -> FileBasedBuffer:
        """Leave the ``bytes`` stage: move ``strbuf`` into a file-based buffer.

        ``extra`` is the size about to be appended, so a big first append goes straight
        to a temporary file instead of through ``BytesIO``.
        """
        buf: FileBasedBuffer
        if len(self.strbuf) + extra >= self.overflow:
            buf = TempfileBasedBuffer()
            self.overflowed = True
        else:
            buf = BytesIOBasedBuffer()
            self.overflowed = False
        if self.strbuf:
            buf.append(self.strbuf)
            self.strbuf = b""
        self.buf = buf
        return buf

    def _set_small_buffer(self) -> None:
        old = self.buf
        self.buf = BytesIOBasedBuffer(old)
        self.overflowed = False
        if old is not None:
            old.close()

    def _set_large_buffer(self) -> None:
        old = self.buf
        self.buf = TempfileBasedBuffer(old)
        self.overflowed = True
        if old is not None:
            old.close()

    def append(self, s: bytes) -> None:
        buf = self.buf
        if buf is None:
            if len(self.strbuf) + len(s) < STRBUF_LIMIT:
                self.strbuf += s
                return
            buf = self._create_buffer(len(s))
        buf.append(s)
        if not self.overflowed and len(buf) >= self.overflow:
            self._set_large_buffer()

    def get(self, numbytes: int = -1, skip: bool = False) -> bytes:
        """Return up to ``numbytes`` unread bytes (all when negative); consume them if ``skip``."""
        buf = self.buf
        if buf is not None:
            return buf.get(numbytes, skip)
        strbuf = self.strbuf
        res = strbuf if numbytes < 0 else strbuf[:numbytes]
        if skip:
            self.strbuf = strbuf[len(res) :]
        return res

    def skip(self, numbytes: int, allow_prune: int = 0) -> None:
        """Drop ``numbytes`` unread bytes; ValueError if fewer remain.

        With ``allow_prune`` true, draining the buffer completely releases its storage.
        """
        buf = self.buf
        if buf is None:
            if numbytes > len(self.strbuf):
                raise ValueError(
                    f"Can't skip {numbytes} bytes in buffer of {len(self.strbuf)} bytes"
                )
            self.strbuf = self.strbuf[numbytes:]
            return
        buf.skip(numbytes, allow_prune)
        if allow_prune and len(buf) == 0:
            buf.close()
            self.buf = None
            self.overflowed = False

    def prune(self) -> None:
        """Give back the space of bytes already read (potentially expensive: copies)."""
        buf = self.buf
        if buf is None:
            return  # the bytes stage holds unread bytes only
        buf.prune()
        if self.overflowed and len(buf) < self.overflow:
            self._set_small_buffer()

    def getfile(self) -> IO[bytes]:
        """Return a file positioned at the first unread byte (leaves the ``bytes`` stage)."""
        buf = self.buf
        if buf is None:
            buf = self._create_buffer()
        return buf.getfile()

    def close(self) -> None:
        buf = self.buf
        if buf is not None:
            buf.close()
        self.strbuf = b""
