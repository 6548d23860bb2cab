"""Arenas and segment allocators: where native memory comes from and when it goes.

Small allocations are carved from 64 KiB slabs; a closed (or collected) arena
hands its slabs back to a small process-wide pool, and a new confined arena
starts with a slab from it, so a ``with Arena.of_confined() as arena:
arena.allocate(64)`` cycle makes no system allocator call once warm.  Large or
strongly aligned allocations get their own block.  Memory handed out is always
zeroed: pooled slabs keep their old bytes, and each allocation zeroes exactly its
own bytes when it is carved (here, or in native code: downcall stubs and the
runtime's accelerators carve from the same slab, see ``_contract.OFFSETS``).
"""

from __future__ import annotations

import struct
from _collections_abc import Sequence  # (collections.abc imports all of collections)
from _thread import get_ident as _get_ident
from _weakref import ref as _weakref

from . import _contract
from ._errors import (
    OutOfBoundsError,
    ScopeClosedError,
    ScopeInUseError,
    UnsupportedOperationError,
    WrongThreadError,
    warn,
)
from ._layouts import MemoryLayout, ValueLayout
from ._locks import ForkSafeLock
from ._memory import (
    _ALL,
    _SHARED,
    ALIGN_BITS,
    MemorySegment,
    Scope,
    _charset,
    _ConfinedSegment,
    _depth,
    _encode,
    _pin,
    _SharedGuard,
    _SharedSegment,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    import ctypes
    from collections.abc import Callable
    from typing import Any, Final, NoReturn
else:  # ctypes itself on first use (it costs a fair part of import ffm_runtime)
    from . import _lazy_ctypes as ctypes

__all__ = ["Arena", "SegmentAllocator"]

_SLAB_SIZE: Final = _contract.ARENA_SLAB_SIZE
_SLAB_ALIGN: Final = _contract.ARENA_SLAB_ALIGN  # slabs start here; larger alignments get blocks
_SMALL: Final = _contract.ARENA_SMALL  # larger allocations get their own block
_POOL_MAX: Final = _contract.ARENA_POOL_MAX  # slabs kept for reuse, process-wide
_MAX_ALLOCATION: Final = 1 << 62  # beyond this no allocation can succeed (and size_t wraps)
_new = object.__new__

#: the C library's calloc and free through ctypes, set by _c_allocator on first use (None:
#: none reachable); free is set before calloc, and anything to free came from calloc
_calloc: Any = None
_free: Any = None
_looked_for: list[bool] = []


def _c_allocator() -> None:
    global _calloc, _free  # noqa: PLW0603  (set once, on first use: ctypes is imported then)
    try:
        libc = ctypes.CDLL(None)
        calloc: Any = libc.calloc
        free: Any = libc.free
        calloc.restype = ctypes.c_void_p
        calloc.argtypes = (ctypes.c_size_t, ctypes.c_size_t)
        free.restype = None
        free.argtypes = (ctypes.c_void_p,)
    except (OSError, TypeError, AttributeError):  # no C library reachable this way
        calloc = free = None
    _free = free
    _calloc = calloc
    _looked_for.append(True)


#: slabs ready for reuse (not zeroed): (address to free, 64-aligned start, view of the slab)
_pool: list[tuple[int, int, memoryview]] = []
_ZEROS: Final = memoryview(bytes(_SLAB_SIZE))


def _check_int(value: object, what: str) -> int:
    """``value`` as an exact ``int`` (subclasses' overridden operators are not trusted)."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{what} must be an int, not {type(value).__name__}")
    return int.__index__(value)


def _raw_calloc(size: int) -> int:
    if size > _MAX_ALLOCATION:
        raise MemoryError(f"cannot allocate {size} bytes of native memory")
    if not _looked_for:
        _c_allocator()
    if _calloc is None:
        from ._errors import UnsupportedPlatformError

        raise UnsupportedPlatformError("native memory allocation is not supported here")
    address = _calloc(1, size)
    if not address:
        raise MemoryError(f"cannot allocate {size} bytes of native memory")
    return int(address)


class _Extras:
    """An arena's rarely needed state: retired slabs, large blocks, cleanups, exported views."""

    __slots__ = ("blocks", "cleanups", "exports", "slabs")

    def __init__(self) -> None:
        self.slabs: list[tuple[tuple[int, int, memoryview], int]] = []  # (slab, bytes used)
        self.blocks: list[int] = []
        self.cleanups: list[Callable[[], object]] = []
        #: (view, a weak reference to its exporter): the exporter is alive while the view or
        #: any view derived from it is unreleased (or while someone holds ``view.obj``)
        self.exports: list[tuple[memoryview, _weakref[Any]]] = []

    def exported(self) -> bool:
        """Release the views handed out; whether their memory is still reachable (a view
        derived from one is unreleased, or an exporter is held elsewhere).  ``False``: the
        memory can be reused at once, as if no view had been made."""
        for view, _ in self.exports:
            try:  # noqa: SIM105  (contextlib is not imported for this)
                view.release()
            except BufferError:
                pass
        return any(exporter() is not None for _, exporter in self.exports)

    def quarantine(self, current: tuple[int, int, memoryview] | None) -> None:
        """Hand all memory to a keeper owned by the exported views' exporters: it is freed
        when the last of them is gone, and never reused before."""
        slabs = [slab for slab, _ in self.slabs] + ([current] if current is not None else [])
        keeper = _Quarantine(slabs, self.blocks)
        for view, reference in self.exports:
            exporter = reference()
            if exporter is not None:
                exporter._ffm_keep = keeper
            # release the view handed out; views derived from it stay valid, on kept memory
            try:  # noqa: SIM105  (contextlib is not imported for this)
                view.release()
            except BufferError:
                pass
        self.slabs, self.blocks, self.exports = [], [], []

    def release(self, recycle: bool) -> None:
        """Run cleanups, recycle (or free) slabs, free blocks."""
        errors: list[BaseException] = []
        for cleanup in self.cleanups:
            try:
                cleanup()
            except Exception as exc:
                errors.append(exc)
        for slab, _used in self.slabs:
            if recycle:
                _recycle(slab)
            else:
                _free(slab[0])
        for raw in self.blocks:
            _free(raw)
        self.slabs, self.blocks, self.cleanups, self.exports = [], [], [], []
        if errors:
            raise errors[0]


class _Quarantine:
    """Memory of a closed arena that exported views: freed when this object is collected."""

    __slots__ = ("blocks", "slabs")

    def __init__(self, slabs: list[tuple[int, int, memoryview]], blocks: list[int]) -> None:
        self.slabs = slabs
        self.blocks = blocks

    def __del__(self) -> None:
        for raw, _, view in self.slabs:
            view.release()
            _free(raw)
        for raw in self.blocks:
            _free(raw)


def _byte_view(data: object) -> memoryview | None:
    """``data``'s bytes as a flat view if it is a buffer of single bytes (``bytes``,
    ``bytearray``, ``array.array("B")``, ...), else ``None``; the caller copies it once."""
    if isinstance(data, (int, str)):
        return None
    try:
        view = memoryview(data)  # type: ignore[arg-type]  # anything with the buffer protocol
    except TypeError:
        return None
    if view.itemsize != 1:
        return None
    if not view.c_contiguous:
        raise TypeError("allocate_from(JAVA_BYTE, data) needs a C-contiguous buffer")
    return view.cast("B") if view.ndim else view.cast("B", (view.nbytes,))


def _encode_all(layout: ValueLayout, values: list[Any]) -> bytes:
    """``values`` as consecutive elements of ``layout``; a bad element raises what
    ``MemorySegment.set`` raises for it."""
    if layout.carrier in "bcsijfd" and values:
        fmt = ("<" if layout.order == "little" else ">") + layout._codec.format[1:] * len(values)
        try:
            return struct.pack(fmt, *values)
        except (struct.error, OverflowError, TypeError):
            pass  # find the first bad element below, for its precise error
    codec = layout._codec
    return b"".join([_encode(layout, codec, item) for item in values])


def _recycle(slab: tuple[int, int, memoryview]) -> None:
    """Pool a slab (or free it when the pool is full)."""
    if slab.__class__ is not tuple or len(slab) != 3:  # a replaced private field: never pooled
        return
    if len(_pool) < _POOL_MAX:
        _pool.append(slab)
    else:
        slab[2].release()
        _free(slab[0])


def _take_slab() -> tuple[int, int, memoryview]:
    try:
        return _pool.pop()
    except IndexError:
        raw = _raw_calloc(_SLAB_SIZE + _SLAB_ALIGN)
        start = (raw + _SLAB_ALIGN - 1) & -_SLAB_ALIGN
        return (raw, start, _ALL[start : start + _SLAB_SIZE])


class SegmentAllocator:
    """Allocates segments (Java's ``SegmentAllocator``); subclasses implement ``_allocate``."""

    __slots__ = ()

    def _allocate(self, byte_size: int, byte_alignment: int) -> MemorySegment:
        raise NotImplementedError

    def allocate(self, size: int | MemoryLayout, alignment_or_count: int | None = None) -> MemorySegment:
        """``allocate(byte_size, byte_alignment=1)``, ``allocate(layout)`` or
        ``allocate(layout, count)``: a zeroed segment (for arenas)."""
        if isinstance(size, MemoryLayout):
            count = 1 if alignment_or_count is None else _check_int(alignment_or_count, "count")
            if count < 0:
                raise ValueError(f"Invalid element count: {count}")
            return self._allocate(size.byte_size * count, size.byte_alignment)
        size = _check_int(size, "byte_size")
        alignment = 1 if alignment_or_count is None else _check_int(alignment_or_count, "byte_alignment")
        if size < 0:
            raise ValueError(f"Invalid allocation size : {size}")
        if alignment <= 0 or alignment & (alignment - 1):
            raise ValueError(f"Invalid alignment constraint : {alignment}")
        return self._allocate(size, alignment)

    def allocate_from(
        self, layout_or_text: ValueLayout | str, value: Any = None, charset: str = "utf-8"
    ) -> MemorySegment:
        """``allocate_from(text)``: a NUL-terminated copy of ``text`` (UTF-8 by default);
        ``allocate_from(layout, value)``: one value; ``allocate_from(layout, values)``: an
        array of values (any sequence, or an iterable; for ``JAVA_BYTE``, also any bytes-like
        object, copied once)."""
        # Native twin on Arena: ffm_acc_arena_allocate_from (hatch_ffm/_ir/_accel_bulk.py).
        # convert everything first: iterating and converting values can run Python code
        if isinstance(layout_or_text, str):
            if value is not None:
                raise TypeError("allocate_from(text) takes no value; pass charset= by keyword")
            name, width = _charset(charset)
            data = layout_or_text.encode(name) + bytes(width)
            return self._allocate_filled(data, width)
        if not isinstance(layout_or_text, ValueLayout):
            raise TypeError(
                f"allocate_from() takes a str or a ValueLayout, not {type(layout_or_text).__name__}"
            )
        layout = layout_or_text
        if value is None:
            raise TypeError("allocate_from(layout, value) needs a value")
        raw = _byte_view(value) if layout.carrier == "b" else None
        if raw is not None:  # bytes-like: copied once, into the new segment
            return self._fill_allocated(self.allocate(layout, len(raw)), raw)
        if isinstance(value, (str, bytes, bytearray, memoryview)) or not (
            isinstance(value, Sequence) or hasattr(value, "__iter__")
        ):
            data = _encode(layout, layout._codec, value)
            return self._fill_allocated(self.allocate(layout), data)
        values = list(value)
        data = _encode_all(layout, values)
        return self._fill_allocated(self.allocate(layout, len(values)), data)

    def _allocate_filled(self, data: bytes, alignment: int) -> MemorySegment:
        return self._fill_allocated(self._allocate(len(data), alignment), data)

    @staticmethod
    def _fill_allocated(segment: MemorySegment, data: bytes | memoryview) -> MemorySegment:
        """Write ``data`` (already converted) at the start of a just allocated ``segment``."""
        if not data:
            return segment
        view, base = segment._bytes_view()
        guard = segment._guard
        depth = _depth(guard)
        try:
            _pin(guard, segment)
            view[base : base + len(data)] = data
        finally:
            if guard is not None and depth:
                del guard[depth:]
        return segment

    @staticmethod
    def slicing_allocator(segment: MemorySegment) -> SegmentAllocator:
        """Hands out consecutive slices of ``segment``; raises when it is used up."""
        return _SlicingAllocator(segment)

    @staticmethod
    def prefix_allocator(segment: MemorySegment) -> SegmentAllocator:
        """Hands out the start of ``segment`` every time (earlier results are overwritten)."""
        return _PrefixAllocator(segment)


class _SlicingAllocator(SegmentAllocator):
    __slots__ = ("_offset", "_segment")

    def __init__(self, segment: MemorySegment) -> None:
        if not isinstance(segment, MemorySegment):
            raise TypeError("slicing_allocator() takes a MemorySegment")
        self._segment = segment
        self._offset = 0

    def _allocate(self, byte_size: int, byte_alignment: int) -> MemorySegment:
        # Native twin: the stubs' cut of struct results (hatch_ffm/_ir/_alloc.py, _cut_from).
        segment = self._segment
        start = (segment._address + self._offset + byte_alignment - 1) & -byte_alignment
        offset = start - segment._address
        if offset + byte_size > segment.byte_size:
            raise OutOfBoundsError(
                f"slicing allocator of {segment!r} cannot fit {byte_size} more bytes at offset {offset}",
                offset,
                byte_size,
            )
        result = segment.as_slice(offset, byte_size)
        self._offset = offset + byte_size
        return result


class _PrefixAllocator(SegmentAllocator):
    __slots__ = ("_segment",)

    def __init__(self, segment: MemorySegment) -> None:
        if not isinstance(segment, MemorySegment):
            raise TypeError("prefix_allocator() takes a MemorySegment")
        self._segment = segment

    def _allocate(self, byte_size: int, byte_alignment: int) -> MemorySegment:
        # Native twin: the stubs' cut of struct results (hatch_ffm/_ir/_alloc.py, _cut_from).
        return self._segment.as_slice(0, byte_size, byte_alignment)


class Arena(Scope, SegmentAllocator):
    """Owner of native memory; ``with Arena.of_confined() as arena:`` frees it at the end."""

    __slots__ = (
        "__weakref__",
        "_alive",
        "_close_token",
        "_confinement",
        "_cursor",
        "_extra",
        "_kind",
        "_limit",
        "_lock",
        "_owner",
        "_segment_class",
        "_slab",
        "_slab_align",
        "_slab_start",
        "_slab_view",
    )

    _alive: bool
    _owner: int | None
    _lock: ForkSafeLock  # shared arenas only
    _kind: str
    _confinement: list[int] | None
    _segment_class: type[MemorySegment]
    _cursor: int  # next free offset in the current slab
    _limit: int  # size of the current slab (-1: none yet)
    _slab: tuple[int, int, memoryview] | None
    _slab_start: int
    _slab_align: int  # _slab_start & ALIGN_BITS
    _slab_view: memoryview
    _extra: _Extras | None
    _close_token: list[bool]  # shared arenas: empty while one thread closes it

    def __init__(self, *args: object) -> None:
        raise TypeError("use Arena.of_confined(), Arena.of_shared(), Arena.of_auto() or Arena.global_arena()")

    # -- factories ----------------------------------------------------------------------
    @staticmethod
    def of_confined() -> Arena:
        """An arena usable only by the calling thread; ``close()`` frees its memory."""
        # Native twin: ffm_acc_arena_of_confined (hatch_ffm/_ir/_accelerators.py).
        arena: Arena = _new(Arena)
        arena._alive = True
        arena._owner = owner = _get_ident()
        arena._kind = "confined"
        arena._confinement = [owner]
        arena._segment_class = _ConfinedSegment
        arena._cursor = 0
        arena._extra = None
        slab = None
        if _pool:  # start with a pooled slab: the first allocation is then as cheap as any
            try:  # noqa: SIM105  (contextlib.suppress costs more than the rest of of_confined)
                slab = _pool.pop()
            except IndexError:  # another thread took the last one
                pass
        arena._slab = slab
        if slab is None:
            arena._limit = -1
        else:
            arena._slab_start = slab[1]
            arena._slab_align = slab[1] & ALIGN_BITS
            arena._slab_view = slab[2]
            arena._limit = _SLAB_SIZE
        return arena

    @staticmethod
    def _unconfined(kind: str) -> Arena:
        arena: Arena = _new(Arena)
        arena._alive = True
        arena._owner = None
        arena._kind = kind
        arena._confinement = None
        arena._segment_class = MemorySegment
        arena._cursor = 0
        arena._limit = -1
        arena._slab = None
        arena._extra = _Extras()
        return arena

    @staticmethod
    def of_auto() -> Arena:
        """An arena whose memory is freed once it and all its segments are unreachable."""
        arena = Arena._unconfined("automatic")
        assert arena._extra is not None
        # freed once unreachable; not at exit, when the arena can still be reachable (from a
        # daemon thread, an atexit handler, a late finalizer) and the process goes anyway
        import weakref

        weakref.finalize(arena, arena._extra.release, False).atexit = False
        return arena

    @staticmethod
    def global_arena() -> Arena:
        """The arena whose memory is never freed."""
        return _GLOBAL_ARENA

    @staticmethod
    def of_shared() -> Arena:
        """An arena any thread may use and close; ``close()`` frees its memory, and raises
        :class:`ScopeInUseError` while a downcall given one of its segments runs (or another
        thread's operation on its memory does)."""
        arena: Arena = _new(Arena)
        arena._alive = True
        arena._owner = None
        arena._kind = "shared"
        arena._confinement = _SharedGuard(_ACQUIRED_NONE)
        arena._segment_class = _SharedSegment
        arena._cursor = 0
        arena._extra = None
        arena._close_token = [True]
        # allocations from several threads take turns: a thread switch between reading and
        # moving the cursor (at any bytecode on CPython 3.10) would hand memory out twice;
        # native code never carves from a shared arena's slab (it leaves that to this path)
        arena._lock = ForkSafeLock()
        slab = None
        try:  # noqa: SIM105  (contextlib is not imported for this)
            slab = _pool.pop()
        except IndexError:  # another thread may take the last one
            pass
        arena._slab = slab
        if slab is None:
            arena._limit = -1
        else:
            arena._slab_start = slab[1]
            arena._slab_align = slab[1] & ALIGN_BITS
            arena._slab_view = slab[2]
            arena._limit = _SLAB_SIZE
        return arena

    # -- scope --------------------------------------------------------------------------
    def is_alive(self) -> bool:
        return self._alive

    def _check(self) -> None:
        if not self._alive:
            raise ScopeClosedError("Already closed")
        if self._owner is not None and self._owner != _get_ident():
            raise WrongThreadError("Attempted access outside owning thread")

    def _guard(self) -> list[int] | None:
        return self._confinement

    def _owner_thread(self) -> int | None:
        return self._owner

    def _extras(self) -> _Extras:
        extra = self._extra
        if extra is None:
            made = _Extras()  # may run Python code, which may make this arena's extras too
            extra = self._extra
            if extra is None:
                self._extra = extra = made
        return extra

    def _keep_view(self, view: memoryview, exporter: object) -> None:
        if self._kind in {"confined", "shared"}:
            self._extras().exports.append((view, _weakref(exporter)))

    def _add_cleanup(self, cleanup: Callable[[], object]) -> None:
        self._check()
        if self is _GLOBAL_ARENA:  # the global arena is never closed
            return
        # pinned (a shared arena acquired) until the cleanup is in the list: a close from code
        # run meanwhile (making the extras can run a finalizer; another thread) is refused,
        # instead of running the cleanups before this one is added, which then never ran
        guard = self._confinement
        depth = _depth(guard)
        try:
            _pin(guard, self)
            self._extras().cleanups.append(cleanup)
        finally:
            if guard is not None and depth:
                del guard[depth:]

    @property
    def scope(self) -> Scope:
        """The scope of the segments this arena allocates (the arena itself)."""
        return self

    # -- allocation ---------------------------------------------------------------------
    def allocate(self, size: int | MemoryLayout, alignment_or_count: int | None = None) -> MemorySegment:
        """``allocate(byte_size, byte_alignment=1)``, ``allocate(layout)`` or
        ``allocate(layout, count)``: zeroed memory owned by this arena."""
        # Native twin: ffm_acc_arena_allocate (hatch_ffm/_ir/_accelerators.py), common cases
        # (ints; struct, value and address layouts).
        if size.__class__ is not int or (
            alignment_or_count is not None and alignment_or_count.__class__ is not int
        ):
            return SegmentAllocator.allocate(self, size, alignment_or_count)
        alignment = 1 if alignment_or_count is None else alignment_or_count
        if size < 0 or alignment <= 0 or alignment & (alignment - 1):
            return SegmentAllocator.allocate(self, size, alignment)  # raises the right error
        guard = self._confinement
        if type(guard) is _SharedGuard:
            with self._lock:
                return self._carve(size, alignment, guard)
        return self._carve(size, alignment, guard)

    def _carve(self, size: int, alignment: int, guard: list[int] | None) -> MemorySegment:
        """A zeroed segment of ``size`` bytes aligned to ``alignment`` (valid ints)."""
        if guard is not None and guard[0] != _get_ident():
            self._check()
        segment: MemorySegment = _new(self._segment_class)  # before the pin: may run a finalizer
        depth = _depth(guard)
        try:
            _pin(guard, self)
            if size <= _SMALL and alignment <= _SLAB_ALIGN:
                offset = (self._cursor + alignment - 1) & -alignment
                end = offset + size
                while end > self._limit:
                    # may run Python code, which may allocate from this arena too: read again
                    self._new_slab()
                    offset = (self._cursor + alignment - 1) & -alignment
                    end = offset + size
                # nothing ran since the cursor was read; take the slab's state before anything
                # that allocates (a finalizer may move the arena to another slab)
                self._cursor = end
                view = self._slab_view
                start = self._slab_start
                low_bits = self._slab_align
                view[offset:end] = _ZEROS[:size]  # pooled slabs keep their old bytes
                segment._address = start + offset
                segment._align = low_bits + offset  # low bits only matter, see ALIGN_BITS
                segment._view = view
                segment._base = offset
            else:
                raw = _raw_calloc(size + alignment)
                self._extras().blocks.append(raw)
                segment._address = address = (raw + alignment - 1) & -alignment
                segment._align = address & ALIGN_BITS
                segment._view = None
                segment._base = 0
        finally:
            if guard is not None and depth:
                del guard[depth:]
        segment._size = size
        segment._scope = self
        segment._guard = guard
        return segment

    def _allocate(self, byte_size: int, byte_alignment: int) -> MemorySegment:
        return self.allocate(byte_size, byte_alignment)

    def _new_slab(self) -> None:
        """Make a fresh slab the current one.  Python code may run here (a finalizer, a signal
        handler, another thread on an unconfined arena) and allocate from this arena too, even
        take a new slab itself: the slab is taken first, then the arena's state is switched
        with no call in between, then the slab it replaced is retired."""
        slab = _take_slab()
        if self._kind == "automatic":  # freed by the finalizer, which cannot see the arena
            self._extras().slabs.append((slab, _SLAB_SIZE))
            old = None
        else:
            old, used = self._slab, self._cursor
            self._slab = slab
        self._slab_start = slab[1]
        self._slab_align = slab[1] & ALIGN_BITS
        self._slab_view = slab[2]
        self._cursor = 0
        self._limit = _SLAB_SIZE
        if old is not None:
            self._extras().slabs.append((old, used))

    # -- lifetime -----------------------------------------------------------------------
    def close(self, *exc_info: object) -> None:
        """Free all memory of this arena; its segments can no longer be used.

        Only confined and shared arenas can be closed.  (Arguments are ignored: ``close`` is also
        the arena's ``__exit__``.)
        """
        # Native twin: ffm_acc_arena_close (hatch_ffm/_ir/_accelerators.py), common cases.
        guard = self._confinement
        if guard is None:
            raise UnsupportedOperationError(f"Attempted to close a non-closeable ({self._kind}) arena")
        if type(guard) is _SharedGuard:
            self._close_shared(guard)
            return
        if guard[0] != _get_ident():
            self._check()
        if len(guard) > 1:
            raise ScopeInUseError(
                f"Cannot close {self!r}: an operation on its memory is in progress (a "
                "finalizer, signal handler, __index__ or upcall running during it called "
                "close()); close it after that operation"
            )
        guard[0] = 0
        self._alive = False
        slab = self._slab
        self._slab = None
        extra = self._extra
        if extra is not None and extra.exports and extra.exported():
            extra.quarantine(slab)
        elif slab is not None:
            _recycle(slab)
        if extra is not None:
            extra.release(True)

    __exit__ = close

    def _close_shared(self, guard: _SharedGuard) -> None:
        """Close a shared arena, from any thread: only while no operation or downcall has it
        acquired.  The closing thread holds the arena's one close token, so two closes never
        both free; the guard goes from "open, no acquisition" to closed in one step, so an
        acquisition either comes first (the close is refused) or sees the arena closed."""
        tokens = self._close_token
        try:
            token = tokens.pop()  # atomic: one closer at a time (a list, not a lock: see _locks)
        except IndexError:
            raise ScopeInUseError(f"Cannot close {self!r}: another thread is closing it") from None
        try:
            if guard[0] != _SHARED:
                raise ScopeClosedError("Already closed")
            try:
                # an extended slice covers every item: assigning one item succeeds only when
                # the guard holds exactly one (no acquisition), atomically
                guard[::-1] = _CLOSED
            except ValueError:
                clients = max(len(guard) - 1, 1)
                raise ScopeInUseError(
                    f"Session is acquired by {clients} client{'' if clients == 1 else 's'}: cannot "
                    f"close {self!r} while a downcall or another thread's operation uses its "
                    "memory; close it after they end"
                ) from None
            self._alive = False
            self._give_back()
        finally:
            tokens.append(token)

    def _give_back(self) -> None:
        """Return the memory of this (just closed) arena: slabs to the pool, the rest freed."""
        slab = self._slab
        self._slab = None
        extra = self._extra
        if extra is not None and extra.exports:
            extra.quarantine(slab)
        elif slab is not None:
            _recycle(slab)
        if extra is not None:
            extra.release(True)

    def __enter__(self) -> Arena:
        # Native twin: ffm_acc_arena_enter (hatch_ffm/_ir/_accelerators.py).
        return self

    def __del__(self) -> None:
        # A confined arena dropped without close(): no segment of it is reachable any more
        # (segments keep their arena alive), so its memory can go back; say so, like an
        # unclosed file does.  Only its owner thread gives memory back: __del__ can also be
        # called by hand, from any thread, while the owner is in a native call using the
        # memory (collected in another thread, the arena's memory is left allocated).
        # (``Arena()`` raised before setting anything: nothing to give back)
        guard = getattr(self, "_confinement", None)
        if type(guard) is _SharedGuard:
            if guard[0] == 0:
                return
            name = repr(self)
            try:
                self._close_shared(guard)
            except (ScopeInUseError, ScopeClosedError):  # acquired (leaked), or closing
                warn(
                    f"shared arena {name} was never closed and is in use: its memory is not reused",
                    ResourceWarning,
                    stacklevel=2,
                )
                return
            warn(
                f"shared arena {name} was never closed; use "
                "'with Arena.of_shared() as arena:' or call close()",
                ResourceWarning,
                stacklevel=2,
            )
            return
        if guard is not None and guard[0] != 0 and (guard[0] != _get_ident() or len(guard) > 1):
            warn(
                f"confined arena {self!r} was never closed (finalized outside its "
                "owner thread or during an operation on its memory: its memory is "
                "not reused)",
                ResourceWarning,
                stacklevel=2,
            )
            return
        if guard is not None and guard[0] != 0:
            guard[0] = 0
            self._alive = False
            warn(
                f"confined arena {self!r} was never closed; use "
                "'with Arena.of_confined() as arena:' or call close()",
                ResourceWarning,
                stacklevel=2,
            )
            slab, self._slab = self._slab, None
            if self._extra is not None and self._extra.exports and self._extra.exported():
                self._extra.quarantine(slab)
            elif slab is not None:
                _recycle(slab)
            if self._extra is not None:
                self._extra.release(True)

    def __reduce_ex__(self, protocol: object) -> NoReturn:
        raise TypeError("an Arena cannot be copied or pickled: it owns its memory")

    def __repr__(self) -> str:
        state = "alive" if self._alive else "closed"
        return f"<Arena {self._kind} {state} owner={self._owner}>"


#: A new shared arena's guard items, and a closed one's (see ``Arena._close_shared``).
_ACQUIRED_NONE: Final = (_SHARED,)
_CLOSED: Final = (0,)

_GLOBAL_ARENA: Final = Arena._unconfined("global")
