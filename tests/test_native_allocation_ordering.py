"""Python code that runs in the middle of a downcall or a native allocation: a number's
conversion, or a finalizer run by the garbage collection an allocation sets off, closes the
arena or uses the allocator the native code is working with.  The call fails or completes on
memory that is still its own; nothing is written to freed memory, nothing handed out twice.
(test_operation_ordering.py covers the same for the memory operations themselves.)"""

from __future__ import annotations

import gc
import struct
import sys
from typing import Any

import pytest

from ffm_runtime import JAVA_INT, Arena, MemoryLayout, MemorySegment


class Closing:
    """An argument whose conversion closes an arena: Python code running in the middle of a
    downcall's argument handling."""

    def __init__(self, arena: Arena, value: int) -> None:
        self.arena, self.value = arena, value

    def __index__(self) -> int:
        self.arena.close()
        return self.value

    def __float__(self) -> float:
        self.arena.close()
        return float(self.value)


@pytest.mark.usefixtures("stub_site")
def test_no_segment_is_read_before_python_code_in_the_arguments_ran(native_lib: Any) -> None:
    """Numbers are converted before segments are checked: a conversion that closes the arena
    of a segment argument makes the call fail with ScopeClosedError, never write into memory
    that went back to the pool."""
    import ffm_runtime as ffm
    from ffm_runtime import ADDRESS, FunctionDescriptor, Linker

    ffm.load_library(str(native_lib))
    find = ffm.SymbolLookup.loader_lookup().find
    write_int = Linker.native_linker().downcall_handle(
        find("write_int"), FunctionDescriptor.of_void(ADDRESS, JAVA_INT)
    )
    for _ in range(3):
        arena = Arena.of_confined()
        cell = arena.allocate(4)
        with pytest.raises(ffm.ScopeClosedError, match="Already closed"):
            write_int(cell, Closing(arena, 77))
        assert not arena.is_alive()
        with Arena.of_confined() as other:  # the pooled slab comes back zeroed, unwritten
            assert other.allocate(64).to_bytes() == bytes(64)


class CloseOnCollect:
    """Garbage whose finalizer closes an arena, collected when the next object is allocated."""

    def __init__(self, arena: Arena) -> None:
        self.arena = arena
        self.cycle = self

    def __del__(self) -> None:
        self.arena.close()


#: Whether allocating an object collects garbage on the spot (CPython 3.10, 3.11).  From 3.12
#: the collector only runs at the next bytecode boundary: native code (a stub, an accelerator)
#: then runs no Python code while it allocates, and a finalizer set off by its allocation
#: runs after it returns.  The tests below check the outcome of the order that happens.
COLLECTS_AT_ALLOCATION = sys.version_info < (3, 12)


@pytest.mark.usefixtures("stub_site")
def test_struct_result_arena_closed_by_a_finalizer_during_allocation(native_lib: Any) -> None:
    """Allocating the result segment object may collect garbage; a finalizer that closes the
    arena then must make the call fail, not hand out (and write) memory of a closed arena.
    (From 3.12 the finalizer runs when the call has returned: the result is then a complete
    segment of an arena closed afterwards.)"""
    import ffm_runtime as ffm
    from ffm_runtime import FunctionDescriptor, Linker

    div = Linker.native_linker().downcall_handle(
        ffm.SymbolLookup.loader_lookup().find("div"),
        FunctionDescriptor.of(MemoryLayout.struct_layout(JAVA_INT, JAVA_INT), JAVA_INT, JAVA_INT),
    )
    thresholds = gc.get_threshold()
    arena = Arena.of_confined()
    div(arena, 1, 1)  # the arena has a slab: the stub carves from it itself
    outcome: list[object] = []
    try:
        gc.disable()
        CloseOnCollect(arena)  # unreachable from here on
        gc.set_threshold(1)
        gc.enable()  # the next object allocated, in the stub, triggers a collection
        try:
            outcome.append(div(arena, 7, 2))
        except ffm.ScopeClosedError as exc:
            outcome.append(exc)
    finally:
        gc.set_threshold(*thresholds)
        gc.enable()
    assert not arena.is_alive()
    (result,) = outcome
    if COLLECTS_AT_ALLOCATION:
        assert isinstance(result, ffm.ScopeClosedError), result
        assert str(result) == "Already closed"
    else:
        assert isinstance(result, MemorySegment) and result.byte_size == 8
        with pytest.raises(ffm.ScopeClosedError, match="Already closed"):
            result.get(JAVA_INT, 0)


