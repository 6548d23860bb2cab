"""Memory segments: bounded, lifetime- and thread-checked views of native or heap memory.

Every access goes through the same checks, in this order: the segment's
arena is open and owned by this thread, the access is inside the segment, the
address is aligned for the layout, the value fits the layout.  Native memory
is reached through memoryviews cut from one view spanning the address space
(an arena's slab, or the segment's own bytes, made on first use), so a checked
``get`` is a few small-integer comparisons and one ``struct`` call; nothing is
reachable without passing the checks first.

Downcall stubs and the accelerators read a segment's fields (``_address``, ``_size``,
``_guard``, ...) at the offsets the runtime finds at import (see ``_contract.OFFSETS``).
Segments usable from any thread at any time are exactly of type
``MemorySegment``; segments of a confined arena are of a private subclass whose
``_guard`` (shared with the arena) is a one-element list holding the owner
thread's ident, 0 once the arena is closed; heap segments are of another
private subclass.  So a closed, foreign-thread or heap segment is refused
before a native call, with no Python code on the call path.

Python code can run in the middle of any Python method (a finalizer, a signal handler, a
value's ``__index__``), and it could close the arena.  So every method that touches memory
converts its arguments first, then pins the arena (:func:`_pin`: the check, and a promise
that ``close`` refuses until the operation's ``finally`` gives the pin back, see
:func:`_depth`), then accesses the memory.
"""

from __future__ import annotations

import struct
import sys
from _ctypes import _SimpleCData
from _thread import get_ident as _get_ident

from . import _codecs, _contract, _layouts
from ._access import ensure_native_access
from ._bootstrap import array_pending as _bootstrap_array_pending
from ._errors import (
    MisalignedAccessError,
    OutOfBoundsError,
    ReadOnlyError,
    ScopeClosedError,
    UnsupportedOperationError,
)
from ._layouts import MemoryLayout, ValueLayout

TYPE_CHECKING = False
if TYPE_CHECKING:
    import array
    import ctypes
    from collections.abc import Callable
    from threading import Thread
    from typing import Any, ClassVar, Final, NoReturn
else:  # ctypes itself on first use (it costs a fair part of import ffm_runtime)
    from . import _lazy_ctypes as ctypes

__all__ = ["GLOBAL_SCOPE", "MemorySegment", "Scope"]

_MAX_ADDRESS: Final = (1 << 64) - 1
#: Addresses at and above this are never user memory (and beyond Py_ssize_t).
_MAX_ACCESS: Final = 1 << 63
#: ``_align`` keeps the low bits of the address: enough for any value layout's alignment.
ALIGN_BITS: Final = _contract.SEGMENT_ALIGN_BITS
#: ...and this bit when the segment is read-only (for native code; see ``_contract``).
READ_ONLY_BIT: Final = _contract.SEGMENT_READ_ONLY_BIT
_STRING_CHUNK: Final = 256
#: The smallest page size of the supported targets: reads that stay in a page never fault.
_PAGE: Final = 4096


#: All of the address space as bytes; only ever indexed after the checks passed.
class _Byte(_SimpleCData):  # type: ignore[type-arg]  # (ctypes.c_ubyte, from the C module only)
    _type_ = "B"


_ALL: Final = memoryview((_Byte * sys.maxsize).from_address(0)).cast("B")
_ALL_READ_ONLY: Final = _ALL.toreadonly()

_ARRAY_CODES: Final = {
    "b": "b",
    "c": "H",
    "s": "h",
    "i": "i",
    "j": "q",
    "f": "f",
    "d": "d",
    # unsigned forms (ValueLayout.unsigned), by the layout's _code
    "ub": "B",
    "us": "H",
    "ui": "I",
    "uj": "Q",
}
_TERMINATORS: Final = {
    "utf-8": 1,
    "utf8": 1,
    "ascii": 1,
    "us-ascii": 1,
    "latin-1": 1,
    "iso-8859-1": 1,
    "utf-16le": 2,
    "utf-16be": 2,
    "utf-32le": 4,
    "utf-32be": 4,
}


