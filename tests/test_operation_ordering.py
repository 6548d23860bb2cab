"""Python code that runs in the middle of a memory operation cannot make it touch freed memory.

A finalizer (run by the cycle collector at an allocation, or since CPython 3.12 at the next
bytecode boundary), a signal handler, or a value's ``__index__``/``__float__`` can close a
confined arena while an operation on one of its segments is running.  Every operation must
then either raise, or complete on memory that is still the arena's: closing is refused while
an operation holds the arena (``ScopeInUseError``), and conversions run before the check.

The tests make the ordering happen on every CPython: a tracer closes the arena before each
bytecode of the runtime's own Python code in turn (the operation's "explicit finalizer"), a
value closes it from ``__index__``/``__float__``, and a reference cycle with a finalizer is
collected during the operation.  Whenever a close succeeds, the arena's slab is at once
handed to another arena and filled with a sentinel, so a write after the close shows in the
sentinel and a read after the close returns sentinel bytes.
"""

from __future__ import annotations

import ctypes
import gc
import struct
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

import pytest

import ffm_runtime
from ffm_runtime import (
    ADDRESS,
    JAVA_DOUBLE,
    JAVA_INT,
    JAVA_LONG,
    Arena,
    MemoryLayout,
    MemorySegment,
    PathElement,
    ScopeClosedError,
    ScopeInUseError,
    SegmentAllocator,
    VarHandle,
)

SENTINEL = 0x5A
PATTERN = bytes(range(1, 64)) + b"\0"  # the arena's bytes before an operation (no sentinel)
SLAB = ffm_runtime._contract.ARENA_SLAB_SIZE


@dataclass
class Closer:
    """Closes ``arena`` once, when asked; then hands its slab to a thief arena and fills it."""

    arena: Arena
    fired: bool = False
    where: str = ""  # the runtime's code that was about to run, for failure messages
    refused: list[str] = field(default_factory=list)
    thieves: list[tuple[Arena, int]] = field(default_factory=list)

    def __call__(self) -> None:
        if self.fired:
            return
        self.fired = True
        slab = self.arena._slab  # type: ignore[attr-defined]
        try:
            self.arena.close()
        except ScopeInUseError as exc:
            self.refused.append(str(exc))
            return
        if slab is None:
            return
        thief = Arena.of_confined()  # takes the slab just pooled (the pool is a stack)
        if thief._slab is not slab:  # type: ignore[attr-defined]
            thief.close()  # kept for the views it exported: not reused, nothing to watch
            return
        ctypes.memset(slab[1], SENTINEL, SLAB)
        self.thieves.append((thief, slab[1]))

    def check_untouched(self) -> None:
        """No byte of a slab the arena gave back was written after it was given back."""
        for thief, start in self.thieves:
            assert ctypes.string_at(start, SLAB) == bytes([SENTINEL]) * SLAB, (
                "a write landed in memory the closed arena had given back"
            )
            thief.close()


def _traced(frame: FrameType) -> bool:
    name = frame.f_globals.get("__name__", "")
    return isinstance(name, str) and name.partition(".")[0] == "ffm_runtime"


def run_closing_at(step: int, closer: Closer, operation: Callable[[], Any]) -> tuple[bool, Any]:
    """Run ``operation``; before the ``step``-th bytecode of the runtime's Python code, run
    ``closer``.  Returns (whether that step was reached, the outcome)."""
    count = 0

    def trace(frame: FrameType, event: str, arg: Any) -> Any:
        nonlocal count
        if not _traced(frame):
            return None
        frame.f_trace_opcodes = True
        if event == "opcode":
            if count == step:
                closer.where = f"{frame.f_code.co_filename}:{frame.f_lineno} {frame.f_code.co_name}"
                closer()
            count += 1
        return trace

    previous = sys.gettrace()
    sys.settrace(trace)
    try:
        outcome: Any = ("value", operation())
    except Exception as exc:
        outcome = ("raised", exc)
    finally:
        sys.settrace(previous)
    return count > step, outcome


# -- the operations ------------------------------------------------------------------------
#: name -> make(segment, arena) -> (operation, check(result)); ``segment`` is 64 bytes of
#: ``arena`` holding PATTERN.  ``check`` asserts a normal result is made of the arena's bytes.


def _equal(expected: object) -> Callable[[object], None]:
    def check(result: object) -> None:
        assert result == expected, result

    return check


