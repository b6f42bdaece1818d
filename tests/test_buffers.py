"""waitress.buffers: FIFO semantics, the four OverflowableBuffer stages, wsgi.file_wrapper.

Cases come from SPEC Part A §1.8 and §3.12. Files are real: temporary files on disk, a
regular file opened by path, and a pipe for the non-seekable case.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import IO, Any, Callable, Iterator, List, Optional, Tuple

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from waitress.buffers import (
    COPY_BYTES,
    STRBUF_LIMIT,
    BytesIOBasedBuffer,
    FileBasedBuffer,
    OverflowableBuffer,
    ReadOnlyFileBasedBuffer,
    TempfileBasedBuffer,
)


def test_constants() -> None:
    assert COPY_BYTES == 262144
    assert STRBUF_LIMIT == 8192


def is_real_file(f: IO[bytes]) -> bool:
    """True for an OS-level file (it has a descriptor), False for BytesIO."""
    try:
        f.fileno()
    except io.UnsupportedOperation:
        return False
    return True


# --- FileBasedBuffer and its two file kinds ---------------------------------------------------


@pytest.fixture
def disk_file(tmp_path: Path) -> Iterator[IO[bytes]]:
    f = open(tmp_path / "buf", "w+b")  # closed by the buffer or below
    yield f
    f.close()


def test_file_based_buffer_fifo(disk_file: IO[bytes]) -> None:
    buf = FileBasedBuffer(disk_file)
    assert len(buf) == 0
    assert bool(buf) is True  # always truthy, even empty
    buf.append(b"hello ")
    buf.append(b"world")
    assert len(buf) == 11
    assert buf.get() == b"hello world"  # a peek: nothing consumed
    assert buf.get(5) == b"hello"
    assert len(buf) == 11
    assert buf.get(5, skip=True) == b"hello"
    assert len(buf) == 6
    assert buf.get(100) == b" world"  # more than there is: what there is
    assert buf.get(0) == b""
    buf.skip(1)
    assert buf.get(-1) == b"world"
    buf.append(b"!")  # appending does not move the read position
    assert buf.get() == b"world!"
    assert buf.getfile() is disk_file
    assert disk_file.tell() == 6
    buf.close()
    assert disk_file.closed
    assert len(buf) == 0


@pytest.mark.parametrize("numbytes", [4, 100])
def test_skip_more_than_remaining_raises(disk_file: IO[bytes], numbytes: int) -> None:
    buf = FileBasedBuffer(disk_file)
    buf.append(b"abc")
    with pytest.raises(ValueError, match=f"Can't skip {numbytes} bytes in buffer of 3 bytes"):
        buf.skip(numbytes)
    assert buf.get() == b"abc"
    buf.skip(3)  # exactly what remains is fine
    assert len(buf) == 0


def test_base_newfile_is_abstract(disk_file: IO[bytes]) -> None:
    buf = FileBasedBuffer(disk_file)
    with pytest.raises(NotImplementedError):
        buf.newfile()
    buf.prune()  # nothing ever stored: nothing to do, no new file needed
    buf.append(b"x")
    with pytest.raises(NotImplementedError):
        buf.prune()


@pytest.mark.parametrize(
    ("cls", "on_disk"), [(TempfileBasedBuffer, True), (BytesIOBasedBuffer, False)]
)
def test_concrete_buffers(cls: Callable[..., FileBasedBuffer], on_disk: bool) -> None:
    buf = cls()
    try:
        assert is_real_file(buf.getfile()) is on_disk
        buf.append(b"0123456789")
        buf.skip(4)
        old = buf.getfile()
        buf.prune()
        new = buf.getfile()
        assert new is not old
        assert old.closed
        assert is_real_file(new) is on_disk
        assert len(buf) == 6
        assert buf.get() == b"456789"
        # Only unread bytes are kept: the new file holds exactly them, read from 0.
        assert new.tell() == 0
        new.seek(0, 2)
        assert new.tell() == 6
        new.seek(0)
        # Prune after everything was read leaves an empty buffer.
        buf.skip(6)
        buf.prune()
        assert len(buf) == 0
        assert buf.get() == b""
        buf.append(b"again")
        assert buf.get() == b"again"
    finally:
        buf.close()


@pytest.mark.parametrize("dest", [TempfileBasedBuffer, BytesIOBasedBuffer])
@pytest.mark.parametrize("source", [TempfileBasedBuffer, BytesIOBasedBuffer])
def test_from_buffer_copies_unread_bytes(
    source: Callable[..., FileBasedBuffer], dest: Callable[..., FileBasedBuffer]
) -> None:
    src = source()
    payload = bytes(range(256)) * (COPY_BYTES // 256 + 3)  # more than one copy block
    src.append(b"already read")
    src.append(payload)
    src.skip(len(b"already read"))
    dst = dest(src)
    try:
        assert len(dst) == len(payload)
        assert dst.get() == payload
        # The source is untouched.
        assert len(src) == len(payload)
        assert src.get(5) == payload[:5]
        dst.append(b"tail")
        assert dst.get(skip=True) == payload + b"tail"
        assert len(dst) == 0
    finally:
        src.close()
        dst.close()


# --- OverflowableBuffer -----------------------------------------------------------------------


def stage(buf: OverflowableBuffer) -> str:
    if buf.buf is None:
        return "bytes" if buf.strbuf else "empty"
    if isinstance(buf.buf, TempfileBasedBuffer):
        assert buf.overflowed
        assert is_real_file(buf.getfile())
        return "tempfile"
    assert isinstance(buf.buf, BytesIOBasedBuffer)
    assert not buf.overflowed
    return "bytesio"


def test_overflowable_all_four_stages() -> None:
    overflow = 20000
    buf = OverflowableBuffer(overflow)
    try:
        assert stage(buf) == "empty"
        assert len(buf) == 0
        assert bool(buf) is True
        assert buf.get() == b""

        buf.append(b"a" * 100)
        assert stage(buf) == "bytes"

        buf.append(b"b" * (STRBUF_LIMIT - 100))  # reaching STRBUF_LIMIT leaves bytes
        assert stage(buf) == "bytesio"
        assert len(buf) == STRBUF_LIMIT

        buf.append(b"c" * (overflow - STRBUF_LIMIT))  # reaching overflow spills to disk
        assert stage(buf) == "tempfile"
        assert len(buf) == overflow
        expected = b"a" * 100 + b"b" * (STRBUF_LIMIT - 100) + b"c" * (overflow - STRBUF_LIMIT)
        assert buf.get() == expected

        # Reading does not shrink the file; prune does, and brings it back into memory.
        assert buf.get(STRBUF_LIMIT, skip=True) == expected[:STRBUF_LIMIT]
        assert stage(buf) == "tempfile"
        buf.prune()
        assert stage(buf) == "bytesio"
        assert len(buf) == overflow - STRBUF_LIMIT
        assert buf.get() == expected[STRBUF_LIMIT:]
        assert buf.getfile().tell() == 0
    finally:
        buf.close()


@pytest.mark.parametrize(
    ("size", "expected"),
    [(STRBUF_LIMIT - 1, "bytes"), (STRBUF_LIMIT, "bytesio"), (STRBUF_LIMIT + 1, "bytesio")],
)
def test_strbuf_limit_boundary(size: int, expected: str) -> None:
    buf = OverflowableBuffer(10 * STRBUF_LIMIT)
    try:
        buf.append(b"x" * size)
        assert stage(buf) == expected
        assert buf.get() == b"x" * size
    finally:
        buf.close()


@pytest.mark.parametrize(
    ("size", "expected"),
    [(30000 - 1, "bytesio"), (30000, "tempfile"), (30000 + 1, "tempfile")],
)
def test_overflow_boundary(size: int, expected: str) -> None:
    buf = OverflowableBuffer(30000)
    try:
        buf.append(b"x" * STRBUF_LIMIT)
        buf.append(b"y" * (size - STRBUF_LIMIT))
        assert stage(buf) == expected
        assert len(buf) == size
    finally:
        buf.close()


def test_big_first_append_goes_straight_to_disk() -> None:
    buf = OverflowableBuffer(1000)
    try:
        buf.append(b"z" * 50000)
        assert stage(buf) == "tempfile"
        assert buf.get() == b"z" * 50000
    finally:
        buf.close()


def test_prune_stays_on_disk_while_large() -> None:
    buf = OverflowableBuffer(10000)
    try:
        buf.append(b"q" * 30000)
        buf.skip(100)
        buf.prune()
        assert stage(buf) == "tempfile"
        assert len(buf) == 29900
        buf.skip(29000)
        buf.prune()
        assert stage(buf) == "bytesio"
        assert buf.get() == b"q" * 900
    finally:
        buf.close()


def test_bytes_stage_get_and_skip() -> None:
    buf = OverflowableBuffer(100000)
    buf.append(b"hello world")
    assert buf.get(5) == b"hello"
    assert buf.get(5, skip=True) == b"hello"
    assert len(buf) == 6
    assert stage(buf) == "bytes"
    buf.skip(1)
    assert buf.get() == b"world"
    with pytest.raises(ValueError, match="Can't skip 6 bytes in buffer of 5 bytes"):
        buf.skip(6)
    buf.prune()  # the bytes stage holds no read bytes: nothing is lost
    assert buf.get() == b"world"
    buf.skip(5)
    assert len(buf) == 0
    buf.close()


def test_skip_with_allow_prune_releases_storage() -> None:
    buf = OverflowableBuffer(10000)
    buf.append(b"x" * 20000)
    file = buf.getfile()
    assert stage(buf) == "tempfile"
    buf.skip(19999, allow_prune=True)  # not drained yet: nothing released
    assert stage(buf) == "tempfile"
    buf.skip(1, allow_prune=True)
    assert stage(buf) == "empty"
    assert file.closed
    assert len(buf) == 0
    buf.append(b"more")
    assert stage(buf) == "bytes"
    assert buf.get() == b"more"
    buf.close()


def test_skip_without_allow_prune_keeps_storage() -> None:
    buf = OverflowableBuffer(10000)
    try:
        buf.append(b"x" * 9000)
        buf.skip(9000)
        assert stage(buf) == "bytesio"
        assert len(buf) == 0
    finally:
        buf.close()


def test_skip_too_much_in_file_stage() -> None:
    buf = OverflowableBuffer(10000)
    try:
        buf.append(b"x" * 9000)
        with pytest.raises(ValueError, match="Can't skip 9001 bytes in buffer of 9000 bytes"):
            buf.skip(9001)
    finally:
        buf.close()


@pytest.mark.parametrize("content", [b"", b"small body"])
def test_getfile_from_early_stages(content: bytes) -> None:
    # wsgi.input is the request body buffer's file, at position 0 (SPEC §3.8).
    buf = OverflowableBuffer(10000)
    buf.append(content)
    f = buf.getfile()
    assert isinstance(f, io.BytesIO)
    assert f.tell() == 0
    assert f.read() == content
    buf.close()
    assert f.closed


def test_getfile_on_disk_is_at_start() -> None:
    buf = OverflowableBuffer(10000)
    buf.append(b"x" * 5000)
    buf.append(b"y" * 6000)
    f = buf.getfile()
    assert is_real_file(f)
    assert f.tell() == 0
    assert f.read() == b"x" * 5000 + b"y" * 6000
    buf.close()
    assert f.closed


def test_close_empty_and_bytes_stages() -> None:
    buf = OverflowableBuffer(10)
    buf.close()
    buf = OverflowableBuffer(10)
    buf.append(b"abc")
    buf.close()
    assert len(buf) == 0


# A model check: any sequence of operations behaves like a plain bytes FIFO.
_ops = st.lists(
    st.one_of(
        st.tuples(st.just("append"), st.integers(0, 9000)),
        st.tuples(st.just("get"), st.integers(-1, 12000), st.booleans()),
        st.tuples(st.just("skip"), st.integers(0, 12000), st.booleans()),
        st.tuples(st.just("prune")),
        st.tuples(st.just("getfile")),
    ),
    max_size=25,
)


@settings(deadline=None, max_examples=60)
@given(overflow=st.integers(1, 20000), ops=_ops)
def test_overflowable_matches_bytes_model(overflow: int, ops: List[Tuple[Any, ...]]) -> None:
    buf = OverflowableBuffer(overflow)
    model = b""
    counter = 0
    try:
        for op in ops:
            if op[0] == "append":
                n = op[1]
                data = bytes((counter + i) % 251 for i in range(n))
                counter += n
                buf.append(data)
                model += data
            elif op[0] == "get":
                n, skip = op[1], op[2]
                expected = model if n < 0 else model[:n]
                assert buf.get(n, skip) == expected
                if skip:
                    model = model[len(expected) :]
            elif op[0] == "skip":
                n, allow_prune = op[1], op[2]
                if n > len(model):
                    with pytest.raises(ValueError):
                        buf.skip(n, allow_prune)
                else:
                    buf.skip(n, allow_prune)
                    model = model[n:]
            elif op[0] == "prune":
                buf.prune()
            else:
                f = buf.getfile()
                pos = f.tell()
                assert f.read() == model
                f.seek(pos)
            assert len(buf) == len(model)
            stage(buf)  # internal consistency of the stage flags
            if buf.buf is None:
                assert len(buf.strbuf) < STRBUF_LIMIT
        assert buf.get() == model
    finally:
        buf.close()


# --- ReadOnlyFileBasedBuffer (wsgi.file_wrapper) ----------------------------------------------

CONTENT = b"0123456789abcdefghij"  # 20 bytes


@pytest.fixture
def content_path(tmp_path: Path) -> Path:
    path = tmp_path / "content.bin"
    path.write_bytes(CONTENT)
    return path


def test_file_wrapper_seekable_passthrough(content_path: Path) -> None:
    with open(content_path, "rb") as f:
        wrapper = ReadOnlyFileBasedBuffer(f)
        assert wrapper.block_size == 32768
        assert wrapper.seekable() is True
        wrapper.seek(5)
        assert f.tell() == 5
        assert wrapper.tell() == 5
        f.seek(7)
        assert wrapper.tell() == 7


@pytest.mark.parametrize(
    ("start", "size", "expected"),
    [
        (0, None, 20),  # the whole file
        (5, None, 15),  # from the current position
        (0, 10, 10),  # capped at the application's Content-Length
        (0, 1, 1),
        (0, 50, 20),  # a larger Content-Length is replaced by the file size
        (5, 50, 15),
        (20, None, 0),  # at EOF: nothing to send
        (0, 0, 0),
    ],
)
def test_file_wrapper_prepare(
    content_path: Path, start: int, size: Optional[int], expected: int
) -> None:
    with open(content_path, "rb") as f:
        f.seek(start)
        wrapper = ReadOnlyFileBasedBuffer(f)
        assert wrapper.prepare(size) == expected
        assert len(wrapper) == expected
        assert f.tell() == start  # prepare measures without moving


def test_file_wrapper_get_never_past_prepared_size(content_path: Path) -> None:
    with open(content_path, "rb") as f:
        wrapper = ReadOnlyFileBasedBuffer(f)
        assert wrapper.prepare(8) == 8
        assert wrapper.get() == CONTENT[:8]
        assert wrapper.get(100) == CONTENT[:8]
        assert wrapper.get(3) == CONTENT[:3]
        assert f.tell() == 0  # peeking
        assert wrapper.get(3, skip=True) == CONTENT[:3]
        assert len(wrapper) == 5
        wrapper.skip(2)
        assert wrapper.get(skip=True) == CONTENT[5:8]
        assert len(wrapper) == 0
        assert wrapper.get() == b""
        with pytest.raises(ValueError):
            wrapper.skip(1)


def test_file_wrapper_iterates_in_blocks(content_path: Path) -> None:
    with open(content_path, "rb") as f:
        wrapper = ReadOnlyFileBasedBuffer(f, block_size=8)
        assert iter(wrapper) is wrapper
        assert list(wrapper) == [CONTENT[:8], CONTENT[8:16], CONTENT[16:]]
        assert list(wrapper) == []


def test_file_wrapper_is_read_only(content_path: Path) -> None:
    with open(content_path, "rb") as f:
        wrapper = ReadOnlyFileBasedBuffer(f)
        with pytest.raises(NotImplementedError):
            wrapper.append(b"x")
        with pytest.raises(NotImplementedError):
            wrapper.newfile()


def test_file_wrapper_close_closes_file(content_path: Path) -> None:
    f = open(content_path, "rb")  # the wrapper closes it
    wrapper = ReadOnlyFileBasedBuffer(f)
    wrapper.prepare()
    wrapper.close()
    assert f.closed
    assert len(wrapper) == 0


def test_file_wrapper_over_pipe_is_not_seekable() -> None:
    read_fd, write_fd = os.pipe()
    with open(read_fd, "rb") as reader:
        with open(write_fd, "wb") as writer:
            writer.write(CONTENT)
        wrapper = ReadOnlyFileBasedBuffer(reader, block_size=6)
        assert not hasattr(wrapper, "seek")
        assert not hasattr(wrapper, "tell")
        assert not hasattr(wrapper, "seekable")
        assert wrapper.prepare() == 0  # unmeasurable: the server iterates instead
        assert wrapper.prepare(10) == 0
        assert b"".join(wrapper) == CONTENT
        wrapper.close()
        assert reader.closed


class ReadOnly:
    """A file-like with only read(), as PEP 3333 allows."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)

    def read(self, size: int = -1) -> bytes:
        return self._data.read(size)


