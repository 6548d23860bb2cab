"""libbz2 through hatch-ffm, with the results and exceptions of CPython's :mod:`bz2`.

- :func:`compress` (``BZ2_bzBuffToBuffCompress``) and :func:`decompress` (every stream of the
  input, as :func:`bz2.decompress`), :func:`decompress_bounded` (``BZ2_bzBuffToBuffDecompress``:
  one stream whose decompressed size has a known bound);
- :class:`BZ2Compressor` and :class:`BZ2Decompressor`: streaming over a ``bz_stream``
  (``BZ2_bzCompressInit``/``BZ2_bzCompress``/``BZ2_bzCompressEnd``, ``BZ2_bzDecompress*``).

The same level gives the same bytes as :mod:`bz2` (both call libbz2 with work factor 0).
Data errors raise :class:`BZ2Error` (an ``OSError``, as :mod:`bz2`'s "Invalid data stream"),
truncated data ``EOFError``.  Every ``bz_stream`` lives in a confined arena: a compressor or
decompressor is used by the thread that made it, and ``close()`` (or leaving its ``with``
block, or the end of its stream) calls the libbz2 end function and frees its memory.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from types import TracebackType
from typing import Any, Final, TypeVar

from ffm_runtime import (
    ADDRESS,
    JAVA_BYTE,
    Arena,
    FunctionDescriptor,
    LibraryLoadError,
    Linker,
    MemorySegment,
    PathElement,
    SymbolLookup,
)

from .ffm_features import (
    BUFF_TO_BUFF_COMPRESS,
    BUFF_TO_BUFF_DECOMPRESS,
    BZ_STREAM,
    COMPRESS,
    COMPRESS_INIT,
    CRITICAL,
    DECOMPRESS_INIT,
    STREAM_CALL,
    STRLEN,
    UINT,
    VERSION,
)

__all__ = [
    "BZ2Compressor",
    "BZ2Decompressor",
    "BZ2Error",
    "compress",
    "decompress",
    "decompress_bounded",
    "version",
]

LIBRARY: Final = "libbz2.so.1.0"  # Debian's libbz2-1.0

try:
    _lib = SymbolLookup.library_lookup(LIBRARY, Arena.global_arena())
except LibraryLoadError as exc:
    raise LibraryLoadError(
        f"{LIBRARY} could not be loaded ({exc}): install libbz2 (Debian: apt-get install libbz2-1.0)"
    ) from exc
_linker = Linker.native_linker()


def _handle(name: str, descriptor: FunctionDescriptor, *options: object) -> Callable[..., Any]:
    symbol = _lib.find(name)
    if symbol is None:
        raise LookupError(f"{name} not found in {LIBRARY}")
    handle: Callable[..., Any] = _linker.downcall_handle(symbol, descriptor, *options)
    return handle


_buff_to_buff_compress = _handle("BZ2_bzBuffToBuffCompress", BUFF_TO_BUFF_COMPRESS)
_buff_to_buff_decompress = _handle("BZ2_bzBuffToBuffDecompress", BUFF_TO_BUFF_DECOMPRESS)
_compress_init = _handle("BZ2_bzCompressInit", COMPRESS_INIT, CRITICAL)
_compress = _handle("BZ2_bzCompress", COMPRESS)
_compress_end = _handle("BZ2_bzCompressEnd", STREAM_CALL, CRITICAL)
_decompress_init = _handle("BZ2_bzDecompressInit", DECOMPRESS_INIT, CRITICAL)
_decompress = _handle("BZ2_bzDecompress", STREAM_CALL)
_decompress_end = _handle("BZ2_bzDecompressEnd", STREAM_CALL, CRITICAL)
_bzlib_version = _handle("BZ2_bzlibVersion", VERSION, CRITICAL)
_strlen = _linker.downcall_handle(_linker.default_lookup().find("strlen"), STRLEN, CRITICAL)


def _offset(name: str) -> int:
    return BZ_STREAM.byte_offset(PathElement.group_element(name))


NEXT_IN: Final = _offset("next_in")
AVAIL_IN: Final = _offset("avail_in")
NEXT_OUT: Final = _offset("next_out")
AVAIL_OUT: Final = _offset("avail_out")

# bzlib.h
MAX_LEVEL: Final = 9  # blockSize100k: 100k to 900k
BZ_RUN, BZ_FLUSH, BZ_FINISH = 0, 1, 2
BZ_OK, BZ_RUN_OK, BZ_FLUSH_OK, BZ_FINISH_OK, BZ_STREAM_END = 0, 1, 2, 3, 4
BZ_SEQUENCE_ERROR, BZ_PARAM_ERROR, BZ_MEM_ERROR, BZ_DATA_ERROR, BZ_DATA_ERROR_MAGIC = -1, -2, -3, -4, -5
BZ_IO_ERROR, BZ_UNEXPECTED_EOF, BZ_OUTBUFF_FULL, BZ_CONFIG_ERROR = -6, -7, -8, -9

_ERRORS: Final = {
    BZ_SEQUENCE_ERROR: ("BZ_SEQUENCE_ERROR", "calls in the wrong order"),
    BZ_PARAM_ERROR: ("BZ_PARAM_ERROR", "invalid parameters"),
    BZ_MEM_ERROR: ("BZ_MEM_ERROR", "out of memory"),
    BZ_DATA_ERROR: ("BZ_DATA_ERROR", "invalid data stream: the compressed data is corrupt"),
    BZ_DATA_ERROR_MAGIC: ("BZ_DATA_ERROR_MAGIC", "invalid data stream: not bz2 data (no 'BZh' header)"),
    BZ_IO_ERROR: ("BZ_IO_ERROR", "I/O error"),
    BZ_UNEXPECTED_EOF: ("BZ_UNEXPECTED_EOF", "the compressed data ends before the end-of-stream marker"),
    BZ_OUTBUFF_FULL: ("BZ_OUTBUFF_FULL", "the output buffer is too small"),
    BZ_CONFIG_ERROR: ("BZ_CONFIG_ERROR", "libbz2 was built for another platform"),
}

#: At most this many bytes go into one call (``avail_in``, ``avail_out`` are unsigned ints,
#: read and written here as ``JAVA_INT``).
_MAX_CALL: Final = 1 << 30
#: The native output buffer of a stream, refilled call after call: first small enough to be
#: cut from the arena's current slab (the README: larger ones are blocks of their own, a
#: calloc each), then doubled whenever libbz2 fills it, up to _OUT_MAX (fewer, longer calls
#: for large data).
_OUT_SIZE: Final = 4 * 1024
_OUT_MAX: Final = 1024 * 1024
_EOF_MESSAGE: Final = "Compressed data ended before the end-of-stream marker was reached"


class BZ2Error(OSError):
    """libbz2 refused the data (or the call): ``.function``, ``.code`` (``BZ_*``), ``.name``."""

    def __init__(self, function: str, code: int) -> None:
        name, meaning = _ERRORS.get(code, (f"error {code}", "unknown libbz2 error"))
        super().__init__(f"{function}: {name}: {meaning}")
        self.function = function
        self.code = code
        self.name = name


def _check(function: str, code: int) -> int:
    if code >= 0:
        return code
    if code == BZ_MEM_ERROR:
        raise MemoryError(f"{function}: BZ_MEM_ERROR: libbz2 is out of memory")
    if code == BZ_UNEXPECTED_EOF:
        raise EOFError(_EOF_MESSAGE)
    raise BZ2Error(function, code)


def _check_level(compresslevel: int) -> int:
    if not isinstance(compresslevel, int) or isinstance(compresslevel, bool):
        raise TypeError(f"compresslevel must be an int, not {type(compresslevel).__name__}")
    if not 1 <= compresslevel <= MAX_LEVEL:
        raise ValueError(f"compresslevel must be between 1 and {MAX_LEVEL}, not {compresslevel}")
    return compresslevel


def _native_copy(arena: Arena, data: Any) -> MemorySegment:
    """``data`` (any bytes-like object) copied into ``arena``: libbz2 keeps ``next_in``
    between calls, so the input must be native memory that stays put."""
    if isinstance(data, str):
        raise TypeError("a bytes-like object is required, not 'str'")
    return arena.allocate_from(JAVA_BYTE, data)


def version() -> str:
    """libbz2's version string (``BZ2_bzlibVersion``)."""
    text = _bzlib_version()
    return text.reinterpret(_strlen(text)).to_bytes().decode("ascii")  # type: ignore[no-any-return]


