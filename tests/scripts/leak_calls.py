"""Calls one kind of handle (or accelerated method) ``argv[4]`` times, after a warm-up: prints
how much the resident memory grew, then how the reference counts of long-lived objects
changed.  ``argv[1]``: the folder holding the stubs; ``argv[2]``: the native test library;
``argv[3]``: the kind of call.  Run by tests/test_leaks_and_threads.py."""

from __future__ import annotations

import sys
from collections.abc import Callable

sys.path.insert(0, sys.argv[1])
import ffm_runtime as ffm
from ffm_runtime import ADDRESS, JAVA_DOUBLE, JAVA_INT, JAVA_LONG, FunctionDescriptor, Linker

ffm.load_library(sys.argv[2])
find = ffm.SymbolLookup.loader_lookup().find
link = Linker.native_linker().downcall_handle
id_int = link(find("id_int"), FunctionDescriptor.of(JAVA_INT, JAVA_INT))
id_int_critical = link(find("id_int"), FunctionDescriptor.of(JAVA_INT, JAVA_INT), Linker.Option.critical())
id_double = link(find("id_double"), FunctionDescriptor.of(JAVA_DOUBLE, JAVA_DOUBLE))
id_ptr = link(find("id_ptr"), FunctionDescriptor.of(ADDRESS, ADDRESS))
byte_len = link(find("byte_len"), FunctionDescriptor.of(JAVA_LONG, ADDRESS))
add = link(FunctionDescriptor.of(JAVA_INT, JAVA_INT, JAVA_INT))
add_target = find("add_int")
assert add_target is not None
div = link(
    find("div"),
    FunctionDescriptor.of(ffm.MemoryLayout.struct_layout(JAVA_INT, JAVA_INT), JAVA_INT, JAVA_INT),
)
with ffm.Arena.of_confined() as probe:
    confined_type = type(probe.allocate(1))
cell = ffm.Arena.of_auto().allocate(16, 8)
text = ffm.Arena.of_auto().allocate_from("leak check")
closed_arena = ffm.Arena.of_confined()
closed = closed_arena.allocate(8)
closed_arena.close()
BAD: dict[str, object] = {
    "raises TypeError": "x" * 3,
    "raises OverflowError": 2**40,
    "raises ScopeClosedError": closed,
    "raises count TypeError": None,
}
WATCHED: list[object] = [
    text,
    text._address,
    closed,
    closed._guard,
    add_target,
    add_target._address,
    *BAD.values(),
    True,
    False,
    id_int,
    byte_len,
    div,
    ffm.Arena,
    confined_type,
    cell,
    JAVA_INT,
    JAVA_DOUBLE,
]

# upcalls: C (sum_calls, call_ptr) calling Python through stubs
INT_INT = FunctionDescriptor.of(JAVA_INT, JAVA_INT, JAVA_INT)
sum_calls = link(find("sum_calls"), FunctionDescriptor.of(JAVA_LONG, ADDRESS, JAVA_INT))
call_ptr = link(find("call_ptr"), FunctionDescriptor.of(ADDRESS, ADDRESS, ADDRESS))


def plus(i: int, one: int) -> int:
    return i + one


def broken(i: int, one: int) -> int:
    raise KeyError(i)


def same(pointer: ffm.MemorySegment) -> ffm.MemorySegment:
    return pointer


sys.unraisablehook = lambda report: None  # (the reports of "upcall raises")
stubs = {
    name: Linker.native_linker().upcall_stub(target, descriptor, ffm.Arena.global_arena())
    for name, target, descriptor in (
        ("plus", plus, INT_INT),
        ("broken", broken, INT_INT),
        ("same", same, FunctionDescriptor.of(ADDRESS, ADDRESS)),
    )
}
WATCHED += [plus, broken, same, INT_INT, *stubs.values()]


