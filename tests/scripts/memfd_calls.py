"""Downcalls, upcalls and accelerators loaded under the memfd fallback (making anonymous pages
executable is refused): prints whether the runtime is accelerated and how its objects were
mapped.  ``argv[1]``: the folder holding the test package.  Run by tests/test_loader.py."""

from __future__ import annotations

import errno
import sys

sys.path.insert(0, sys.argv[1])
from ffm_runtime import _execmem

_execmem._make_executable = lambda address, length: errno.EACCES  # before anything loads
# the rest after the refusal is in place, on purpose
import ffm_runtime as ffm  # noqa: E402
from ffm_runtime import (  # noqa: E402
    ADDRESS,
    JAVA_INT,
    JAVA_LONG,
    Arena,
    FunctionDescriptor,
    Linker,
    MemoryLayout,
    MemorySegment,
    SegmentAllocator,
)
from ffm_runtime._registry import registry  # noqa: E402

find = ffm.SymbolLookup.loader_lookup().find
link = Linker.native_linker().downcall_handle
strlen = link(find("strlen"), FunctionDescriptor.of(JAVA_LONG, ADDRESS))
div = link(
    find("div"), FunctionDescriptor.of(MemoryLayout.struct_layout(JAVA_INT, JAVA_INT), JAVA_INT, JAVA_INT)
)
with Arena.of_confined() as arena:
    prefix = SegmentAllocator.prefix_allocator(arena.allocate(8, 4))
    for n in range(1, 300):
        assert strlen(arena.allocate_from("x" * (n % 40))) == n % 40
        result = div(prefix if n % 2 else arena, 1000, n)
        assert (result.get(JAVA_INT, 0), result.get(JAVA_INT, 4)) == divmod(1000, n)
# an upcall: trampolines in the file-backed code, their slots on writable anonymous pages
qsort = link(find("qsort"), FunctionDescriptor.of_void(ADDRESS, JAVA_LONG, JAVA_LONG, ADDRESS))
values = [(n * 7919) % 1000 - 500 for n in range(300)]


def compare(a: MemorySegment, b: MemorySegment) -> int:
    x: int = a.reinterpret(4).get(JAVA_INT, 0)
    y: int = b.reinterpret(4).get(JAVA_INT, 0)
    return (x > y) - (x < y)


with Arena.of_confined() as arena:
    array = arena.allocate_from(JAVA_INT, values)
    comparator = Linker.native_linker().upcall_stub(
        compare, FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS), arena
    )
    qsort(array, len(values), 4, comparator)
    assert [array.get_at_index(JAVA_INT, i) for i in range(len(values))] == sorted(values)
print(ffm.accelerated(), sorted({o.method for o in registry._objects.values()}))
