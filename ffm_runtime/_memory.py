"""Memory segments and arenas (the part of the memory model downcalls need).

A :class:`MemorySegment` is a bounded view of native memory with a scope.
Segments of the global scope (``MemorySegment.NULL``, ``of_address``, pointers
returned by downcalls) are always alive; segments allocated in a confined
arena are usable only while the arena is open and only from its owner thread.

Downcall stubs read a segment's raw address from the ``_ffm_address`` slot.
Segments usable from any thread at any time are exactly of type
``MemorySegment``; segments of a confined arena are of a private subclass with
a ``_ffm_guard`` slot shared with their arena: a one-element list holding the
owner thread's ident, 0 once the arena is closed.  So a closed or
foreign-thread segment is refused before the native call, with no Python code
on the path.
"""

from __future__ import annotations

import ctypes
import sys
import threading
import weakref
from typing import Any, ClassVar, Final

from ._errors import (
    OutOfBoundsError,
    ScopeClosedError,
    UnsupportedOperationError,
    UnsupportedPlatformError,
    WrongThreadError,
)

__all__ = ["Arena", "MemorySegment", "Scope"]

_MAX_ADDRESS: Final = (1 << 64) - 1
_STRING_CHUNK: Final = 256

try:
    _libc = ctypes.CDLL(None)
    _calloc: Any = _libc.calloc
    _calloc.restype = ctypes.c_void_p
    _calloc.argtypes = (ctypes.c_size_t, ctypes.c_size_t)
    _aligned_alloc: Any = _libc.aligned_alloc
    _aligned_alloc.restype = ctypes.c_void_p
    _aligned_alloc.argtypes = (ctypes.c_size_t, ctypes.c_size_t)
    _free: Any = _libc.free
    _free.restype = None
    _free.argtypes = (ctypes.c_void_p,)
except (OSError, TypeError, AttributeError):  # no C library reachable this way
    def _calloc(count: int, size: int) -> int:
        raise UnsupportedPlatformError(
            f"native memory allocation is not supported on {sys.platform}")

    _aligned_alloc = _calloc
    _free = None