def upcalls(name: str) -> Callable[[int], None]:
    stub = stubs[name]

    def calls(n: int) -> None:
        for _ in range(n // 1000):
            sum_calls(stub, 1000)

    return calls


def pointer_upcalls(n: int) -> None:
    stub = stubs["same"]
    for _ in range(n):
        call_ptr(stub, text)


def upcall_stubs(n: int) -> None:
    for _ in range(n // 10):
        with ffm.Arena.of_confined() as arena:
            sum_calls(Linker.native_linker().upcall_stub(plus, INT_INT, arena), 10)


def ints(n: int) -> None:
    for i in range(n):
        id_int(i)


def ints_critical(n: int) -> None:
    for i in range(n):
        id_int_critical(i)


def doubles(n: int) -> None:
    for i in range(n):
        id_double(i * 0.5)


def pointers(n: int) -> None:
    for _ in range(n):
        id_ptr(text)


def segment_arguments(n: int) -> None:
    for _ in range(n):
        byte_len(text)


def unbound(n: int) -> None:
    for i in range(n):
        add(add_target, i, 1)


def get_and_set(n: int) -> None:
    for i in range(n):
        cell.set(JAVA_INT, 4, i & 0xFFFF)
        cell.set(JAVA_DOUBLE, 8, 0.5)
        cell.get(JAVA_INT, 4)
        cell.get(JAVA_DOUBLE, 8)


def allocations(n: int) -> None:
    for _ in range(n // 1000):
        with ffm.Arena.of_confined() as arena:
            for _ in range(1000):
                arena.allocate(16)


def slow_path(n: int) -> None:
    for _ in range(n):
        try:  # noqa: SIM105  (contextlib.suppress would add an object per call to what is measured)
            cell.get(JAVA_INT, 100)
        except IndexError:
            pass
        cell.get(JAVA_INT, offset=4)


def struct_results_prefix(n: int) -> None:
    for _ in range(n // 1000):
        with ffm.Arena.of_confined() as arena:
            prefix = ffm.SegmentAllocator.prefix_allocator(arena.allocate(8, 4))
            for i in range(1000):
                kept = div(prefix, i, 7)  # noqa: F841  (held while the next call reuses the prefix)
                div(prefix, 7, i + 1)


def struct_results(n: int) -> None:
    for _ in range(n // 1000):
        with ffm.Arena.of_confined() as arena:
            for i in range(1000):
                div(arena, i, 7)


def raising(kind: str) -> Callable[[int], None]:
    bad = BAD[kind]
    handle = byte_len if kind == "raises ScopeClosedError" else id_int

    def calls(n: int) -> None:
        for _ in range(n):
            try:  # noqa: SIM105  (as in slow_path)
                handle() if bad is None else handle(bad)
            except (TypeError, OverflowError, ffm.ScopeClosedError):
                pass

    return calls


CALLS: dict[str, Callable[[int], None]] = {
    "int": ints,
    "int critical": ints_critical,
    "double": doubles,
    "pointer in and out": pointers,
    "segment argument": segment_arguments,
    "unbound": unbound,
    "segment get and set": get_and_set,
    "arena allocate": allocations,
    "accelerator slow path": slow_path,
    "struct result, prefix allocator": struct_results_prefix,
    "struct result": struct_results,
    **{kind: raising(kind) for kind in BAD},
    "upcall": upcalls("plus"),
    "upcall raises": upcalls("broken"),
    "pointer upcall": pointer_upcalls,
    "upcall stub per arena": upcall_stubs,
}


def rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096


def references() -> list[int]:
    counts = []
    for index in range(len(WATCHED)):
        counts.append(sys.getrefcount(WATCHED[index]))
    return counts


kind, count = sys.argv[3], int(sys.argv[4])
call = CALLS[kind]
call(count // 10)  # warm up
before = rss()
start = references()
call(count)
end = references()
print(rss() - before)
print([end[i] - start[i] for i in range(len(start))])
