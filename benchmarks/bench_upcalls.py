"""Cost of upcalls (C calling Python) against ctypes and cffi: libc's qsort of 100,000 ints
with a Python comparator, and with one that only returns 0, in one run.

Run after ``make demo`` (example_project's Feature registers qsort and the comparator shapes)::

    FFM_ENABLE_NATIVE_ACCESS=__main__ .demo-venv/bin/python benchmarks/bench_upcalls.py

Every repeat sorts a fresh copy of the same random ints (the copy is not timed) with one
``qsort`` call; a row is the fastest repeat's time divided by the number of comparisons qsort
made, in nanoseconds per callback.  glibc's qsort makes the same comparisons for the same
comparator results, so they are counted once per comparator, outside the timing.  The
comparators read both ints and return -1, 0 or 1: hatch-ffm's through segments sized by the
descriptor's target layout (``ADDRESS.with_target_layout(JAVA_INT)``) or zero-length ones
resized with ``reinterpret(4)``, ctypes' through ``POINTER(c_int)``, cffi's through
``int *``; every sorted result is checked against ``sorted()``, outside the timing.  The
constant comparator (the cost of entering Python from C and back) takes plain pointers:
``ADDRESS``, ``c_void_p``, ``void *``.  Goals (issue 13): the sort at least twice as fast as
with ctypes and with cffi, the constant callback at least four times as fast as ctypes'.
"""

from __future__ import annotations

import argparse
import ctypes
import platform
import random
import sys
import time
from collections.abc import Callable
from typing import Any

SORT, CONSTANT = "qsort, compare ints", "qsort, comparator returns 0"
FFM_SIZED = "hatch-ffm, ADDRESS.with_target_layout(JAVA_INT), a.get(JAVA_INT, 0)"
FFM_PLAIN = "hatch-ffm, ADDRESS, a.reinterpret(4).get(JAVA_INT, 0)"
CTYPES_SORT = "ctypes, CFUNCTYPE(c_int, POINTER(c_int), POINTER(c_int)), a[0]"
CFFI_SORT = 'cffi ABI, ffi.callback("int(int *, int *)"), a[0]'
FFM_CONSTANT = "hatch-ffm, ADDRESS"
CTYPES_CONSTANT = "ctypes, CFUNCTYPE(c_int, c_void_p, c_void_p)"
CFFI_CONSTANT = 'cffi ABI, ffi.callback("int(void *, void *)")'
#: each group's peers (for the ratio columns)
PEERS = {SORT: (CTYPES_SORT, CFFI_SORT), CONSTANT: (CTYPES_CONSTANT, CFFI_CONSTANT)}
#: (group, hatch-ffm row, peer row, goal as the peer's time / hatch-ffm's)
GOALS = (
    (SORT, FFM_SIZED, CTYPES_SORT, 2.0),
    (SORT, FFM_SIZED, CFFI_SORT, 2.0),
    (CONSTANT, FFM_CONSTANT, CTYPES_CONSTANT, 4.0),
)