def compress(data: Any, compresslevel: int = 9) -> bytes:
    """``data`` compressed in one call (``BZ2_bzBuffToBuffCompress``): the bytes of
    :func:`bz2.compress` ``(data, compresslevel)``."""
    _check_level(compresslevel)
    with Arena.of_confined() as arena:
        source = _native_copy(arena, data)
        size = source.byte_size
        if size > _MAX_CALL:
            with BZ2Compressor(compresslevel) as compressor:
                return compressor.compress(data) + compressor.flush()
        bound = size + size // 100 + 601  # bzlib.h: 1% + 600 bytes always suffice
        dest = arena.allocate(bound)
        dest_len = arena.allocate(UINT)
        dest_len.set(UINT, 0, bound)
        _check(
            "BZ2_bzBuffToBuffCompress",
            _buff_to_buff_compress(dest, dest_len, source, size, compresslevel, 0, 0),
        )
        return dest.as_slice(0, dest_len.get(UINT, 0) & 0xFFFFFFFF).to_bytes()


def decompress_bounded(data: Any, max_length: int) -> bytes:
    """The first bz2 stream of ``data``, decompressed in one call
    (``BZ2_bzBuffToBuffDecompress``) into at most ``max_length`` bytes: ``ValueError``
    when it is longer.  Data after the first stream is ignored."""
    if not isinstance(max_length, int) or not 0 <= max_length <= _MAX_CALL:
        raise ValueError(f"max_length must be an int in [0, {_MAX_CALL}], not {max_length!r}")
    with Arena.of_confined() as arena:
        source = _native_copy(arena, data)
        if source.byte_size > _MAX_CALL:
            raise ValueError(f"decompress_bounded() takes at most {_MAX_CALL} bytes; use decompress()")
        dest = arena.allocate(max_length)
        dest_len = arena.allocate(UINT)
        dest_len.set(UINT, 0, max_length)
        code = _buff_to_buff_decompress(dest, dest_len, source, source.byte_size, 0, 0)
        if code == BZ_OUTBUFF_FULL:
            raise ValueError(f"the decompressed data is longer than max_length={max_length}")
        _check("BZ2_bzBuffToBuffDecompress", code)
        return dest.as_slice(0, dest_len.get(UINT, 0) & 0xFFFFFFFF).to_bytes()