def _wrote(segment: MemorySegment, offset: int, data: bytes) -> Callable[[object], None]:
    """The write is visible through the segment (when the arena is still open)."""

    def check(result: object) -> None:
        if segment.scope.is_alive():
            assert segment.to_bytes()[offset : offset + len(data)] == data

    return check


def _no_check(result: object) -> None:
    pass


def _segment_of(size: int) -> Callable[[object], None]:
    def check(result: object) -> None:
        assert isinstance(result, MemorySegment) and result.byte_size == size, result

    return check


def _int_at(offset: int) -> int:
    value: int = struct.unpack_from("<i", PATTERN, offset)[0]
    return value


class Offset(int):
    """An int subclass offset: the runtime converts it."""


POINT = MemoryLayout.struct_layout(JAVA_INT.with_name("x"), JAVA_INT.with_name("y"))
ARRAY = MemoryLayout.sequence_layout(16, JAVA_INT)
BIG_LONG = JAVA_LONG.with_order("big")
Operation = tuple[Callable[[], Any], Callable[[Any], None]]


def operations(segment: MemorySegment, arena: Arena) -> dict[str, Operation]:
    """Every public operation that reads or writes memory, or allocates it, through Python
    code: name -> (operation, check of a normal result)."""
    other = Arena.of_auto().allocate(64)
    other.copy_from(MemorySegment.of_array(bytearray(range(100, 164))))
    element = ARRAY.var_handle(PathElement.sequence_element())
    member = POINT.var_handle(PathElement.group_element("y"))
    return {
        "get": (lambda: segment.get(JAVA_INT, 8), _equal(_int_at(8))),
        "get big-endian": (lambda: segment.get(BIG_LONG, 8), _equal(struct.unpack_from(">q", PATTERN, 8)[0])),
        "get address": (
            lambda: segment.get(ADDRESS, 8).address,
            _equal(struct.unpack_from("<Q", PATTERN, 8)[0]),
        ),
        "get int-subclass offset": (lambda: segment.get(JAVA_INT, Offset(8)), _equal(_int_at(8))),
        "get_at_index": (lambda: segment.get_at_index(JAVA_INT, 3), _equal(_int_at(12))),
        "VarHandle.get": (lambda: element.get(segment, 0, 5), _equal(_int_at(20))),
        "set": (lambda: segment.set(JAVA_INT, 8, 77), _wrote(segment, 8, b"M\0\0\0")),
        "set big-endian": (lambda: segment.set(BIG_LONG, 8, 77), _wrote(segment, 8, struct.pack(">q", 77))),
        "set double": (lambda: segment.set(JAVA_DOUBLE, 8, 2.5), _wrote(segment, 8, struct.pack("<d", 2.5))),
        "set address": (lambda: segment.set(ADDRESS, 8, MemorySegment.NULL), _wrote(segment, 8, bytes(8))),
        "set_at_index": (lambda: segment.set_at_index(JAVA_INT, 2, 77), _wrote(segment, 8, b"M\0\0\0")),
        "VarHandle.set": (lambda: member.set(segment, 8, 77), _wrote(segment, 12, b"M\0\0\0")),
        "fill": (lambda: segment.fill(7), _wrote(segment, 0, bytes([7]) * 64)),
        "copy_from": (lambda: segment.copy_from(other), _wrote(segment, 0, bytes(range(100, 164)))),
        "copy into": (
            lambda: MemorySegment.copy(other, 0, segment, 4, 16),
            _wrote(segment, 4, bytes(range(100, 116))),
        ),
        "copy out of": (lambda: MemorySegment.copy(segment, 4, other, 0, 16), lambda _: None),
        "copy elements, swapped": (
            lambda: MemorySegment.copy(other, JAVA_INT, 0, segment, JAVA_INT.with_order("big"), 0, 4),
            _wrote(segment, 0, bytes([103, 102, 101, 100])),
        ),
        "mismatch": (lambda: segment.mismatch(other), _equal(0)),
        "to_bytes": (segment.to_bytes, _equal(PATTERN)),
        "to_array": (lambda: list(segment.to_array(JAVA_INT)), _equal(list(struct.unpack("<16i", PATTERN)))),
        "as_memoryview": (segment.as_memoryview, lambda view: _equal(PATTERN)(bytes(view))),
        "get_string": (lambda: segment.get_string(60), _equal(PATTERN[60:63].decode())),
        "get_string(offset, charset, byte_length)": (
            lambda: segment.get_string(60, "utf-8", 4),
            _equal(PATTERN[60:64].decode()),
        ),
        "set_string": (lambda: segment.set_string(4, "hi"), _wrote(segment, 4, b"hi\0")),
        "as_slice": (lambda: segment.as_slice(8, 8).address, _equal(segment.address + 8)),
        "allocate": (lambda: arena.allocate(24, 8), _segment_of(24)),
        "allocate(layout, count)": (lambda: arena.allocate(JAVA_LONG, 3), _segment_of(24)),
        "allocate(struct layout)": (
            lambda: arena.allocate(MemoryLayout.struct_layout(JAVA_INT, JAVA_INT, JAVA_DOUBLE)),
            _segment_of(16),
        ),
        "allocate a block": (lambda: arena.allocate(8192), _segment_of(8192)),
        "allocate_from(text)": (lambda: arena.allocate_from("hello"), _segment_of(6)),
        "allocate_from(layout, value)": (lambda: arena.allocate_from(JAVA_INT, 77), _segment_of(4)),
        "allocate_from(layout, values)": (lambda: arena.allocate_from(JAVA_INT, [1, 2, 3]), _segment_of(12)),
        "allocate_from(ADDRESS, values)": (
            lambda: arena.allocate_from(ADDRESS, [MemorySegment.NULL]),
            _segment_of(8),
        ),
        "slicing allocator": (
            lambda: SegmentAllocator.slicing_allocator(segment).allocate_from(JAVA_INT, 77),
            _segment_of(4),
        ),
        "prefix allocator": (
            lambda: SegmentAllocator.prefix_allocator(segment).allocate_from(JAVA_INT, [7, 8]),
            _segment_of(8),
        ),
    }


