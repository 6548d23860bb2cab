"""Runtime objects made with ``object.__new__`` (fields never set) passed to native paths:
prints, per call, the exception it raised or "returned".  ``argv[1]``: the folder holding the
test package.  Run by tests/test_native_objects.py, with and without ``FFM_PURE_PYTHON``."""

from __future__ import annotations

import sys
from collections.abc import Callable

sys.path.insert(0, sys.argv[1])
import ffm_runtime as ffm
from ffm_runtime import JAVA_INT, Arena, FunctionDescriptor, Linker, MemoryLayout, MemorySegment
from ffm_runtime._arena import _Extras, _PrefixAllocator, _SlicingAllocator
from ffm_runtime._memory import _HeapSegment

div = Linker.native_linker().downcall_handle(
    ffm.SymbolLookup.loader_lookup().find("div"),
    FunctionDescriptor.of(MemoryLayout.struct_layout(JAVA_INT, JAVA_INT), JAVA_INT, JAVA_INT),
)
strlen = Linker.native_linker().downcall_handle(
    ffm.SymbolLookup.loader_lookup().find("strlen"), FunctionDescriptor.of(ffm.JAVA_LONG, ffm.ADDRESS)
)
arena = object.__new__(Arena)
segment = object.__new__(MemorySegment)
layout = object.__new__(ffm.ValueLayout)
extras = Arena.of_confined()
extras.allocate(8).as_memoryview().release()
extras._extra = object.__new__(_Extras)
with Arena.of_confined() as real:
    cell = real.allocate(8)
    calls: list[Callable[[], object]] = [
        lambda: arena.allocate(8),
        lambda: Arena.close(arena),
        arena.__enter__,
        lambda: segment.get(JAVA_INT, 0),
        lambda: segment.set(JAVA_INT, 0, 1),
        lambda: cell.get(layout, 0),
        lambda: cell.set(layout, 0, 1),
        lambda: div(arena, 1, 1),
        lambda: div(object.__new__(_PrefixAllocator), 1, 1),
        lambda: div(object.__new__(_SlicingAllocator), 1, 1),
        lambda: strlen(segment),
        lambda: Arena.allocate(segment, 8),  # type: ignore[arg-type]
        lambda: MemorySegment.get(arena, JAVA_INT, 0),  # type: ignore[arg-type]
        # the bulk accelerators
        segment.to_bytes,
        lambda: segment.fill(1),
        lambda: cell.copy_from(segment),
        lambda: segment.copy_from(cell),
        lambda: MemorySegment.copy(segment, 0, cell, 0, 1),
        lambda: MemorySegment.copy(cell, 0, segment, 0, 1),
        segment.get_string,
        lambda: segment.set_string(0, "x"),
        lambda: arena.allocate_from("x"),
        lambda: arena.allocate_from(JAVA_INT, 1),
        lambda: arena.allocate_from(JAVA_INT, [1, 2]),
        lambda: real.allocate_from(layout, 1),
        lambda: MemorySegment.of_array(object.__new__(_HeapSegment)),
        lambda: Arena.close(extras),
    ]
    for call in calls:
        try:
            call()
        except (AttributeError, TypeError) as exc:
            print(type(exc).__name__)
        else:
            print("returned")
arena._confinement = None  # so that its __del__ has nothing to say