def _check_int(value: object, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{what} must be an int, not {type(value).__name__}")
    return value


class Scope:
    """The lifetime of a group of segments (Java's ``MemorySegment.Scope``)."""

    __slots__ = ()

    def is_alive(self) -> bool:
        """Whether the segments of this scope may still be accessed."""
        return True

    def _check(self) -> None:
        """Raise unless the current thread may access segments of this scope now."""

    def _guard(self) -> list[int] | None:
        """The confinement guard stubs check (``None``: no check needed)."""
        return None


class _GlobalScope(Scope):
    __slots__ = ()

    def __repr__(self) -> str:
        return "<global scope>"


GLOBAL_SCOPE: Final = _GlobalScope()


class MemorySegment:
    """A contiguous region of native memory: an address, a size and a scope."""

    __slots__ = ("__weakref__", "_address", "_scope", "_size")

    NULL: ClassVar[MemorySegment]

    _address: int
    _size: int
    _scope: Scope

    def __new__(cls, *args: object, **kwargs: object) -> MemorySegment:
        raise TypeError("MemorySegment cannot be created directly: use Arena.allocate(), "
                        "MemorySegment.of_address() or a downcall result")

    @classmethod
    def _make(cls, address: int, byte_size: int, scope: Scope = GLOBAL_SCOPE) -> MemorySegment:
        guard = scope._guard()
        if guard is None:
            segment = object.__new__(MemorySegment)
        else:
            segment = object.__new__(_ConfinedSegment)
            segment._ffm_guard = guard  # type: ignore[attr-defined]  # slot of the subclass
        segment._address = address
        segment._size = byte_size
        segment._scope = scope
        return segment

    # -- construction -----------------------------------------------------------------
    @staticmethod
    def of_address(address: int) -> MemorySegment:
        """A zero-length segment at ``address`` in the global scope (Java's ``ofAddress``)."""
        _check_int(address, "address")
        if not 0 <= address <= _MAX_ADDRESS:
            raise OverflowError(f"address {address} is outside [0, 2**64 - 1]")
        return MemorySegment.NULL if address == 0 else MemorySegment._make(address, 0)

    # -- properties -------------------------------------------------------------------
    @property
    def address(self) -> int:
        """The native address of the first byte."""
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
        """Always true: every segment here is native memory."""
        return True

    # -- access -----------------------------------------------------------------------
    def _check_access(self, offset: int, length: int) -> None:
        self._scope._check()
        if offset < 0 or length < 0 or offset > self._size - length:
            raise OutOfBoundsError(
                f"Out of bound access on segment {self!r}; new offset = {offset}; "
                f"new length = {length}", offset, length)

    def get_string(self, offset: int = 0) -> str:
        """Read a NUL-terminated UTF-8 string starting at ``offset``."""
        _check_int(offset, "offset")
        self._check_access(offset, 0)
        chunks = []
        position = offset
        while True:
            length = min(_STRING_CHUNK, self._size - position)
            if length <= 0:
                raise OutOfBoundsError(
                    f"No string terminator found in segment {self!r} after offset {offset}",
                    offset, self._size - offset)
            chunk = ctypes.string_at(self._address + position, length)
            end = chunk.find(b"\0")
            if end >= 0:
                chunks.append(chunk[:end])
                return b"".join(chunks).decode("utf-8", errors="replace")
            chunks.append(chunk)
            position += length

    def reinterpret(self, new_size: int) -> MemorySegment:
        """The same address and scope with another size (restricted, like Java's)."""
        from ._access import ensure_native_access

        ensure_native_access("MemorySegment.reinterpret")
        _check_int(new_size, "new_size")
        if new_size < 0:
            raise ValueError(f"Invalid size: {new_size}")
        return MemorySegment._make(self._address, new_size, self._scope)

    def to_bytes(self) -> bytes:
        """A copy of the segment's contents."""
        self._check_access(0, self._size)
        return ctypes.string_at(self._address, self._size)

    # -- value semantics --------------------------------------------------------------
    def __eq__(self, other: object) -> bool:
        if not isinstance(other, MemorySegment):
            return NotImplemented
        return self._address == other._address and self._size == other._size

    def __hash__(self) -> int:
        return hash((self._address, self._size))

    def __repr__(self) -> str:
        return f"MemorySegment(address={self._address:#x}, byte_size={self._size})"


# The stub-facing name of the raw address: for plain segments, the slot itself.
MemorySegment._ffm_address = MemorySegment.__dict__["_address"]  # type: ignore[attr-defined]
MemorySegment.NULL = MemorySegment._make(0, 0)


class _ConfinedSegment(MemorySegment):
    """A segment of a confined arena; ``_ffm_guard`` is the arena's confinement guard."""

    __slots__ = ("_ffm_guard",)


class Arena(Scope):
    """Owner of native memory; ``with Arena.of_confined() as arena:`` frees it at the end."""

    __slots__ = ("__weakref__", "_alive", "_blocks", "_closeable", "_confinement", "_finalizer",
                 "_owner")

    _alive: bool
    _owner: int | None
    _closeable: bool
    _blocks: list[int]
    _finalizer: Any
    _confinement: list[int] | None

    def __init__(self, owner: int | None, closeable: bool) -> None:
        # Internal: use the factory methods.
        self._alive = True
        self._owner = owner
        self._confinement = None if owner is None and not closeable else [owner or 0]
        self._closeable = closeable
        self._blocks = []
        self._finalizer = None

    # -- factories ----------------------------------------------------------------------
    @staticmethod
    def of_confined() -> Arena:
        """An arena usable only by the calling thread; ``close()`` frees its memory."""
        return Arena(threading.get_ident(), closeable=True)

    @staticmethod
    def of_auto() -> Arena:
        """An arena whose memory is freed once it and all its segments are unreachable."""
        arena = Arena(None, closeable=False)
        arena._finalizer = weakref.finalize(arena, _free_blocks, arena._blocks)
        return arena

    @staticmethod
    def global_arena() -> Arena:
        """The arena whose memory is never freed."""
        return _GLOBAL_ARENA

    @staticmethod
    def of_shared() -> Arena:
        """Not supported: raises :class:`UnsupportedOperationError`, as GraalVM does."""
        raise UnsupportedOperationError(
            "Shared arenas are currently not supported; use Arena.of_confined() per thread, "
            "Arena.of_auto() or Arena.global_arena()")

    # -- scope --------------------------------------------------------------------------
    def is_alive(self) -> bool:
        return self._alive

    def _check(self) -> None:
        if not self._alive:
            raise ScopeClosedError("Already closed")
        if self._owner is not None and self._owner != threading.get_ident():
            raise WrongThreadError("Attempted access outside owning thread")

    def _guard(self) -> list[int] | None:
        return self._confinement

    @property
    def scope(self) -> Scope:
        """The scope of the segments this arena allocates (the arena itself)."""
        return self

    # -- allocation ---------------------------------------------------------------------
    def allocate(self, byte_size: int, byte_alignment: int = 1) -> MemorySegment:
        """Allocate ``byte_size`` zeroed bytes aligned to ``byte_alignment``."""
        _check_int(byte_size, "byte_size")
        _check_int(byte_alignment, "byte_alignment")
        if byte_size < 0:
            raise ValueError(f"Invalid allocation size : {byte_size}")
        if byte_alignment <= 0 or byte_alignment & (byte_alignment - 1):
            raise ValueError(f"Invalid alignment constraint : {byte_alignment}")
        self._check()
        size = max(byte_size, 1)
        if byte_alignment <= 16:
            address = _calloc(1, size)
        else:
            rounded = (size + byte_alignment - 1) // byte_alignment * byte_alignment
            address = _aligned_alloc(byte_alignment, rounded)
            if address:
                ctypes.memset(address, 0, rounded)
        if not address:
            raise MemoryError(f"cannot allocate {byte_size} bytes")
        self._blocks.append(address)
        return MemorySegment._make(address, byte_size, self)

    def allocate_from(self, value: str) -> MemorySegment:
        """A NUL-terminated UTF-8 copy of ``value``."""
        if not isinstance(value, str):
            raise TypeError(f"allocate_from() takes a str, not {type(value).__name__}")
        data = value.encode("utf-8")
        segment = self.allocate(len(data) + 1)
        ctypes.memmove(segment._address, data, len(data))
        return segment

    # -- lifetime -----------------------------------------------------------------------
    def close(self) -> None:
        """Free all memory of this arena; its segments can no longer be used."""
        if not self._closeable:
            kind = "global" if self is _GLOBAL_ARENA else "automatic"
            raise UnsupportedOperationError(f"Attempted to close a non-closeable ({kind}) arena")
        self._check()
        self._alive = False
        if self._confinement is not None:
            self._confinement[0] = 0
        _free_blocks(self._blocks)

    def __enter__(self) -> Arena:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "alive" if self._alive else "closed"
        return f"<Arena {state} owner={self._owner}>"


def _free_blocks(blocks: list[int]) -> None:
    for address in blocks:
        _free(address)
    blocks.clear()


_GLOBAL_ARENA: Final = Arena(None, closeable=False)