def _offset(value: object, size: int) -> int:
    """An access offset that is not an exact ``int``: an ``int`` subclass is converted (its
    operators are not trusted), anything else is a ``TypeError``."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"offset must be an int, not {type(value).__name__}")
    return int.__index__(value)


def _check_int(value: object, what: str) -> int:
    """``value`` as an exact ``int`` (subclasses' overridden operators are not trusted)."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{what} must be an int, not {type(value).__name__}")
    return int.__index__(value)


#: Item 0 of an open shared arena's guard (a :class:`_SharedGuard`): never a thread ident.
_SHARED: Final = -1
#: What an acquisition of a shared arena adds to its guard (any item after 0 is one).
_ACQUIRE: Final = (_SHARED,)


class _SharedGuard(list):  # type: ignore[type-arg]  # of ints, as a confined guard
    """The guard of a shared arena: item 0 is :data:`_SHARED` while it is open (any thread
    may use it), 0 once closed; every further item is an acquisition, by a Python operation
    (:func:`_depth`) or a downcall running without the GIL (the stub appends one before
    releasing the GIL and removes one after taking it back).  All acquisitions are alike:
    each holder removes one item, never truncates.  ``Arena.close`` refuses while there is
    any.  Its own type, so the kind is still known once the arena is closed."""

    __slots__ = ()


def _depth(guard: object) -> int:
    """How many items the confinement guard ``guard`` holds before an operation pins it
    (0: no guard to pin, as for unconfined scopes).

    A shared arena's guard is acquired here, before the operation's ``try``: the result, -1,
    makes the ``finally`` remove exactly one item (``del guard[-1:]``), whoever added it.
    (Acquired before the ``try``: an exception raised right here, from a signal handler,
    leaves an acquisition behind - the arena then refuses to close - rather than taking
    another thread's away.)

    An operation reads it before its ``try``, pins inside the ``try`` (:func:`_pin`), and its
    ``finally`` cuts the guard back to this length with ``del guard[depth:]``: a statement, not
    a call, so an exception raised at any call's return (``KeyboardInterrupt`` from a signal
    handler, an exception from a finalizer or a profiler) can never leave a pin behind, which
    would make the arena unclosable.
    """
    kind = type(guard)
    if kind is list:
        return len(guard)  # type: ignore[arg-type]  # a list
    if kind is _SharedGuard:
        guard += _ACQUIRE  # type: ignore[operator]  # one statement: list.extend, atomic
        return -1
    return 0


def _pin(guard: list[int] | None, holder: MemorySegment | Scope) -> None:
    """Check that this thread may use the memory of ``holder`` (a segment, or an arena) now,
    and keep its arena open until the operation's ``finally`` cuts ``guard`` back to its
    :func:`_depth`: ``Arena.close`` raises :class:`ScopeInUseError` while a pin is held.

    Every Python path that touches native memory runs convert -> allocate -> ``_depth`` ->
    ``try: _pin`` -> access -> ``finally: del guard[depth:]``: whatever Python code runs
    during the access (a finalizer called at an allocation or a bytecode boundary, a signal
    handler) cannot free the memory under it.  A pin is an extra item of the confinement
    guard, the list a confined arena shares with its segments; only the owner thread pins.
    A shared arena's guard is acquired by :func:`_depth` instead (any thread); here it is
    only checked to be open.
    Unconfined scopes (automatic and global arenas, heap segments) are never freed while
    reachable and need none.  Native code needs no pin: it runs no Python code between its
    check and its access; but a downcall that releases the GIL pins its confined segments'
    arenas too (its function may call back into Python on this thread: an upcall).
    """
    if guard is None:
        if not holder._scope.is_alive():
            holder._scope._check()
        return
    ident = _get_ident()
    if guard[0] != ident:
        if type(guard) is _SharedGuard:  # acquired by _depth: it stays open until released
            if guard[0] != _SHARED:
                raise ScopeClosedError("Already closed")
            return
        holder._scope._check()  # closed, or another thread's: raises
    guard.append(ident)
    if guard[0] != ident:  # closed after the check, before the pin (the finally unpins)
        holder._scope._check()


def _charset(name: object) -> tuple[str, int]:
    if not isinstance(name, str):
        raise TypeError(f"charset must be a str, not {type(name).__name__}")
    key = name.lower().replace("_", "-")
    width = _TERMINATORS.get(key)
    if width is None:
        raise ValueError(f"Unsupported charset {name!r}; use one of " + ", ".join(sorted(_TERMINATORS)))
    return key, width


class Scope:
    """The lifetime of a group of segments (Java's ``MemorySegment.Scope``)."""

    __slots__ = ()

    def is_alive(self) -> bool:
        """Whether the segments of this scope may still be accessed."""
        return True

    def _check(self) -> None:
        """Raise unless the current thread may access segments of this scope now."""

    def _guard(self) -> list[int] | None:
        """The confinement guard (``None``: accessible from any thread while alive)."""
        return None

    def _owner_thread(self) -> int | None:
        return None

    def _keep_view(self, view: memoryview, exporter: object) -> None:
        """Remember an exported view (and the object exporting its memory) for close()."""

    @property
    def _scope(self) -> Scope:
        """Itself: the scope whose ``_check`` explains a refusal, as a segment's ``_scope``
        is (see :func:`_pin`)."""
        return self


class _GlobalScope(Scope):
    __slots__ = ()

    def __repr__(self) -> str:
        return "<global scope>"


GLOBAL_SCOPE: Final = _GlobalScope()


class MemorySegment:
    """A contiguous region of memory: an address, a size, a scope, and checked access."""

    __slots__ = ("__weakref__", "_address", "_align", "_base", "_guard", "_scope", "_size", "_view")

    NULL: ClassVar[MemorySegment]

    _address: int  # raw address (also for heap segments: pinned buffer address)
    _size: int
    _scope: Scope
    _guard: list[int] | None
    _view: memoryview | None  # what accesses index; None: this segment's bytes, made on use
    _base: int  # index of byte 0 of this segment in _view
    _align: int  # _address & ALIGN_BITS (| READ_ONLY_BIT), alignment checks in small ints

    def __new__(cls, *args: object, **kwargs: object) -> MemorySegment:
        raise TypeError(
            "MemorySegment cannot be created directly: use Arena.allocate(), "
            "MemorySegment.of_address(), MemorySegment.of_array() or a downcall result"
        )

    @staticmethod
    def _make(
        address: int, byte_size: int, scope: Scope = GLOBAL_SCOPE, read_only: bool = False
    ) -> MemorySegment:
        """A native segment (internal constructor)."""
        guard = scope._guard()
        segment = object.__new__(
            MemorySegment
            if guard is None
            else _SharedSegment
            if type(guard) is _SharedGuard
            else _ConfinedSegment
        )
        segment._address = address
        segment._size = byte_size
        segment._scope = scope
        segment._guard = guard
        segment._view = _ALL_READ_ONLY[address : address + byte_size] if read_only else None
        segment._base = 0
        segment._align = (address & ALIGN_BITS) | (READ_ONLY_BIT if read_only else 0)
        return segment

    def _materialize(self) -> memoryview:
        """Make this segment's view of its bytes (native segments make it on first access)."""
        view = _ALL[self._address : self._address + self._size]
        self._view = view
        self._base = 0
        return view

    def _derive(self, offset: int, size: int, read_only: bool | None = None) -> MemorySegment:
        """A segment for ``[offset, offset + size)`` of this one, same memory and scope."""
        clone = object.__new__(type(self))
        clone._address = address = self._address + offset
        clone._size = size
        clone._scope = self._scope
        clone._guard = self._guard
        clone._align = (address & ALIGN_BITS) | (READ_ONLY_BIT if read_only else self._align & READ_ONLY_BIT)
        view = self._view
        if view is None:
            view = self._materialize()
        clone._view = view.toreadonly() if read_only else view
        clone._base = self._base + offset
        return clone

    # -- construction -----------------------------------------------------------------
    @staticmethod
    def of_address(address: int) -> MemorySegment:
        """A zero-length segment at ``address`` in the global scope (Java's ``ofAddress``)."""
        address = _check_int(address, "address")
        if not 0 <= address <= _MAX_ADDRESS:
            raise OverflowError(f"address {address} is outside [0, 2**64 - 1]")
        return MemorySegment.NULL if address == 0 else MemorySegment._make(address, 0)

    @staticmethod
    def of_array(buffer: Any) -> MemorySegment:
        """A heap segment over a Python buffer, without copying.

        Works with ``bytearray``, ``array.array``, writable ``memoryview`` and numpy arrays
        (C-contiguous), and with ``bytes``, whose segment is read-only.  The buffer cannot be
        resized while the segment exists.
        """
        # Native twin: ffm_acc_memorysegment_of_array (hatch_ffm/_ir/_accel_bulk.py), common cases.
        if buffer.__class__ is bytes:
            return _HeapSegment._over_bytes(buffer)
        if _bootstrap_array_pending and type(buffer).__name__ == "array":
            from ._bootstrap import array_seen

            array_seen(type(buffer))
        try:
            view = memoryview(buffer)
        except TypeError as exc:
            raise TypeError(
                f"of_array() needs an object with the buffer protocol, not {type(buffer).__name__}"
            ) from exc
        if view.readonly:
            raise TypeError(
                f"of_array() needs a writable buffer or bytes; {type(buffer).__name__} is "
                "read-only (use bytes, bytearray, array.array or a writable memoryview)"
            )
        if not view.c_contiguous:
            raise TypeError("of_array() needs a C-contiguous buffer")
        flat = view.cast("B") if view.ndim else view.cast("B", (view.nbytes,))
        return _HeapSegment._over(buffer, flat, view.itemsize)

    # -- properties -------------------------------------------------------------------
    @property
    def address(self) -> int:
        """The native address of the first byte (for a heap segment: its offset in the buffer)."""
        return self._address

    @property
    def byte_size(self) -> int:
        """The size in bytes."""
        return self._size

    @property
    def scope(self) -> Scope:
        """The scope that bounds this segment's lifetime."""
        return self._scope

    def is_native(self) -> bool:
        """Whether this segment is native memory (``False`` for :meth:`of_array` segments)."""
        return True

    def heap_base(self) -> Any:
        """The Python object a heap segment is over, or ``None`` for a native segment."""
        return None

    def is_read_only(self) -> bool:
        """Whether writes through this segment are refused."""
        return self._view is not None and self._view.readonly

    def as_read_only(self) -> MemorySegment:
        """A read-only view of the same memory."""
        return self._derive(0, self._size, read_only=True)

    def is_accessible_by(self, thread: Thread) -> bool:
        """Whether ``thread`` may access this segment (confined segments: only the owner)."""
        owner = self._scope._owner_thread()
        return owner is None or thread.ident == owner

    def max_byte_alignment(self) -> int:
        """The largest alignment this segment's address satisfies."""
        address = self._address
        return 1 << 62 if address == 0 else min(address & -address, 1 << 62)

    # -- checks -----------------------------------------------------------------------
    def _check_scope(self) -> None:
        guard = self._guard
        if (guard is not None and guard[0] != _get_ident()) or not self._scope.is_alive():
            self._scope._check()

    def _check_bounds(self, offset: int, length: int) -> None:
        if offset < 0 or length < 0 or offset > self._size - length:
            raise self._out_of_bounds(offset, length)

    def _out_of_bounds(self, offset: object, length: int) -> Exception:
        if not isinstance(offset, int) or isinstance(offset, bool):
            return TypeError(f"offset must be an int, not {type(offset).__name__}")
        return OutOfBoundsError(
            f"Out of bound access on segment {self!r}; new offset = {offset}; new length = {length}",
            offset,
            length,
        )

    def _check_reachable(self, offset: int, length: int) -> None:
        """Raise unless the bytes ``[offset, offset + length)`` are below address ``2**63``
        (a segment reinterpreted past it reaches no memory of this process there)."""
        if self._address + offset + length > _MAX_ACCESS:
            raise ValueError(f"{self!r} has no address this process can access (at or beyond 2**63)")

    def _check_writable(self) -> None:
        if self.is_read_only():
            raise ReadOnlyError(f"Attempt to write to the read-only segment {self!r}")

    def _bytes_view(self) -> tuple[memoryview, int]:
        """(view, index of byte 0) for bulk operations."""
        view = self._view
        if view is None:
            view = self._materialize()
        return view, self._base

    def _misaligned(self, layout: ValueLayout, offset: int) -> Exception:
        return MisalignedAccessError(
            f"Misaligned access at address {self._address + offset:#x}: {layout} needs "
            f"{layout.byte_alignment}-byte alignment (use an *_UNALIGNED layout or "
            "with_byte_alignment(1) for packed data)"
        )

    # -- typed access -----------------------------------------------------------------
    def get(self, layout: ValueLayout, offset: int = 0) -> Any:
        """Read a value of ``layout`` at byte ``offset``."""
        # Native twin: ffm_acc_memorysegment_get (hatch_ffm/_ir/_accelerators.py), common cases.
        try:
            if layout.__class__ is not ValueLayout and not isinstance(layout, ValueLayout):
                raise AttributeError  # what looks like a layout is not one
            codec = layout._codec
            mask = layout._mask
            size = layout._byte_size
        except AttributeError:
            raise TypeError(f"get() needs a ValueLayout, not {type(layout).__name__}") from None
        guard = self._guard
        if guard is not None and guard[0] != _get_ident():
            self._scope._check()
        if offset.__class__ is not int:
            offset = _offset(offset, size)
        address = self._checked_address(layout, offset, size, mask)
        if guard is None:
            return codec.unpack_from(_ALL, address)[0]
        depth = _depth(guard)
        try:
            _pin(guard, self)
            return codec.unpack_from(_ALL, address)[0]
        finally:
            if depth:
                del guard[depth:]

    def set(self, layout: ValueLayout, offset: int, value: Any) -> None:
        """Write ``value`` as ``layout`` at byte ``offset``."""
        # Native twin: ffm_acc_memorysegment_set (hatch_ffm/_ir/_accelerators.py), common cases.
        try:
            if layout.__class__ is not ValueLayout and not isinstance(layout, ValueLayout):
                raise AttributeError  # what looks like a layout is not one
            codec = layout._codec
            mask = layout._mask
            size = layout._byte_size
        except AttributeError:
            raise TypeError(f"set() needs a ValueLayout, not {type(layout).__name__}") from None
        guard = self._guard
        if guard is not None and guard[0] != _get_ident():
            self._scope._check()
        if offset.__class__ is not int:
            offset = _offset(offset, size)
        address = self._checked_address(layout, offset, size, mask)
        if self._align & READ_ONLY_BIT:
            raise ReadOnlyError(f"Attempt to write to the read-only segment {self!r}")
        data = _encode(layout, codec, value)
        depth = _depth(guard)
        try:
            if guard is not None:
                _pin(guard, self)
            _ALL[address : address + size] = data
        finally:
            if guard is not None and depth:
                del guard[depth:]

    def _checked_address(self, layout: ValueLayout, offset: int, size: int, mask: int) -> int:
        """The address of an access of ``size`` bytes at ``offset``, after the bounds and
        alignment checks."""
        try:
            if offset < 0 or offset > self._size - size:
                raise self._out_of_bounds(offset, size)
            if (self._align + offset) & mask:
                raise self._misaligned(layout, offset)
        except TypeError:
            raise self._out_of_bounds(offset, size) from None
        address = self._address
        if address.__class__ is not int:
            address = _check_int(address, "a segment's address")
        if not 0 <= address < _MAX_ACCESS:
            raise ValueError(f"{self!r} has no address this process can access")
        return address + offset

    def get_at_index(self, layout: ValueLayout, index: int) -> Any:
        """Read element ``index`` of an array of ``layout``."""
        if not isinstance(layout, ValueLayout):
            raise TypeError(f"get_at_index() needs a ValueLayout, not {type(layout).__name__}")
        return self.get(layout, _check_int(index, "index") * layout.byte_size)

    def set_at_index(self, layout: ValueLayout, index: int, value: Any) -> None:
        """Write element ``index`` of an array of ``layout``."""
        if not isinstance(layout, ValueLayout):
            raise TypeError(f"set_at_index() needs a ValueLayout, not {type(layout).__name__}")
        self.set(layout, _check_int(index, "index") * layout.byte_size, value)

    # -- slices and resizing ----------------------------------------------------------
    def as_slice(
        self, offset: int, new_size: int | MemoryLayout | None = None, byte_alignment: int = 1
    ) -> MemorySegment:
        """The part of this segment from ``offset``, ``new_size`` bytes long (default: to the end).

        ``new_size`` may be a layout: its size and alignment are used.
        """
        # Native twin: ffm_acc_memorysegment_as_slice (hatch_ffm/_ir/_accel_pointers.py), ints
        # (new_size None or left out too).
        offset = _check_int(offset, "offset")
        if isinstance(new_size, MemoryLayout):
            byte_alignment = new_size.byte_alignment
            size = new_size.byte_size
        else:
            size = self._size - offset if new_size is None else _check_int(new_size, "new_size")
        byte_alignment = _check_int(byte_alignment, "byte_alignment")
        if byte_alignment <= 0 or byte_alignment & (byte_alignment - 1):
            raise ValueError(f"Invalid alignment constraint : {byte_alignment}")
        self._check_scope()
        self._check_bounds(offset, size)
        if (self._address + offset) % byte_alignment:
            raise MisalignedAccessError(
                f"Target offset {offset} is incompatible with alignment constraint "
                f"{byte_alignment} (of segment {self!r})"
            )
        return self._derive(offset, size)

    def reinterpret(
        self,
        new_size: int | None = None,
        arena: Any = None,
        cleanup: Callable[[MemorySegment], object] | None = None,
    ) -> MemorySegment:
        """The same memory with another size and/or scope (restricted, like Java's).

        With ``arena``, the result lives in that arena's scope, and ``cleanup`` (if any)
        is called once, with a segment of the same address and size in the global scope,
        when the arena is closed (or, for an automatic arena, freed).
        """
        # Native twin: ffm_acc_memorysegment_reinterpret (hatch_ffm/_ir/_accel_pointers.py),
        # for callers let through before (see ffm_runtime._access).
        ensure_native_access("MemorySegment.reinterpret")
        if not self.is_native():
            raise UnsupportedOperationError(f"Not a native segment: {self!r}")
        size = self._size if new_size is None else _check_int(new_size, "new_size")
        if size < 0:
            raise ValueError(f"Invalid size: {size}")
        if arena is None:
            if cleanup is not None:
                raise TypeError("reinterpret(): cleanup needs an arena")
            return MemorySegment._make(self._address, size, self._scope, self.is_read_only())
        scope = arena.scope
        scope._check()
        segment = MemorySegment._make(self._address, size, scope, self.is_read_only())
        if cleanup is not None:
            if not callable(cleanup):
                raise TypeError("cleanup must be callable")
            address = self._address
            scope._add_cleanup(lambda: cleanup(MemorySegment._make(address, size)))
        return segment

    # -- bulk operations --------------------------------------------------------------
    def fill(self, value: int) -> MemorySegment:
        """Set every byte to ``value`` (-128..255); returns this segment."""
        # Native twin: ffm_acc_memorysegment_fill (hatch_ffm/_ir/_accel_bulk.py), common cases.
        value = _check_int(value, "value")
        if not -128 <= value <= 255:
            raise OverflowError(f"fill value {value} does not fit in a byte")
        self._check_scope()
        self._check_writable()
        view, base = self._bytes_view()
        size = self._size
        data: memoryview | bytes | None = None  # None: too large, memset
        if size <= len(_ZEROS):
            data = _ZEROS[:size] if value == 0 else bytes((value & 0xFF,)) * size
        guard = self._guard
        depth = _depth(guard)
        try:
            _pin(guard, self)
            if data is None:
                ctypes.memset(self._address, value & 0xFF, size)
            else:
                view[base : base + size] = data
        finally:
            if guard is not None and depth:
                del guard[depth:]
        return self

    def copy_from(self, source: MemorySegment) -> MemorySegment:
        """Copy all of ``source`` to the start of this segment; returns this segment."""
        # Native twin: ffm_acc_memorysegment_copy_from (hatch_ffm/_ir/_accel_bulk.py), common cases.
        if not isinstance(source, MemorySegment):
            raise TypeError(f"copy_from() needs a MemorySegment, not {type(source).__name__}")
        MemorySegment.copy(source, 0, self, 0, source.byte_size)
        return self

    @staticmethod
    def copy(*args: Any) -> None:
        """Copy bytes or elements between segments (overlapping regions are fine).

        ``copy(src, src_offset, dst, dst_offset, byte_size)`` copies bytes;
        ``copy(src, src_layout, src_offset, dst, dst_layout, dst_offset, count)`` copies
        ``count`` elements, swapping bytes when the two layouts' byte orders differ.
        """
        # Native twin: ffm_acc_memorysegment_copy (hatch_ffm/_ir/_accel_bulk.py), common cases.
        if len(args) == 5:
            source, source_offset, target, target_offset, byte_size = args
            swap = 0
        elif len(args) == 7:
            source, source_layout, source_offset, target, target_layout, target_offset, count = args
            if not isinstance(source_layout, ValueLayout) or not isinstance(target_layout, ValueLayout):
                raise TypeError("element copy needs value layouts")
            if source_layout.byte_size != target_layout.byte_size:
                raise ValueError(
                    f"Source and target layouts must have the same size: {source_layout}, {target_layout}"
                )
            byte_size = _check_int(count, "count") * source_layout.byte_size
            swap = source_layout.byte_size if source_layout.order != target_layout.order else 0
        else:
            raise TypeError("copy() takes 5 (bytes) or 7 (elements) arguments")
        for segment in (source, target):
            if not isinstance(segment, MemorySegment):
                raise TypeError(f"copy() needs MemorySegments, not {type(segment).__name__}")
        source_offset = _check_int(source_offset, "source offset")
        target_offset = _check_int(target_offset, "target offset")
        byte_size = _check_int(byte_size, "byte size")
        source._check_scope()
        target._check_scope()
        source._check_bounds(source_offset, byte_size)
        target._check_bounds(target_offset, byte_size)
        target._check_writable()
        if not byte_size:
            return
        source_view, source_base = source._bytes_view()
        target_view, target_base = target._bytes_view()
        start = source_base + source_offset
        end = target_base + target_offset
        source_guard, target_guard = source._guard, target._guard
        source_depth, target_depth = _depth(source_guard), _depth(target_guard)
        try:
            _pin(source_guard, source)
            _pin(target_guard, target)
            chunk: memoryview | bytearray = source_view[start : start + byte_size]
            if swap > 1:
                chunk = bytearray(chunk)
                for first in range(0, byte_size, swap):
                    chunk[first : first + swap] = chunk[first : first + swap][::-1]
            target_view[end : end + byte_size] = chunk  # memmove semantics: overlap is fine
        finally:
            if target_guard is not None and target_depth:
                del target_guard[target_depth:]
            if source_guard is not None and source_depth:
                del source_guard[source_depth:]

    def mismatch(self, other: MemorySegment) -> int:
        """Offset of the first differing byte, or -1 when both segments are equal."""
        if not isinstance(other, MemorySegment):
            raise TypeError(f"mismatch() needs a MemorySegment, not {type(other).__name__}")
        self._check_scope()
        other._check_scope()
        common = min(self._size, other._size)
        view, base = self._bytes_view()
        mine = view[base : base + common]
        view, base = other._bytes_view()
        theirs = view[base : base + common]
        guard, other_guard = self._guard, other._guard
        depth, other_depth = _depth(guard), _depth(other_guard)
        try:
            _pin(guard, self)
            _pin(other_guard, other)
            index = _first_difference(mine, theirs)
        finally:
            if other_guard is not None and other_depth:
                del other_guard[other_depth:]
            if guard is not None and depth:
                del guard[depth:]
        if index >= 0:
            return index
        return -1 if self._size == other._size else common

    def to_bytes(self) -> bytes:
        """A copy of the segment's contents."""
        # Native twin: ffm_acc_memorysegment_to_bytes (hatch_ffm/_ir/_accel_bulk.py), common cases.
        self._check_scope()
        self._check_reachable(0, self._size)
        view, base = self._bytes_view()
        guard = self._guard
        depth = _depth(guard)
        try:
            _pin(guard, self)
            return bytes(view[base : base + self._size])
        finally:
            if guard is not None and depth:
                del guard[depth:]

    def to_array(self, layout: ValueLayout) -> array.array[Any]:
        """A copy of the contents as an ``array.array`` of ``layout``'s elements."""
        if not isinstance(layout, ValueLayout) or layout._code not in _ARRAY_CODES:
            raise TypeError(
                f"to_array() takes JAVA_BYTE, JAVA_CHAR, JAVA_SHORT, JAVA_INT, "
                f"JAVA_LONG (or their unsigned() forms), JAVA_FLOAT or JAVA_DOUBLE, not {layout!r}"
            )
        if self._size % layout.byte_size:
            raise ValueError(f"Segment size {self._size} is not a multiple of {layout} size")
        import array  # (it imports collections)

        result = array.array(_ARRAY_CODES[layout._code], self.to_bytes())
        if layout.order != sys.byteorder:
            result.byteswap()
        return result

    def as_memoryview(self) -> memoryview:
        """A zero-copy view of the segment's bytes (a read-only copy for a read-only segment).

        Python cannot check accesses through a memoryview, so its memory is never reused
        while the view (or anything made from it) exists: closing a confined arena releases
        the views it handed out and keeps their memory until their last derived view is
        gone; a view of an automatic arena's segment keeps the arena alive.
        """
        self._check_scope()
        if self.is_read_only():
            return memoryview(self.to_bytes())  # no writable exporter may escape
        if not self.is_native():
            view, base = self._bytes_view()
            return view[base : base + self._size]
        guard = self._guard
        depth = _depth(guard)
        try:  # made and registered with the arena while it cannot close
            _pin(guard, self)
            raw = (ctypes.c_char * self._size).from_address(self._address)
            raw._ffm_scope = self._scope  # type: ignore[attr-defined]  # keeps an auto arena alive
            view = memoryview(raw).cast("B")
            self._scope._keep_view(view, raw)
        finally:
            if guard is not None and depth:
                del guard[depth:]
        return view

    # -- strings ----------------------------------------------------------------------
    def get_string(self, offset: int = 0, charset: str = "utf-8", byte_length: int | None = None) -> str:
        """Read a NUL-terminated string starting at ``offset``; with ``byte_length``, exactly
        that many bytes (NULs included, as Java's ``getString(offset, charset, byteLength)``).

        Bytes that do not decode in ``charset`` are replaced (U+FFFD), as Java does."""
        # Native twin: ffm_acc_memorysegment_get_string (hatch_ffm/_ir/_accel_bulk.py), common cases.
        offset = _check_int(offset, "offset")
        name, width = _charset(charset)
        if byte_length is not None:
            return self._get_sized_string(offset, name, _check_int(byte_length, "byte_length"))
        self._check_scope()
        self._check_bounds(offset, 0)
        self._check_reachable(offset, 1)
        view, base = self._bytes_view()
        guard = self._guard
        depth = _depth(guard)
        try:
            _pin(guard, self)
            data = _terminated(view, base + offset, base + self._size, width, self._address - base)
        finally:
            if guard is not None and depth:
                del guard[depth:]
        if data is None:
            raise OutOfBoundsError(
                f"No string terminator found in segment {self!r} after offset {offset}",
                offset,
                self._size - offset,
            )
        return data.decode(name, errors="replace")

    def _get_sized_string(self, offset: int, name: str, byte_length: int) -> str:
        """``get_string`` with a ``byte_length``: the bytes ``[offset, offset + byte_length)``
        decoded as ``name``."""
        self._check_scope()
        self._check_bounds(offset, byte_length)
        self._check_reachable(offset, byte_length)
        view, base = self._bytes_view()
        guard = self._guard
        depth = _depth(guard)
        try:
            _pin(guard, self)
            data = bytes(view[base + offset : base + offset + byte_length])
        finally:
            if guard is not None and depth:
                del guard[depth:]
        return data.decode(name, errors="replace")

    def set_string(self, offset: int, text: str, charset: str = "utf-8") -> None:
        """Write ``text`` and a terminator at ``offset``."""
        # Native twin: ffm_acc_memorysegment_set_string (hatch_ffm/_ir/_accel_bulk.py), common cases.
        offset = _check_int(offset, "offset")
        if not isinstance(text, str):
            raise TypeError(f"set_string() takes a str, not {type(text).__name__}")
        name, width = _charset(charset)
        data = text.encode(name) + bytes(width)
        self._check_scope()
        self._check_bounds(offset, len(data))
        self._check_writable()
        view, base = self._bytes_view()
        guard = self._guard
        depth = _depth(guard)
        try:
            _pin(guard, self)
            view[base + offset : base + offset + len(data)] = data
        finally:
            if guard is not None and depth:
                del guard[depth:]

    # -- value semantics --------------------------------------------------------------
    def __reduce_ex__(self, protocol: object) -> NoReturn:
        raise TypeError(
            "a MemorySegment cannot be pickled: it is an address in this process "
            "(copy its bytes with to_bytes() instead)"
        )

    def __copy__(self) -> MemorySegment:
        return self  # a segment is a value: a view of memory that does not change

    def __deepcopy__(self, memo: object) -> MemorySegment:
        return self

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, MemorySegment):
            return NotImplemented
        # the object a heap segment is over, read-only ones too (whose heap_base() is None)
        return (
            getattr(self, "_object", None) is getattr(other, "_object", None)
            and self.address == other.address
            and self._size == other._size
        )

    def __hash__(self) -> int:
        return hash((id(getattr(self, "_object", None)), self.address, self._size))

    def __repr__(self) -> str:
        return f"MemorySegment(address={self._address:#x}, byte_size={self._size})"