class _Output:
    """A stream's output buffer (see ``_OUT_SIZE``), in the stream's arena."""

    __slots__ = ("arena", "buffer")

    def __init__(self, arena: Arena) -> None:
        self.arena = arena
        self.buffer = arena.allocate(_OUT_SIZE)

    def grow(self) -> MemorySegment:
        if self.buffer.byte_size < _OUT_MAX:
            self.buffer = self.arena.allocate(2 * self.buffer.byte_size)
        return self.buffer


def _run(
    function: str,
    call: Callable[..., int],
    stream: MemorySegment,
    output: _Output,
    source: MemorySegment,
    *action: int,
) -> tuple[list[bytes], int, bool]:
    """Feed ``source`` to ``call(stream, *action)`` until it is consumed and no output is
    pending (or the stream ends): (output chunks, bytes of ``source`` consumed, ended)."""
    out = output.buffer
    out_size = out.byte_size  # (a property: read once per buffer)
    chunks = []
    size = source.byte_size
    position = 0
    ended = False
    stream.set(ADDRESS, NEXT_OUT, out)
    stream.set(UINT, AVAIL_OUT, out_size)
    try:
        while True:
            piece = min(size - position, _MAX_CALL)
            stream.set(ADDRESS, NEXT_IN, source.as_slice(position, piece))
            stream.set(UINT, AVAIL_IN, piece)
            code = _check(function, call(stream, *action))
            left_in = stream.get(UINT, AVAIL_IN) & 0xFFFFFFFF
            position += piece - left_in
            left_out = stream.get(UINT, AVAIL_OUT) & 0xFFFFFFFF
            if left_out < out_size:
                chunks.append(out.as_slice(0, out_size - left_out).to_bytes())
                if code == BZ_STREAM_END:  # (no next call: the buffer stays as it is)
                    ended = True
                    break
                if not left_out:
                    out = output.grow()
                    out_size = out.byte_size
                stream.set(ADDRESS, NEXT_OUT, out)
                stream.set(UINT, AVAIL_OUT, out_size)
            if code == BZ_STREAM_END:
                ended = True
                break
            if position == size and left_out and code != BZ_FINISH_OK:
                break  # everything consumed, nothing pending
    finally:  # libbz2 must never see a pointer into memory that may be gone
        stream.set(ADDRESS, NEXT_IN, MemorySegment.NULL)
        stream.set(UINT, AVAIL_IN, 0)
    return chunks, position, ended


def _join(chunks: list[bytes]) -> bytes:
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


_S = TypeVar("_S", bound="_Stream")


