"""Upcalls against the C test library (``argv[1]``), cross-compiled by aarch64 gcc, and
libc's qsort and bsearch, structs and unions by value and unsigned values (the checks of
``ffm_shared.struct_upcalls``, a copy of the test package's): prints "upcalls: ok".  Run by
tests/test_aarch64_emulated.py in an emulated aarch64 CPython."""

from __future__ import annotations

import sys
from typing import Any

from ffm_shared.struct_upcalls import check_all  # type: ignore[import-not-found]  # the site's

import ffm_runtime as ffm
from ffm_runtime import (
    ADDRESS,
    JAVA_BOOLEAN,
    JAVA_BYTE,
    JAVA_CHAR,
    JAVA_DOUBLE,
    JAVA_FLOAT,
    JAVA_INT,
    JAVA_LONG,
    JAVA_SHORT,
    Arena,
    FunctionDescriptor,
    Linker,
    MemorySegment,
)

ffm.load_library(sys.argv[1])
find: Any = ffm.SymbolLookup.loader_lookup().find
linker = Linker.native_linker()
link: Any = linker.downcall_handle
INT_INT = FunctionDescriptor.of(JAVA_INT, JAVA_INT, JAVA_INT)
reports: list[Any] = []
sys.unraisablehook = reports.append


def compare(a: MemorySegment, b: MemorySegment) -> int:
    x: int = a.reinterpret(4).get(JAVA_INT, 0)
    y: int = b.reinterpret(4).get(JAVA_INT, 0)
    return (x > y) - (x < y)


qsort = link(find("qsort"), FunctionDescriptor.of_void(ADDRESS, JAVA_LONG, JAVA_LONG, ADDRESS))
call_ii = link(find("call_ii"), FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT, JAVA_INT))
on_thread = link(find("call_ii_on_new_thread"), FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT, JAVA_INT))
call_mix = link(find("call_mix"), FunctionDescriptor.of(JAVA_DOUBLE, ADDRESS, ADDRESS))
call_short = link(find("call_short"), FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT))
call_spill = link(find("call_spill"), FunctionDescriptor.of(JAVA_DOUBLE, ADDRESS))
values = [(n * 7919) % 1000 - 500 for n in range(200)]
seen: list[object] = []


def record(*arguments: object) -> float:
    seen.extend(arguments)
    return 0.5


with Arena.of_confined() as arena:
    array = arena.allocate_from(JAVA_INT, values)
    qsort(
        array,
        len(values),
        4,
        linker.upcall_stub(compare, FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS), arena),
    )
    assert [array.get_at_index(JAVA_INT, i) for i in range(len(values))] == sorted(values)
    subtract = linker.upcall_stub(lambda a, b: a - b, INT_INT, arena)
    assert call_ii(subtract, 7, 10) == -3
    assert on_thread(subtract, 7, 10) == -3
    mix = (
        JAVA_BOOLEAN,
        JAVA_BYTE,
        JAVA_CHAR,
        JAVA_SHORT,
        JAVA_INT,
        JAVA_LONG,
        JAVA_FLOAT,
        JAVA_DOUBLE,
        ADDRESS,
    )
    marker = arena.allocate(8)
    assert (
        call_mix(linker.upcall_stub(record, FunctionDescriptor.of(JAVA_DOUBLE, *mix), arena), marker) == 0.5
    )
    *numbers, pointer = seen
    assert numbers == [True, -5, 65535, -300, -70000, 1 << 40, 1.5, 2.25], numbers
    assert isinstance(pointer, MemorySegment) and pointer.address == marker.address
    negate = linker.upcall_stub(lambda x: -x, FunctionDescriptor.of(JAVA_SHORT, JAVA_INT), arena)
    assert [call_short(negate, x) for x in (2, -32767, 32768)] == [-2, 32767, -32768]
    seen.clear()
    spill = FunctionDescriptor.of(JAVA_DOUBLE, *[JAVA_LONG] * 10, *[JAVA_DOUBLE] * 10)
    assert call_spill(linker.upcall_stub(record, spill, arena)) == 0.5
    assert seen == [*range(1, 11), *(i + 0.5 for i in range(10))], seen
    assert call_ii(linker.upcall_stub(lambda a, b: 1 // 0, INT_INT, arena), 1, 2) == 0
    assert [type(r.exc_value) for r in reports] == [ZeroDivisionError]
assert call_ii(MemorySegment.of_address(subtract.address), 1, 2) == 0
assert isinstance(reports[1].exc_value, ffm.ScopeClosedError)
# a critical function calling back: refused, the critical downcall raises
critical_ii = link(
    find("call_ii"), FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT, JAVA_INT), Linker.Option.critical()
)
with Arena.of_confined() as arena:
    add = linker.upcall_stub(lambda a, b: a + b, INT_INT, arena)
    try:
        critical_ii(add, 1, 2)
    except ffm.WrongThreadError as exc:
        assert "must not call back" in str(exc), exc
    else:
        raise AssertionError("a critical function called back")
    assert call_ii(add, 1, 2) == 3
assert len(reports) == 2, reports
reports.clear()
check_all(find)
assert not reports, [str(r.exc_value) for r in reports]
print("upcalls: ok")