#: the arenas that can be closed, by kind
KINDS = {"confined": Arena.of_confined, "shared": Arena.of_shared}
#: what a refused close says, by kind
REFUSALS = {
    "confined": "an operation on its memory is in progress",
    "shared": "Session is acquired by 1 client",
}


def fresh_arena(kind: str = "confined") -> tuple[Arena, MemorySegment]:
    arena = KINDS[kind]()
    segment = arena.allocate(64, 8)
    segment.copy_from(MemorySegment.of_array(bytearray(PATTERN)))
    return arena, segment


def _names() -> list[str]:
    arena, segment = fresh_arena()
    with arena:
        return list(operations(segment, arena))


OPERATIONS = _names()
#: the public methods the operations above exercise, by the class that defines them
COVERED = {
    "MemorySegment": {
        "get",
        "set",
        "get_at_index",
        "set_at_index",
        "fill",
        "copy_from",
        "copy",
        "mismatch",
        "to_bytes",
        "to_array",
        "as_memoryview",
        "get_string",
        "set_string",
        "as_slice",
    },
    "SegmentAllocator": {"allocate", "allocate_from", "slicing_allocator", "prefix_allocator"},
    # allocate_from is inherited, except that its accelerator is installed on Arena itself
    "Arena": {"allocate"} | ({"allocate_from"} if ffm_runtime.accelerated() else set()),
    "VarHandle": {"get", "set"},
}
#: public methods and properties that neither touch nor allocate memory
NO_MEMORY = {
    "MemorySegment": {
        "NULL",
        "address",
        "byte_size",
        "scope",
        "is_native",
        "heap_base",
        "is_read_only",
        "as_read_only",
        "is_accessible_by",
        "max_byte_alignment",
        "of_address",
        "of_array",
        "reinterpret",
    },
    "SegmentAllocator": set(),
    "Arena": {"is_alive", "close", "global_arena", "of_auto", "of_confined", "of_shared", "scope"},
    "VarHandle": {"layout"},
}


def test_every_memory_operation_is_covered() -> None:
    """A public method added later gets an ordering test, or is declared memory-free."""
    for cls in (MemorySegment, SegmentAllocator, Arena, VarHandle):
        public = {name for name in vars(cls) if not name.startswith("_")}
        assert public - COVERED[cls.__name__] - NO_MEMORY[cls.__name__] == set(), cls
        assert COVERED[cls.__name__] <= public, cls