def _collect_during_next_allocation(finalizer: Any) -> None:
    """Cyclic garbage whose __del__ is ``finalizer``, collected at the next allocation."""

    class Garbage:
        def __del__(self) -> None:
            finalizer()

    gc.collect()
    gc.disable()
    first, second = Garbage(), Garbage()
    first.other, second.other = second, first  # type: ignore[attr-defined]
    del first, second
    gc.set_threshold(1)
    gc.enable()


@pytest.mark.parametrize("make", [Arena.of_confined, Arena.of_auto])
def test_arena_moving_to_a_new_slab_during_native_allocation(make: Any) -> None:
    """A finalizer run by the collection inside the native Arena.allocate fills the slab:
    the new segment must still be one piece of memory (the bytes get/set reach are the
    bytes to_bytes/fill reach) and overlap no other segment."""
    arena = make()
    arena.allocate(8)
    stolen: list[MemorySegment] = []

    def fill_slab() -> None:
        if not stolen:
            stolen.append(arena.allocate(4096))
            while True:
                stolen.append(arena.allocate(4096))
                if stolen[-1].address != stolen[-2].address + 4096:
                    break

    thresholds = gc.get_threshold()
    try:
        _collect_during_next_allocation(fill_slab)
        segment = arena.allocate(16)
    finally:
        gc.set_threshold(*thresholds)
    assert stolen, "the finalizer did not run"
    # the slab filled inside the allocation (3.10, 3.11): the segment is cut after the last
    # stolen piece, in the new slab; from 3.12 the finalizer runs after the call, and the
    # stolen pieces come after the segment
    if COLLECTS_AT_ALLOCATION:
        assert segment.address == stolen[-1].address + 4096
    else:
        assert segment.address + 16 <= stolen[0].address
    segment.set(JAVA_INT, 0, 0x11111111)
    assert segment.to_bytes() == b"\x11\x11\x11\x11" + bytes(12)
    segment.fill(0x7F)
    assert segment.get(JAVA_INT, 0) == 0x7F7F7F7F
    for other in stolen:
        assert other.to_bytes() == bytes(4096)
        assert not other.address <= segment.address < other.address + 4096
    if make.__name__ == "of_confined":  # (Arena.of_confined is another object once accelerated)
        arena.close()


@pytest.mark.usefixtures("stub_site")
@pytest.mark.parametrize("kind", ["slicing", "prefix"])
def test_allocator_used_by_a_finalizer_during_a_struct_result(kind: str) -> None:
    """A finalizer run inside the stub's result allocation uses (or re-targets) the same
    slicing or prefix allocator: no reference may be released twice, no memory handed out
    twice, and the result must still be a slice of the allocator's current segment."""
    import sys

    import ffm_runtime as ffm
    from ffm_runtime import FunctionDescriptor, Linker, SegmentAllocator

    div = Linker.native_linker().downcall_handle(
        ffm.SymbolLookup.loader_lookup().find("div"),
        FunctionDescriptor.of(MemoryLayout.struct_layout(JAVA_INT, JAVA_INT), JAVA_INT, JAVA_INT),
    )
    thresholds = gc.get_threshold()
    with Arena.of_confined() as arena:
        block, other = arena.allocate(4000, 8), arena.allocate(64, 8)
        allocator = getattr(SegmentAllocator, f"{kind}_allocator")(block)
        allocator.allocate(2000)  # (beyond the small ints, which are immortal)
        taken: list[MemorySegment] = []
        old = getattr(allocator, "_offset", None)
        before = sys.getrefcount(old)

        def use_allocator() -> None:
            if not taken:
                taken.append(allocator.allocate(8, 4))
                type(allocator).__init__(allocator, other)  # type: ignore[misc]

        try:
            _collect_during_next_allocation(use_allocator)
            result = div(allocator, 17, 5)
        finally:
            gc.set_threshold(*thresholds)
        assert taken, "the finalizer did not run"
        assert (result.get(JAVA_INT, 0), result.get(JAVA_INT, 4)) == (3, 2)
        assert result.to_bytes() == struct.pack("=ii", 3, 2)
        # the allocator's segment when the result was cut: re-targeted inside the allocation
        # (3.10, 3.11), or after the call (from 3.12)
        current = other if COLLECTS_AT_ALLOCATION else block
        assert current.address <= result.address < current.address + current.byte_size
        if COLLECTS_AT_ALLOCATION or kind == "slicing":  # (a prefix allocator's results
            # all start at its segment's start: taken after the call, they are the same)
            assert not taken[0].address <= result.address < taken[0].address + 8
        if kind == "slicing":
            assert sys.getrefcount(old) == before - 1  # released once, by Python