#: one qsort of a fresh copy of the input: (time of the qsort call in ns, the sorted ints)
Run = Callable[[], tuple[int, Callable[[], list[int]]]]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--number", type=int, default=100_000, help="ints sorted per repeat")
    parser.add_argument("--repeat", type=int, default=5, help="sorts per row; the fastest is kept")
    args = parser.parse_args()

    import ffm_runtime as ffm
    from ffm_runtime import ADDRESS, JAVA_INT, JAVA_LONG, Arena, FunctionDescriptor, Linker, MemorySegment

    rng = random.Random(13)
    values = [rng.randrange(-(2**31), 2**31) for _ in range(args.number)]
    count = len(values)
    # the stubs, CFUNCTYPE objects and cffi callbacks, alive for the whole run
    keep: list[object] = []

    # hatch-ffm: qsort with the default options (it calls back: never critical)
    linker = Linker.native_linker()
    qsort_address = linker.default_lookup().find("qsort")
    if qsort_address is None:
        raise LookupError("qsort not found in libc")
    ffm_qsort: Any = linker.downcall_handle(
        qsort_address, FunctionDescriptor.of_void(ADDRESS, JAVA_LONG, JAVA_LONG, ADDRESS)
    )
    int_pointer = ADDRESS.with_target_layout(JAVA_INT)
    sized = FunctionDescriptor.of(JAVA_INT, int_pointer, int_pointer)
    plain = FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS)
    arena = Arena.of_confined()
    ffm_source = arena.allocate_from(JAVA_INT, values)
    ffm_array = arena.allocate(ffm_source.byte_size, 4)

    def ffm_sized(a: MemorySegment, b: MemorySegment) -> int:
        x = a.get(JAVA_INT, 0)
        y = b.get(JAVA_INT, 0)
        return (x > y) - (x < y)

    def ffm_plain(a: MemorySegment, b: MemorySegment) -> int:
        x = a.reinterpret(4).get(JAVA_INT, 0)
        y = b.reinterpret(4).get(JAVA_INT, 0)
        return (x > y) - (x < y)

    def ffm_run(compare: Callable[..., int], descriptor: FunctionDescriptor) -> Run:
        stub = linker.upcall_stub(compare, descriptor, arena)
        keep.append(stub)

        def run() -> tuple[int, Callable[[], list[int]]]:
            MemorySegment.copy(ffm_source, 0, ffm_array, 0, ffm_source.byte_size)
            start = time.perf_counter_ns()
            ffm_qsort(ffm_array, count, 4, stub)
            return time.perf_counter_ns() - start, lambda: list(ffm_array.to_array(JAVA_INT))

        return run

    # ctypes: libc's qsort through CDLL, CFUNCTYPE comparators
    libc_qsort = ctypes.CDLL(None).qsort
    libc_qsort.restype = None
    libc_qsort.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_size_t, ctypes.c_void_p)
    c_source = (ctypes.c_int * count)(*values)
    c_array = (ctypes.c_int * count)()
    c_int_p = ctypes.POINTER(ctypes.c_int)

    def c_compare(a: Any, b: Any) -> int:
        x = a[0]
        y = b[0]
        return (x > y) - (x < y)

    def c_run(compare: Callable[..., int], prototype: Any) -> Run:
        callback = prototype(compare)
        keep.append(callback)

        def run() -> tuple[int, Callable[[], list[int]]]:
            ctypes.memmove(c_array, c_source, ctypes.sizeof(c_source))
            start = time.perf_counter_ns()
            libc_qsort(c_array, count, 4, callback)
            return time.perf_counter_ns() - start, lambda: list(c_array)

        return run

    rows: list[tuple[str, str, Run]] = [
        (SORT, FFM_SIZED, ffm_run(ffm_sized, sized)),
        (SORT, FFM_PLAIN, ffm_run(ffm_plain, plain)),
        (SORT, CTYPES_SORT, c_run(c_compare, ctypes.CFUNCTYPE(ctypes.c_int, c_int_p, c_int_p))),
        (CONSTANT, FFM_CONSTANT, ffm_run(lambda a, b: 0, plain)),
        (
            CONSTANT,
            CTYPES_CONSTANT,
            c_run(lambda a, b: 0, ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p)),
        ),
    ]

    # cffi, ABI mode: qsort from ffi.dlopen(None), ffi.callback comparators
    try:
        import cffi
    except ImportError:
        print("(cffi not installed: its rows are skipped)", file=sys.stderr)
    else:
        ffi = cffi.FFI()
        ffi.cdef("void qsort(void *, size_t, size_t, int (*)(void *, void *));")
        cffi_qsort = ffi.dlopen(None).qsort
        cffi_source = ffi.new("int[]", values)
        cffi_array = ffi.new("int[]", count)

        def cffi_compare(a: Any, b: Any) -> int:
            x = a[0]
            y = b[0]
            return (x > y) - (x < y)

        def cffi_run(compare: Callable[..., int], signature: str) -> Run:
            callback = ffi.callback(signature, compare)
            keep.append(callback)
            pointer = ffi.cast("int (*)(void *, void *)", callback)  # qsort's type: no conversion

            def run() -> tuple[int, Callable[[], list[int]]]:
                ffi.memmove(cffi_array, cffi_source, 4 * count)
                start = time.perf_counter_ns()
                cffi_qsort(cffi_array, count, 4, pointer)
                return time.perf_counter_ns() - start, lambda: list(cffi_array)

            return run

        rows.insert(3, (SORT, CFFI_SORT, cffi_run(cffi_compare, "int(int *, int *)")))
        rows.append((CONSTANT, CFFI_CONSTANT, cffi_run(lambda a, b: 0, "int(void *, void *)")))

    # the comparisons of one sort, per comparator: counted once, with a counting twin
    comparisons: dict[str, int] = {}
    for group, compare in ((SORT, ffm_sized), (CONSTANT, lambda a, b: 0)):
        calls: list[None] = []

        def counting(
            a: MemorySegment,
            b: MemorySegment,
            compare: Callable[..., int] = compare,
            calls: list[None] = calls,
        ) -> int:
            calls.append(None)
            return compare(a, b)

        ffm_run(counting, sized)()
        comparisons[group] = len(calls)

    print(
        f"# {platform.python_implementation()} {platform.python_version()} on "
        f"{platform.machine()}, hatch-ffm {ffm.__version__}, accelerated={ffm.accelerated()}, "
        f"ints={count}, repeat={args.repeat}; comparisons per sort: {comparisons[SORT]} "
        f"(compare ints), {comparisons[CONSTANT]} (returns 0)"
    )
    expected = sorted(values)
    results: dict[tuple[str, str], float] = {}
    for group, label, run in rows:
        best, result = min((run() for _ in range(args.repeat)), key=lambda timed: timed[0])
        if group == SORT and result() != expected:
            raise AssertionError(f"{label}: the sorted ints differ from sorted()")
        results[group, label] = best / comparisons[group]
    print("| upcall | ns per callback | ctypes / this | cffi / this |")
    print("|---|---:|---:|---:|")
    for (group, label), ns in results.items():
        peers = [results.get((group, peer)) for peer in PEERS[group]]
        versus = [f"{peer / ns:.2f}x" if peer and label.startswith("hatch-ffm") else "" for peer in peers]
        print(f"| {group}: {label} | {ns:.1f} | {versus[0]} | {versus[1]} |", flush=True)

    print()
    print("| goal | hatch-ffm, ns per callback | peer / hatch-ffm | goal | met |")
    print("|---|---:|---:|---:|---|")
    met_all = True
    for group, label, peer, goal in GOALS:
        if (group, peer) not in results:
            continue
        ns = results[group, label]
        speed = results[group, peer] / ns
        met = speed >= goal
        met_all = met_all and met
        row = f"{group}: {peer.split(',')[0]} / hatch-ffm"
        print(f"| {row} | {ns:.1f} | {speed:.2f}x | >= {goal}x | {'yes' if met else 'no'} |")
    print(f"# every goal met: {'yes' if met_all else 'no'}")
    keep.clear()
    arena.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