def check_outcome(name: str, closer: Closer, segment: MemorySegment, outcome: tuple[str, Any]) -> None:
    """The operation raised ScopeClosedError after a close, or its result is the arena's."""
    closer.check_untouched()
    kind, value = outcome
    if kind == "raised":
        assert isinstance(value, ScopeClosedError) and closer.thieves, repr(value)
        return
    if isinstance(value, memoryview):
        closed = closer.fired and not closer.refused
        try:
            address = ctypes.addressof(ctypes.c_char.from_buffer(value))
        except ValueError:  # released by the close, as documented
            assert closed, "a view released while its arena is open"
            return
        for _, start in closer.thieves:
            assert not start <= address < start + SLAB, "a view of memory given back"
    check = operations(segment, closer.arena)[name][1]
    check(value)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("name", OPERATIONS)
def test_closing_before_each_bytecode(name: str, kind: str) -> None:
    """A close before bytecode 0, 1, 2, ... of the runtime's Python code, in turn."""
    step = 0
    while True:
        arena, segment = fresh_arena(kind)
        closer = Closer(arena)
        reached, outcome = run_closing_at(step, closer, operations(segment, arena)[name][0])
        try:
            check_outcome(name, closer, segment, outcome)
        except AssertionError as exc:
            raise AssertionError(f"closed before step {step}, at {closer.where}: {exc}") from None
        for message in closer.refused:
            assert REFUSALS[kind] in message
        if arena.is_alive():
            arena.close()
        if not reached:
            break
        step += 1


class Closing:
    """A number whose conversion closes the arena first."""

    def __init__(self, closer: Closer, value: int) -> None:
        self.closer = closer
        self.value = value

    def __index__(self) -> int:
        self.closer()
        return self.value

    def __float__(self) -> float:
        self.closer()
        return float(self.value)


def _values_closing(closer: Closer) -> Iterator[int]:
    yield 1
    closer()
    yield 2


CONVERTING: dict[str, Callable[[MemorySegment, Arena, Closer], Any]] = {
    "set": lambda segment, arena, closer: segment.set(JAVA_INT, 8, Closing(closer, 77)),
    "set double": lambda segment, arena, closer: segment.set(JAVA_DOUBLE, 8, Closing(closer, 2)),
    "set big-endian": lambda segment, arena, closer: segment.set(BIG_LONG, 8, Closing(closer, 7)),
    "set_at_index": lambda segment, arena, closer: segment.set_at_index(JAVA_INT, 2, Closing(closer, 77)),
    "VarHandle.set": lambda segment, arena, closer: POINT.var_handle(PathElement.group_element("y")).set(
        segment, 8, Closing(closer, 77)
    ),
    "allocate_from(layout, value)": lambda segment, arena, closer: arena.allocate_from(
        JAVA_INT, Closing(closer, 77)
    ),
    "allocate_from(layout, values)": lambda segment, arena, closer: arena.allocate_from(
        JAVA_INT, [1, Closing(closer, 77), 3]
    ),
    "allocate_from(double, values)": lambda segment, arena, closer: arena.allocate_from(
        JAVA_DOUBLE, [1.5, Closing(closer, 2)]
    ),
    "allocate_from(layout, iterable)": lambda segment, arena, closer: arena.allocate_from(
        JAVA_INT, _values_closing(closer)
    ),
}


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("name", CONVERTING)
def test_a_value_closing_the_arena(name: str, kind: str) -> None:
    """Values are converted before the check: a conversion that closes the arena makes the
    operation raise, and nothing is written to the memory the arena gave back."""
    arena, segment = fresh_arena(kind)
    closer = Closer(arena)
    with pytest.raises(ScopeClosedError, match="Already closed"):
        CONVERTING[name](segment, arena, closer)
    assert closer.fired and not closer.refused and closer.thieves
    closer.check_untouched()


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("name", OPERATIONS)
def test_a_finalizer_in_a_cycle_closing_the_arena(name: str, kind: str) -> None:
    """The cycle collector runs a finalizer that closes the arena at the operation's first
    allocation (CPython 3.10, 3.11) or bytecode boundary (3.12 and later)."""
    arena, segment = fresh_arena(kind)
    closer = Closer(arena)
    operation = operations(segment, arena)[name][0]

    class Cycle:
        def __init__(self) -> None:
            self.me = self

        def __del__(self) -> None:
            closer()

    threshold = gc.get_threshold()
    gc.collect()
    gc.set_threshold(1)
    try:
        Cycle()
        try:
            outcome: tuple[str, Any] = ("value", operation())
        except Exception as exc:
            outcome = ("raised", exc)
    finally:
        gc.set_threshold(*threshold)
    gc.collect()
    assert closer.fired
    check_outcome(name, closer, segment, outcome)
    if arena.is_alive():
        arena.close()