MemorySegment.NULL = MemorySegment._make(0, 0)


class _ConfinedSegment(MemorySegment):
    """A segment of a confined arena (see the module docstring)."""

    __slots__ = ()


class _SharedSegment(MemorySegment):
    """A segment of a shared arena: usable from any thread while the arena is open; its
    ``_guard`` is the arena's :class:`_SharedGuard`."""

    __slots__ = ()


class _HeapSegment(MemorySegment):
    """A segment over a Python buffer; ``_pin`` keeps the buffer exported (unresizable)."""

    __slots__ = ("_itemsize", "_object", "_pin")

    _object: Any
    _pin: Any
    _itemsize: int

    @staticmethod
    def _over(obj: Any, flat: memoryview, itemsize: int) -> MemorySegment:
        segment = object.__new__(_HeapSegment)
        size = flat.nbytes
        pin = (ctypes.c_char * size).from_buffer(flat) if size else None
        segment._address = ctypes.addressof(pin) if pin is not None else 0
        segment._size = size
        segment._scope = GLOBAL_SCOPE
        segment._guard = None
        segment._view = flat
        segment._base = 0
        segment._align = segment._address & ALIGN_BITS
        segment._object = obj
        segment._pin = pin
        segment._itemsize = itemsize
        return segment

    @staticmethod
    def _over_bytes(data: bytes) -> MemorySegment:
        """A read-only segment over ``data``'s own bytes (immutable: ``data`` is its pin)."""
        segment = object.__new__(_HeapSegment)
        address = ctypes.cast(ctypes.c_char_p(data), ctypes.c_void_p).value or 0
        segment._address = address
        segment._size = len(data)
        segment._scope = GLOBAL_SCOPE
        segment._guard = None
        segment._view = memoryview(data)
        segment._base = 0
        segment._align = (address & ALIGN_BITS) | READ_ONLY_BIT
        segment._object = data
        segment._pin = data
        segment._itemsize = 1
        return segment

    def _derive(self, offset: int, size: int, read_only: bool | None = None) -> MemorySegment:
        clone = super()._derive(offset, size, read_only)
        assert isinstance(clone, _HeapSegment)
        clone._object, clone._pin, clone._itemsize = self._object, self._pin, self._itemsize
        return clone

    @property
    def address(self) -> int:
        return self._base

    def is_native(self) -> bool:
        return False

    def heap_base(self) -> Any:
        return None if self.is_read_only() else self._object

    def max_byte_alignment(self) -> int:
        return self._itemsize

    def __repr__(self) -> str:
        return (
            f"MemorySegment(heap={type(self._object).__name__}, offset={self._base}, byte_size={self._size})"
        )