class _Stream:
    """A ``bz_stream`` and its output buffer in a confined arena of their own."""

    _end: Callable[..., int]
    _end_name: str

    def __init__(self) -> None:
        self._arena: Arena | None = Arena.of_confined()
        self._stream = self._arena.allocate(BZ_STREAM)
        self._out = _Output(self._arena)
        self._open = False

    def _started(self, function: str, code: int) -> None:
        try:
            _check(function, code)
        except BaseException:
            self.close()
            raise
        self._open = True

    def close(self) -> None:
        """Call the libbz2 end function (once) and free the memory; idempotent."""
        arena, self._arena = self._arena, None
        if arena is None:
            return
        try:
            if self._open:
                self._open = False
                self._end(self._stream)
        finally:
            arena.close()

    def _live(self, what: str) -> MemorySegment:
        if self._arena is None:
            raise ValueError(f"{what} is closed")
        return self._stream

    def __enter__(self: _S) -> _S:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __del__(self) -> None:
        arena = getattr(self, "_arena", None)
        if arena is not None and arena.scope.is_alive():
            with contextlib.suppress(RuntimeError):  # another thread's arena: left alone
                self.close()


class BZ2Compressor(_Stream):
    """Incremental compression, as :class:`bz2.BZ2Compressor` (``compress()`` then ``flush()``)."""

    _end = staticmethod(_compress_end)

    def __init__(self, compresslevel: int = 9) -> None:
        _check_level(compresslevel)
        super().__init__()
        self._started("BZ2_bzCompressInit", _compress_init(self._stream, compresslevel, 0, 0))

    def compress(self, data: Any) -> bytes:
        """Feed ``data``; returns the compressed bytes produced so far (often ``b""``)."""
        stream = self._live("Compressor has been flushed or")
        with Arena.of_confined() as arena:
            source = _native_copy(arena, data)
            if not source.byte_size:
                return b""
            chunks, _, _ = _run("BZ2_bzCompress", _compress, stream, self._out, source, BZ_RUN)
        return _join(chunks)

    def flush(self) -> bytes:
        """Finish the stream: the rest of the compressed data.  The compressor is then closed."""
        if self._arena is None:
            raise ValueError("Repeated call to flush()")
        chunks, _, _ = _run(
            "BZ2_bzCompress", _compress, self._stream, self._out, MemorySegment.NULL, BZ_FINISH
        )
        self.close()
        return _join(chunks)


class BZ2Decompressor(_Stream):
    """Incremental decompression of one stream, as :class:`bz2.BZ2Decompressor`
    (``eof``, ``unused_data``, ``needs_input``; no ``max_length``)."""

    _end = staticmethod(_decompress_end)

    def __init__(self) -> None:
        super().__init__()
        self.eof = False
        self.unused_data = b""
        self._started("BZ2_bzDecompressInit", _decompress_init(self._stream, 0, 0))

    @property
    def needs_input(self) -> bool:
        """Whether more compressed data is needed (``False`` once the stream has ended)."""
        return not self.eof

    def decompress(self, data: Any) -> bytes:
        """Feed ``data``; returns the decompressed bytes it completes.  After the end of the
        stream, the rest of ``data`` is in ``unused_data`` and the decompressor is closed."""
        if self.eof:
            raise EOFError("End of stream already reached")
        stream = self._live("Decompressor")
        with Arena.of_confined() as arena:
            source = _native_copy(arena, data)
            try:
                chunks, used, ended = _run("BZ2_bzDecompress", _decompress, stream, self._out, source)
            except BaseException:
                self.close()
                raise
            if ended:
                self.eof = True
                self.unused_data = source.as_slice(used).to_bytes()
        if ended:
            self.close()
        return _join(chunks)


def decompress(data: Any) -> bytes:
    """Every bz2 stream of ``data``, decompressed and joined, as :func:`bz2.decompress`
    (data after the last stream that is not bz2 is ignored; a truncated stream is a
    ``ValueError``, as there)."""
    results: list[bytes] = []
    streams = 0
    with Arena.of_confined() as arena:
        source = _native_copy(arena, data)
        stream = arena.allocate(BZ_STREAM)
        out = _Output(arena)
        position, size = 0, source.byte_size
        while position < size:
            if streams:
                stream.fill(0)  # a fresh bz_stream for the next stream (the first one is zeroed)
            _check("BZ2_bzDecompressInit", _decompress_init(stream, 0, 0))
            try:
                chunks, used, ended = _run(
                    "BZ2_bzDecompress", _decompress, stream, out, source.as_slice(position)
                )
            except BZ2Error:
                if streams:
                    break  # trailing data that is not a bz2 stream: ignored, as bz2 does
                raise
            finally:
                _decompress_end(stream)
            results.extend(chunks)
            if not ended:
                raise ValueError(_EOF_MESSAGE)
            streams += 1
            position += used
    return _join(results) if results else b""