class NotSeekableRaw(io.RawIOBase):
    """A RawIOBase that says it cannot seek."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def readinto(self, b: bytearray) -> int:
        chunk = self._data.read(len(b))
        b[: len(chunk)] = chunk
        return len(chunk)

    def seekable(self) -> bool:
        return False


class SeekTellOnly:
    """Has seek and tell but no seekable(): counts as seekable."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)

    def read(self, size: int = -1) -> bytes:
        return self._data.read(size)

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._data.seek(offset, whence)

    def tell(self) -> int:
        return self._data.tell()


def test_file_wrapper_read_only_file_like() -> None:
    wrapper = ReadOnlyFileBasedBuffer(ReadOnly(CONTENT), block_size=7)
    assert not hasattr(wrapper, "seek")
    assert wrapper.prepare() == 0
    assert list(wrapper) == [CONTENT[:7], CONTENT[7:14], CONTENT[14:]]
    wrapper.close()  # no close() on the file: nothing to do


def test_file_wrapper_raw_io_not_seekable() -> None:
    raw = NotSeekableRaw(CONTENT)
    wrapper = ReadOnlyFileBasedBuffer(raw, block_size=16)
    assert not hasattr(wrapper, "seek")
    assert wrapper.prepare() == 0
    assert b"".join(wrapper) == CONTENT
    wrapper.close()
    assert raw.closed


def test_file_wrapper_seek_tell_without_seekable() -> None:
    wrapper = ReadOnlyFileBasedBuffer(SeekTellOnly(CONTENT))
    assert hasattr(wrapper, "seek")
    assert hasattr(wrapper, "tell")
    assert not hasattr(wrapper, "seekable")
    wrapper.seek(15)
    assert wrapper.prepare() == 5
    assert wrapper.get(skip=True) == CONTENT[15:]