_ZEROS: Final = memoryview(bytes(65536))


def _first_difference(mine: memoryview, theirs: memoryview) -> int:
    """Index of the first byte where two equally long views differ, or -1."""
    if mine == theirs:
        return -1
    low, high = 0, len(mine)
    while high - low > 64:
        middle = (low + high) // 2
        if mine[low:middle] != theirs[low:middle]:
            high = middle
        else:
            low = middle
    for index in range(low, high):
        if mine[index] != theirs[index]:
            return index
    return -1


def _terminated(view: memoryview, start: int, end: int, width: int, origin: int) -> bytes | None:
    """The bytes of ``view[start:end]`` before the first ``width``-byte NUL at a multiple of
    ``width`` from ``start``, or ``None`` when there is none.

    ``view[i]`` is the byte at address ``origin + i``.  Reads never go past the page that holds
    the terminator (chunks end at page boundaries), as ``strlen`` does: a segment that claims
    more memory than is mapped (``reinterpret(2**62)``, Java's idiom for C strings) is read
    only up to its string."""
    terminator = bytes(width)
    position = start
    end = min(end, len(view))  # (the view ends below 2**63: see MemorySegment._check_reachable)
    while True:
        page_end = (origin + position) // _PAGE * _PAGE + _PAGE - origin
        stop = min(position + _STRING_CHUNK * width, end, page_end)
        if stop - position < width:  # a code unit straddles the page boundary
            stop = min(position + width, end)
        stop -= (stop - start) % width
        if stop <= position:
            return None
        chunk = bytes(view[position:stop])
        index = chunk.find(terminator)
        while index >= 0 and index % width:
            index = chunk.find(terminator, index + 1)
        if index >= 0:
            return bytes(view[start : position + index])
        position = stop


def _encode(layout: ValueLayout, codec: Any, value: object) -> bytes:
    """``value`` as the bytes of ``layout`` (the conversion may run Python code: before any
    check); a value that does not fit is an ``OverflowError`` or ``TypeError``."""
    try:
        data: bytes = codec.pack(value)
    except (struct.error, OverflowError) as exc:
        raise _value_error(layout, value, exc) from None
    return data


def _value_error(layout: ValueLayout, value: object, exc: Exception) -> Exception:
    """Translate a ``struct`` packing error into TypeError / OverflowError."""
    if layout.carrier in "fd":
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return OverflowError(f"{value!r} is out of range for {layout.constant_name}")
        return TypeError(f"{layout.constant_name} needs a float, not {type(value).__name__}")
    if isinstance(value, int) or hasattr(value, "__index__"):
        return OverflowError(f"{value!r} is out of range for {layout._display_name} ({exc})")
    return TypeError(f"{layout._display_name} needs an int, not {type(value).__name__}")


def _segment_address(value: object) -> int:
    if not isinstance(value, MemorySegment):
        raise TypeError(f"ADDRESS needs a MemorySegment, not {type(value).__name__}")
    if not value.is_native():
        raise TypeError(f"Heap segment not allowed: {value!r}")
    return value._address


_layouts.SEGMENT_TYPE = MemorySegment
_codecs.make_address_segment = MemorySegment._make
_codecs.segment_address = _segment_address
