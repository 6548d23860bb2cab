"""Upcalls: C calling Python through upcall stubs compiled into the test package's wheel
(tests/fixtures/ffm_testpkg: its upcall shapes, a pool of 8 trampolines each), against libc's
qsort and the C test library."""

from __future__ import annotations

import gc
import os
import random
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support import ROOT, SUPPORTED_PYTHONS, build_wheel, require_python, unpack_wheel

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
    MemoryLayout,
    MemorySegment,
)

pytestmark = pytest.mark.usefixtures("stub_site")

LINKER = Linker.native_linker()
POOL = 8  # upcall-pool-size of tests/fixtures/ffm_testpkg
INT_INT = FunctionDescriptor.of(JAVA_INT, JAVA_INT, JAVA_INT)
COMPARATOR = FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS)


def downcall(lookup: ffm.SymbolLookup, name: str, descriptor: FunctionDescriptor) -> Any:
    address = lookup.find(name)
    assert address is not None, name
    return LINKER.downcall_handle(address, descriptor)


@pytest.fixture
def unraisable(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Any]]:
    """What ``sys.unraisablehook`` receives while the test runs."""
    reports: list[Any] = []
    monkeypatch.setattr(sys, "unraisablehook", reports.append)
    yield reports


def qsort(values: list[int], compare: Any) -> list[int]:
    handle = downcall(
        LINKER.default_lookup(), "qsort", FunctionDescriptor.of_void(ADDRESS, JAVA_LONG, JAVA_LONG, ADDRESS)
    )
    with Arena.of_confined() as arena:
        array = arena.allocate_from(JAVA_INT, values)
        handle(array, len(values), JAVA_INT.byte_size, LINKER.upcall_stub(compare, COMPARATOR, arena))
        return [array.get_at_index(JAVA_INT, i) for i in range(len(values))]


def test_qsort_with_a_python_comparator_sorts_as_sorted() -> None:
    rng = random.Random(13)
    values = [rng.randrange(-(2**31), 2**31) for _ in range(500)] + [0, 0, -1, 2**31 - 1]
    calls = []

    def compare(a: MemorySegment, b: MemorySegment) -> int:
        calls.append(1)
        assert a.byte_size == b.byte_size == 0  # ADDRESS arguments are zero-length segments
        x = a.reinterpret(4).get(JAVA_INT, 0)
        y = b.reinterpret(4).get(JAVA_INT, 0)
        return (x > y) - (x < y)

    assert qsort(values, compare) == sorted(values)
    assert len(calls) > len(values)
    assert qsort(values, lambda a, b: compare(b, a)) == sorted(values, reverse=True)


def sorted_by_address(values: list[int], observe: Any) -> list[int]:
    """qsort ``values`` with a comparator that reads both elements, then calls
    ``observe(a, b)`` (the segments of the ADDRESS arguments)."""

    def compare(a: MemorySegment, b: MemorySegment) -> int:
        x = a.reinterpret(4).get(JAVA_INT, 0)
        y = b.reinterpret(4).get(JAVA_INT, 0)
        observe(a, b)
        return (x > y) - (x < y)

    return qsort(values, compare)


VALUES = [random.Random(7).randrange(10**6) for _ in range(300)]


def test_segments_the_target_keeps_stay_as_they_arrived() -> None:
    # The entry reuses an ADDRESS argument's segment object for the next call only when
    # nobody else holds it: one in three is kept here, and must never change.
    kept: list[tuple[MemorySegment, int, int]] = []
    calls = iter(range(10**9))

    def observe(a: MemorySegment, b: MemorySegment) -> None:
        call = next(calls)
        if call % 3 == 0:
            kept.append((a, a.address, a.byte_size))
        elif call % 3 == 1:
            kept.append((b, b.address, b.byte_size))

    assert sorted_by_address(VALUES, observe) == sorted(VALUES)
    assert len(kept) > 100
    assert [(segment.address, segment.byte_size) for segment, _, _ in kept] == [
        (address, size) for _, address, size in kept
    ]


def test_a_weakly_referenced_argument_is_never_reused() -> None:
    import weakref

    refs: list[tuple[weakref.ref[MemorySegment], int]] = []

    def observe(a: MemorySegment, b: MemorySegment) -> None:
        refs.append((weakref.ref(a), a.address))

    assert sorted_by_address(VALUES, observe) == sorted(VALUES)
    changed = [(address, ref()) for ref, address in refs if ref() is not None and ref().address != address]  # type: ignore[union-attr]
    assert changed == []


def test_fields_a_target_replaces_are_written_again() -> None:
    class Other(MemorySegment):
        __slots__ = ()

    arena = Arena.of_confined()
    seen: list[tuple[type, int, object]] = []

    def observe(a: MemorySegment, b: MemorySegment) -> None:
        seen.append((type(a), a.byte_size, a.scope))
        seen.append((type(b), b.byte_size, b.scope))
        object.__setattr__(a, "_size", 1 << 40)
        object.__setattr__(a, "_scope", arena.scope)
        object.__setattr__(b, "__class__", Other)
        object.__delattr__(a, "_view")
        object.__delattr__(a, "_guard")

    try:
        assert sorted_by_address(VALUES, observe) == sorted(VALUES)
    finally:
        arena.close()
    assert set(seen) == {(MemorySegment, 0, MemorySegment.NULL.scope)}


def test_a_segment_found_through_the_collector_is_not_reused() -> None:
    assert sorted_by_address(VALUES, lambda a, b: None) == sorted(VALUES)
    found = [(o, o.address) for o in gc.get_objects() if type(o) is MemorySegment and o.byte_size == 0]
    assert found
    assert sorted_by_address(VALUES, lambda a, b: None) == sorted(VALUES)
    assert [o.address for o, _ in found] == [address for _, address in found]


def test_the_stub_is_a_zero_length_segment_of_the_arena() -> None:
    with Arena.of_confined() as arena:
        stub = LINKER.upcall_stub(lambda a, b: a + b, INT_INT, arena)
        assert stub.byte_size == 0
        assert stub.address != 0
        assert stub.scope is arena
    assert not stub.scope.is_alive()


def test_int_and_double_arguments_and_results(lookup: ffm.SymbolLookup) -> None:
    call_ii = downcall(lookup, "call_ii", FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT, JAVA_INT))
    call_dj = downcall(lookup, "call_dj", FunctionDescriptor.of(JAVA_DOUBLE, ADDRESS, JAVA_DOUBLE, JAVA_LONG))
    with Arena.of_confined() as arena:
        subtract = LINKER.upcall_stub(lambda a, b: a - b, INT_INT, arena)
        assert call_ii(subtract, 7, 10) == -3
        assert call_ii(subtract, -(2**31), -1) == -(2**31) + 1
        power = LINKER.upcall_stub(
            lambda x, n: x**n, FunctionDescriptor.of(JAVA_DOUBLE, JAVA_DOUBLE, JAVA_LONG), arena
        )
        assert call_dj(power, 1.5, 3) == 3.375
        assert call_dj(power, 2.0, -(2**40)) == 0.0


def test_every_value_layout_arrives_as_its_python_value(lookup: ffm.SymbolLookup) -> None:
    call_mix = downcall(lookup, "call_mix", FunctionDescriptor.of(JAVA_DOUBLE, ADDRESS, ADDRESS))
    layouts = (
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
    seen: list[object] = []

    def record(*values: object) -> float:
        seen.extend(values)
        return 0.5

    with Arena.of_confined() as arena:
        marker = arena.allocate(8)
        stub = LINKER.upcall_stub(record, FunctionDescriptor.of(JAVA_DOUBLE, *layouts), arena)
        assert call_mix(stub, marker) == 0.5
    *numbers, pointer = seen
    assert numbers == [True, -5, 65535, -300, -70000, 1 << 40, 1.5, 2.25]
    assert [type(n) for n in numbers] == [bool, int, int, int, int, int, float, float]
    assert isinstance(pointer, MemorySegment)
    assert pointer.address == marker.address
    assert pointer.byte_size == 0


def test_stack_arguments_pass_through_the_trampoline(lookup: ffm.SymbolLookup) -> None:
    shape = FunctionDescriptor.of(JAVA_DOUBLE, *[JAVA_LONG] * 10, *[JAVA_DOUBLE] * 10)
    call_spill = downcall(lookup, "call_spill", FunctionDescriptor.of(JAVA_DOUBLE, ADDRESS))
    seen: list[object] = []

    def record(*values: object) -> float:
        seen.extend(values)
        return -1.25

    with Arena.of_confined() as arena:
        assert call_spill(LINKER.upcall_stub(record, shape, arena)) == -1.25
    assert seen == [*range(1, 11), *(i + 0.5 for i in range(10))]


def test_narrow_results_reach_c_extended(lookup: ffm.SymbolLookup) -> None:
    call_short = downcall(lookup, "call_short", FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT))
    call_bool = downcall(lookup, "call_bool", FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT))
    with Arena.of_confined() as arena:
        negate = LINKER.upcall_stub(lambda x: -x, FunctionDescriptor.of(JAVA_SHORT, JAVA_INT), arena)
        assert [call_short(negate, x) for x in (2, -32767, 0, 32768)] == [-2, 32767, 0, -32768]
        odd = LINKER.upcall_stub(lambda x: x % 2 == 1, FunctionDescriptor.of(JAVA_BOOLEAN, JAVA_INT), arena)
        assert [call_bool(odd, x) for x in (1, 2)] == [7, 3]


def test_void_and_address_shapes(lookup: ffm.SymbolLookup) -> None:
    call_void = downcall(lookup, "call_void", FunctionDescriptor.of_void(ADDRESS, JAVA_INT))
    call_ptr = downcall(lookup, "call_ptr", FunctionDescriptor.of(ADDRESS, ADDRESS, ADDRESS))
    seen: list[int] = []
    with Arena.of_confined() as arena:
        assert (
            call_void(LINKER.upcall_stub(seen.append, FunctionDescriptor.of_void(JAVA_INT), arena), 41)
            is None
        )
        block = arena.allocate(16)
        step = LINKER.upcall_stub(
            lambda p: MemorySegment.of_address(p.address + 8), FunctionDescriptor.of(ADDRESS, ADDRESS), arena
        )
        assert call_ptr(step, block).address == block.address + 8
        null = LINKER.upcall_stub(
            lambda p: MemorySegment.NULL, FunctionDescriptor.of(ADDRESS, ADDRESS), arena
        )
        assert call_ptr(null, block).address == 0
    assert seen == [41]


def test_an_exception_in_the_target_is_reported_and_c_gets_zero(
    lookup: ffm.SymbolLookup, unraisable: list[Any]
) -> None:
    call_ii = downcall(lookup, "call_ii", FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT, JAVA_INT))

    def broken(a: int, b: int) -> int:
        raise KeyError("from the callback")

    with Arena.of_confined() as arena:
        stub = LINKER.upcall_stub(broken, INT_INT, arena)
        assert call_ii(stub, 1, 2) == 0
        assert call_ii(stub, 3, 4) == 0
    assert len(unraisable) == 2
    report = unraisable[0]
    assert report.exc_type is KeyError
    assert str(report.exc_value) == "'from the callback'"
    assert report.exc_traceback is not None
    assert repr(report.object).startswith(f"<upcall stub (i4i4)i4 at {stub.address:#x} calling <function ")
    assert "broken" in repr(report.object)


def test_a_result_of_the_wrong_type_is_reported_and_c_gets_zero(
    lookup: ffm.SymbolLookup, unraisable: list[Any]
) -> None:
    call_ii = downcall(lookup, "call_ii", FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT, JAVA_INT))
    with Arena.of_confined() as arena:
        assert call_ii(LINKER.upcall_stub(lambda a, b: "three", INT_INT, arena), 1, 2) == 0
        assert call_ii(LINKER.upcall_stub(lambda a, b: 2**31, INT_INT, arena), 1, 2) == 0
    assert [type(r.exc_value) for r in unraisable] == [TypeError, OverflowError]
    assert str(unraisable[0].exc_value) == (
        "result of upcall (i4i4)i4 (C got 0): expected int for JAVA_INT, got str"
    )
    assert "2147483648 is out of range for JAVA_INT" in str(unraisable[1].exc_value)


def test_a_call_through_a_closed_arenas_stub_is_reported_and_returns_zero(
    lookup: ffm.SymbolLookup, unraisable: list[Any]
) -> None:
    call_ii = downcall(lookup, "call_ii", FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT, JAVA_INT))
    calls = []
    with Arena.of_confined() as arena:
        stub = LINKER.upcall_stub(lambda a, b: calls.append(1) or a + b, INT_INT, arena)
        assert call_ii(stub, 1, 2) == 3
    # C kept the pointer: the slot is free now, nothing of the target runs
    assert call_ii(MemorySegment.of_address(stub.address), 1, 2) == 0
    assert calls == [1]
    (report,) = unraisable
    assert isinstance(report.exc_value, ffm.ScopeClosedError)
    assert (
        "upcall (i4i4)i4 was called through the function pointer of an upcall stub whose arena is closed"
        in str(report.exc_value)
    )


def test_slots_are_reused_over_many_arena_cycles(lookup: ffm.SymbolLookup) -> None:
    sum_calls = downcall(lookup, "sum_calls", FunctionDescriptor.of(JAVA_LONG, ADDRESS, JAVA_INT))
    addresses = set()

    class Target:
        alive = 0

        def __init__(self, k: int) -> None:
            self.k = k
            Target.alive += 1

        def __del__(self) -> None:
            Target.alive -= 1

        def __call__(self, i: int, one: int) -> int:
            return i * self.k + one

    for cycle in range(POOL * 50):
        with Arena.of_confined() as arena:
            stubs = [LINKER.upcall_stub(Target(k), INT_INT, arena) for k in range(cycle % POOL + 1)]
            addresses.update(s.address for s in stubs)
            for k, stub in enumerate(stubs):
                assert sum_calls(stub, 10) == k * 45 + 10
        del stubs
    gc.collect()
    assert len(addresses) == POOL  # the same trampolines, again and again
    assert Target.alive == 0  # closing the arena let go of every target


def test_an_exhausted_pool_names_the_shape_and_the_option() -> None:
    with Arena.of_confined() as arena:
        stubs = [LINKER.upcall_stub(lambda a, b: 0, INT_INT, arena) for _ in range(POOL)]
        with pytest.raises(
            ffm.UpcallPoolExhaustedError,
            match=r"Cannot make another upcall stub for upcall \(i4i4\)i4: every trampoline of its pool "
            r"is in use \(8 in .*manifest.json\)\. Close the arenas of the upcall stubs no longer needed, "
            r"or raise the hook option `upcall-pool-size` \(default 256\)",
        ):
            LINKER.upcall_stub(lambda a, b: 0, INT_INT, arena)
        assert len({s.address for s in stubs}) == POOL
    with Arena.of_confined() as arena:  # all free again
        assert len([LINKER.upcall_stub(lambda a, b: 0, INT_INT, arena) for _ in range(POOL)]) == POOL


def test_automatic_and_global_arenas_keep_their_stubs(lookup: ffm.SymbolLookup) -> None:
    call_ii = downcall(lookup, "call_ii", FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT, JAVA_INT))
    stub = LINKER.upcall_stub(lambda a, b: a * b, INT_INT, Arena.of_auto())
    gc.collect()  # the segment keeps its arena, and so its slot
    assert call_ii(stub, 6, 7) == 42
    del stub
    gc.collect()  # the automatic arena is gone: its slot is free again
    with Arena.of_confined() as arena:
        assert len([LINKER.upcall_stub(lambda a, b: 0, INT_INT, arena) for _ in range(POOL)]) == POOL


def test_a_shape_no_wheel_registered() -> None:
    shape = FunctionDescriptor.of(JAVA_LONG, JAVA_FLOAT.with_name("x"), ADDRESS)
    with (
        Arena.of_confined() as arena,
        pytest.raises(
            ffm.MissingForeignRegistrationError,
            match=r"Cannot perform upcall with descriptor \(f4a8\)j8: no installed wheel registered this "
            r"upcall shape\. To allow it, add this line to during_setup\(access\) of a Feature .*\n\n"
            r"    RuntimeForeignAccess\.register_for_upcall\("
            r"FunctionDescriptor\.of\(JAVA_LONG, JAVA_FLOAT, ADDRESS\)\)",
        ) as caught,
    ):
        LINKER.upcall_stub(lambda x, p: 0, shape, arena)
    assert caught.value.key == "upcall (f4a8)j8"


def test_the_jdks_rules_for_upcall_descriptors() -> None:
    with Arena.of_confined() as arena:
        for option in (
            Linker.Option.critical(),
            Linker.Option.first_variadic_arg(1),
            Linker.Option.capture_call_state("errno"),
        ):
            with pytest.raises(ValueError, match=r"Not supported for upcall: Linker\.Option\."):
                LINKER.upcall_stub(lambda a, b: 0, INT_INT, arena, option)
        with pytest.raises(ValueError, match="does not have the native byte order"):
            LINKER.upcall_stub(
                lambda a: 0, FunctionDescriptor.of(JAVA_INT, JAVA_INT.with_order("big")), arena
            )
        with pytest.raises(TypeError, match="needs a callable target, not int"):
            LINKER.upcall_stub(3, INT_INT, arena)
        with pytest.raises(
            TypeError, match=r"Wrong target: the upcall \(i4i4\)i4 calls it with 2 positional arguments"
        ):
            LINKER.upcall_stub(lambda a: 0, INT_INT, arena)
        with pytest.raises(TypeError, match="needs an Arena for the stub's lifetime, not NoneType"):
            LINKER.upcall_stub(lambda a, b: 0, INT_INT, None)
        with pytest.raises(
            TypeError, match=r"Wrong target: the upcall \(\[i4i4\]\)i4 calls it with 1 positional argument"
        ):
            LINKER.upcall_stub(
                lambda: 0,
                FunctionDescriptor.of(JAVA_INT, MemoryLayout.struct_layout(JAVA_INT, JAVA_INT)),
                arena,
            )
    with pytest.raises(ffm.ScopeClosedError, match="Already closed"):
        LINKER.upcall_stub(lambda a, b: 0, INT_INT, arena)


def _permissions(address: int) -> str:
    """The permissions of the mapping holding ``address`` (``/proc/self/maps``)."""
    with open("/proc/self/maps") as maps:
        for line in maps:
            span, permissions = line.split()[:2]
            start, end = (int(part, 16) for part in span.split("-"))
            if start <= address < end:
                return permissions
    raise AssertionError(f"{address:#x} is not mapped")


def test_trampolines_are_never_writable_and_slots_never_executable() -> None:
    from ffm_runtime import _upcalls

    with Arena.of_confined() as arena:
        stub = LINKER.upcall_stub(lambda a, b: 0, INT_INT, arena)
        (pool,) = (p for p in _upcalls._pools.values() if stub.address in p.trampolines)
        assert _permissions(stub.address).startswith("r-x")
        assert _permissions(pool.slots).startswith("rw-")


def test_downcall_upcall_downcall_nesting(lookup: ffm.SymbolLookup) -> None:
    call_ii = downcall(lookup, "call_ii", FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT, JAVA_INT))
    with Arena.of_confined() as arena:
        add = LINKER.upcall_stub(lambda a, b: a + b, INT_INT, arena)

        def fibonacci(n: int, _: int) -> int:  # each level: a downcall calling this back
            return n if n < 2 else call_ii(stub, n - 1, 0) + call_ii(add, call_ii(stub, n - 2, 0), 0)

        stub = LINKER.upcall_stub(fibonacci, INT_INT, arena)
        assert call_ii(stub, 15, 0) == 610


def test_a_thread_python_never_saw_calls_back(lookup: ffm.SymbolLookup) -> None:
    import threading

    on_new_thread = downcall(
        lookup, "call_ii_on_new_thread", FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT, JAVA_INT)
    )
    threads = []

    def multiply(a: int, b: int) -> int:
        threads.append(threading.get_ident())
        return a * b

    with Arena.of_confined() as arena:
        stub = LINKER.upcall_stub(multiply, INT_INT, arena)
        assert [on_new_thread(stub, n, 3) for n in range(20)] == [n * 3 for n in range(20)]
    assert len(threads) == 20
    assert threading.get_ident() not in threads


@pytest.mark.parametrize("version", SUPPORTED_PYTHONS)
def test_upcalls_on_every_python_and_after_finalization(
    version: str, stub_site: Path, native_lib: Path
) -> None:
    # One wheel on every supported CPython: qsort with a comparator, an exception reported;
    # then a C atexit handler calls back after Py_FinalizeEx, when there is no Python left to
    # call or to report with: C gets 0 and the process exits normally.
    code = f"""
import sys
import ffm_runtime as ffm
from ffm_runtime import ADDRESS, JAVA_INT, JAVA_LONG, Arena, FunctionDescriptor, Linker
ffm.load_library({str(native_lib)!r})
linker = Linker.native_linker()
qsort = linker.downcall_handle(
    linker.default_lookup().find("qsort"), FunctionDescriptor.of_void(ADDRESS, JAVA_LONG, JAVA_LONG, ADDRESS)
)
def compare(a, b):
    x, y = a.reinterpret(4).get(JAVA_INT, 0), b.reinterpret(4).get(JAVA_INT, 0)
    return (x > y) - (x < y)
reports = []
sys.unraisablehook = reports.append
with Arena.of_confined() as arena:
    array = arena.allocate_from(JAVA_INT, [5, -3, 9, 0, 2])
    comparator = FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS)
    qsort(array, 5, 4, linker.upcall_stub(compare, comparator, arena))
    print([array.get_at_index(JAVA_INT, i) for i in range(5)])
    qsort(array, 5, 4, linker.upcall_stub(lambda a, b: 1 // 0, comparator, arena))
    print(len(reports), type(reports[0].exc_value).__name__)
call_at_exit = linker.downcall_handle(
    ffm.SymbolLookup.loader_lookup().find("call_ii_at_exit"), FunctionDescriptor.of_void(ADDRESS)
)
add = FunctionDescriptor.of(JAVA_INT, JAVA_INT, JAVA_INT)
stub = linker.upcall_stub(lambda a, b: a + b, add, Arena.global_arena())
call_at_exit(stub)
print("finalizing", flush=True)
"""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FFM_")}
    env.update(PYTHONPATH=f"{ROOT}{os.pathsep}{stub_site}", FFM_ENABLE_NATIVE_ACCESS="__main__")
    result = subprocess.run(
        [str(require_python(version)), "-c", code],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=120,
    )
    assert (result.returncode, result.stderr) == (0, "at exit: 0\n")
    lines = result.stdout.splitlines()
    assert lines[0] == "[-3, 0, 2, 5, 9]" and lines[-1] == "finalizing", result.stdout
    # (qsort of 5 elements compares at least 4 times)
    assert int(lines[1].split()[0]) >= 4 and lines[1].endswith(" ZeroDivisionError"), lines


def test_a_critical_function_that_calls_back_raises(lookup: ffm.SymbolLookup, unraisable: list[Any]) -> None:
    shape = FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT, JAVA_INT)
    address = lookup.find("call_ii")
    assert address is not None
    critical = LINKER.downcall_handle(address, shape, Linker.Option.critical())
    plain = LINKER.downcall_handle(address, shape)
    ran: list[int] = []

    def add(a: int, b: int) -> int:
        ran.append(a)
        return a + b

    with Arena.of_confined() as arena:
        stub = LINKER.upcall_stub(add, INT_INT, arena)
        with pytest.raises(ffm.WrongThreadError, match=r"critical downcall .* called back into Python"):
            critical(stub, 2, 3)
        assert ran == [] and unraisable == []
        assert plain(stub, 2, 3) == 5  # the same stub, through a handle that is not critical
        with pytest.raises(ffm.WrongThreadError, match=r"must not call back"):
            critical(stub, 4, 5)
        assert plain(stub, 4, 5) == 9
    assert ran == [2, 4]


SECOND_FEATURE = """
from ffm_runtime import ADDRESS, JAVA_INT, FunctionDescriptor
from hatch_ffm import RuntimeForeignAccess


class Comparators:
    def during_setup(self, access):
        RuntimeForeignAccess.register_for_upcall(FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS))
"""

USE_BOTH_POOLS = """
import ffm_runtime as ffm
from ffm_runtime import ADDRESS, JAVA_INT, JAVA_LONG, Arena, FunctionDescriptor, Linker
linker = Linker.native_linker()
qsort = linker.downcall_handle(
    linker.default_lookup().find("qsort"), FunctionDescriptor.of_void(ADDRESS, JAVA_LONG, JAVA_LONG, ADDRESS)
)
comparator = FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS)
with Arena.of_confined() as arena:
    array = arena.allocate_from(JAVA_INT, [3, 1, 2])
    called, addresses = set(), set()
    for k in range(10):
        stub = linker.upcall_stub(lambda a, b, k=k: called.add(k) or 0, comparator, arena)
        qsort(array, 3, 4, stub)
        addresses.add(stub.address)
    print(len(called), len(addresses), flush=True)
    try:
        linker.upcall_stub(lambda a, b: 0, comparator, arena)
    except ffm.UpcallPoolExhaustedError as exc:
        print(exc)
"""


def test_the_pools_of_every_wheel_registering_a_shape_are_used(stub_site: Path, tmp_path: Path) -> None:
    project = tmp_path / "ffm_second"
    (project / "ffm_second").mkdir(parents=True)
    (project / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["hatchling"]\nbuild-backend = "hatchling.build"\n'
        '[project]\nname = "ffm-second"\nversion = "1.0"\ndependencies = ["hatch-ffm"]\n'
        "[tool.hatch.build.targets.wheel.hooks.ffm]\n"
        'features = ["ffm_second.features:Comparators"]\nupcall-pool-size = 2\n'
    )
    (project / "ffm_second" / "__init__.py").write_text("")
    (project / "ffm_second" / "features.py").write_text(SECOND_FEATURE)
    build_wheel(project, tmp_path / "dist")
    (wheel,) = (tmp_path / "dist").glob("*.whl")
    unpack_wheel(wheel, tmp_path / "site")
    env = {k: v for k, v in os.environ.items() if not k.startswith("FFM_")}
    env.update(
        PYTHONPATH=os.pathsep.join([str(ROOT), str(stub_site), str(tmp_path / "site")]),
        FFM_ENABLE_NATIVE_ACCESS="__main__",
    )
    result = subprocess.run(
        [sys.executable, "-c", USE_BOTH_POOLS],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    first, message = result.stdout.splitlines()
    assert first == "10 10"  # 8 trampolines of the test package's pool, 2 of the second one
    assert "every trampoline of its pool is in use" in message
    assert f"8 in {stub_site}" in message and f"2 in {tmp_path / 'site'}" in message


def test_a_shared_arenas_stub_on_other_threads(lookup: ffm.SymbolLookup, unraisable: list[Any]) -> None:
    import threading

    call_ii = downcall(lookup, "call_ii", FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT, JAVA_INT))
    on_thread = downcall(
        lookup, "call_ii_on_new_thread", FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT, JAVA_INT)
    )
    arena = Arena.of_shared()
    entered, go_on = threading.Event(), threading.Event()

    def add(a: int, b: int) -> int:
        if a == 100:
            entered.set()
            assert go_on.wait(60)
        return a + b

    stub = LINKER.upcall_stub(add, INT_INT, arena)
    results: list[int] = []
    workers = [threading.Thread(target=lambda k=k: results.append(on_thread(stub, k, 1))) for k in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert sorted(results) == [1, 2, 3, 4]
    # the downcall that got the stub as an argument holds the shared arena while C runs
    blocked = threading.Thread(target=lambda: results.append(call_ii(stub, 100, 1)))
    blocked.start()
    assert entered.wait(60)
    with pytest.raises(ffm.ScopeInUseError, match="Session is acquired by 1 client"):
        arena.close()
    go_on.set()
    blocked.join()
    assert results[-1] == 101
    arena.close()
    assert call_ii(MemorySegment.of_address(stub.address), 1, 2) == 0
    assert [type(r.exc_value) for r in unraisable] == [ffm.ScopeClosedError]


def _closes_refused(*arenas: Arena) -> list[str]:
    """Try to close each of ``arenas``; what each attempt raised (or "closed")."""
    outcomes = []
    for arena in arenas:
        try:
            arena.close()
        except ffm.ScopeInUseError as exc:
            outcomes.append(str(exc))
        else:
            outcomes.append("closed")
    return outcomes


def test_a_callback_cannot_close_the_arenas_of_its_downcalls_segments() -> None:
    # As in Java, a downcall keeps its segments' arenas (confined ones too) from closing
    # while it runs: a callback that closes one gets ScopeInUseError, and the native
    # function never uses memory given back (qsort went on sorting a freed array).
    handle = downcall(
        LINKER.default_lookup(), "qsort", FunctionDescriptor.of_void(ADDRESS, JAVA_LONG, JAVA_LONG, ADDRESS)
    )
    values = [random.Random(5).randrange(10**6) for _ in range(200)]
    data, stubs = Arena.of_confined(), Arena.of_confined()
    outcomes: list[str] = []

    def compare(a: MemorySegment, b: MemorySegment) -> int:
        if not outcomes:
            outcomes.extend(_closes_refused(data, stubs))
        x, y = a.reinterpret(4).get(JAVA_INT, 0), b.reinterpret(4).get(JAVA_INT, 0)
        return (x > y) - (x < y)

    array = data.allocate_from(JAVA_INT, values)
    handle(array, len(values), 4, LINKER.upcall_stub(compare, COMPARATOR, stubs))
    assert len(outcomes) == 2
    for outcome in outcomes:
        assert outcome.startswith("Cannot close <Arena confined alive"), outcome
        assert "upcall running during it called close()" in outcome
    assert [array.get_at_index(JAVA_INT, i) for i in range(len(values))] == sorted(values)
    data.close()
    stubs.close()


@pytest.mark.parametrize("name", ["call_ii_ll", "call_ii_lll"])
def test_a_callback_cannot_close_the_arena_of_its_downcalls_struct_result(
    lookup: ffm.SymbolLookup, name: str
) -> None:
    # call_ii_ll's result comes back in registers (the stub writes it after the call),
    # call_ii_lll's in memory (the function writes it after calling back)
    size = 2 if name == "call_ii_ll" else 3
    fields = MemoryLayout.struct_layout(*[JAVA_LONG] * size)
    handle = downcall(lookup, name, FunctionDescriptor.of(fields, ADDRESS, JAVA_INT, JAVA_INT))
    results, stubs = Arena.of_confined(), Arena.of_confined()
    outcomes: list[str] = []

    def subtract(a: int, b: int) -> int:
        outcomes.extend(_closes_refused(results))
        return a - b

    pair = handle(results, LINKER.upcall_stub(subtract, INT_INT, stubs), 10, 3)
    assert [pair.get_at_index(JAVA_LONG, i) for i in range(size)] == [7, -7, 7][:size]
    assert len(outcomes) == 2 and all(o.startswith("Cannot close <Arena confined alive") for o in outcomes)
    results.close()
    stubs.close()


def test_a_callback_cannot_unload_the_library_its_downcall_runs_in(native_lib: Path) -> None:
    library = Arena.of_confined()
    call_ii = LINKER.downcall_handle(
        ffm.SymbolLookup.library_lookup(native_lib, library).find("call_ii"),
        FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT, JAVA_INT),
    )
    outcomes: list[str] = []

    def add(a: int, b: int) -> int:
        outcomes.extend(_closes_refused(library))
        return a + b

    with Arena.of_confined() as arena:
        assert call_ii(LINKER.upcall_stub(add, INT_INT, arena), 2, 3) == 5
    (outcome,) = outcomes
    assert outcome.startswith("Cannot close <Arena confined alive"), outcome
    library.close()


def test_a_freed_slot_is_taken_again_last(lookup: ffm.SymbolLookup, unraisable: list[Any]) -> None:
    # A pointer C kept past its stub's arena keeps finding an empty slot while the other
    # trampolines of the pool are taken, instead of calling the next stub's target.
    call_ii = downcall(lookup, "call_ii", FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT, JAVA_INT))
    with Arena.of_confined() as arena:
        stale = MemorySegment.of_address(LINKER.upcall_stub(lambda a, b: 1, INT_INT, arena).address)
    with Arena.of_confined() as arena:
        stubs = [LINKER.upcall_stub(lambda a, b: 2, INT_INT, arena) for _ in range(POOL - 1)]
        assert stale.address not in {stub.address for stub in stubs}
        assert call_ii(stale, 1, 2) == 0
        assert [type(report.exc_value) for report in unraisable] == [ffm.ScopeClosedError]
        assert LINKER.upcall_stub(lambda a, b: 3, INT_INT, arena).address == stale.address
        assert call_ii(stale, 1, 2) == 3  # (the pool's last free trampoline)


# -- structs and unions by value (ffm_testpkg/struct_upcalls.py: the shapes and the checks) -----


def find_in(lookup: ffm.SymbolLookup) -> Any:
    def find(name: str) -> MemorySegment:
        address = lookup.find(name)
        assert address is not None, name
        return address

    return find


def test_struct_arguments_arrive_as_segments_of_their_size(lookup: ffm.SymbolLookup) -> None:
    from ffm_testpkg.struct_upcalls import check_arguments

    segments = check_arguments(find_in(lookup))
    # valid only during the callback: their confined arena is closed once it returned
    for segment in segments:
        assert not segment.scope.is_alive()
        with pytest.raises(ffm.ScopeClosedError, match="Already closed"):
            segment.get(JAVA_INT, 0)
        with pytest.raises(ffm.ScopeClosedError, match="Already closed"):
            segment.set(JAVA_INT, 0, 1)
        with pytest.raises(ffm.ScopeClosedError, match="Already closed"):
            segment.to_bytes()


def test_struct_arguments_on_the_stack(lookup: ffm.SymbolLookup) -> None:
    from ffm_testpkg.struct_upcalls import check_spilled_arguments

    check_spilled_arguments(find_in(lookup))


def test_a_union_argument(lookup: ffm.SymbolLookup) -> None:
    from ffm_testpkg.struct_upcalls import check_union

    check_union(find_in(lookup))


def test_struct_results_of_every_class(lookup: ffm.SymbolLookup) -> None:
    from ffm_testpkg.struct_upcalls import check_results

    check_results(find_in(lookup))


def test_structs_in_both_directions(lookup: ffm.SymbolLookup) -> None:
    from ffm_testpkg.struct_upcalls import check_both_directions

    check_both_directions(find_in(lookup))


def test_unsigned_arguments_and_results(lookup: ffm.SymbolLookup) -> None:
    from ffm_testpkg.struct_upcalls import check_unsigned

    check_unsigned(find_in(lookup))


def test_bsearch_with_a_python_comparator_finds_what_bisect_finds(lookup: ffm.SymbolLookup) -> None:
    from ffm_testpkg.struct_upcalls import check_bsearch

    rng = random.Random(7)
    values = sorted(set(rng.randrange(-(2**31), 2**31) for _ in range(2000)))
    keys = [*rng.sample(values, 100), *(rng.randrange(-(2**31), 2**31) for _ in range(100))]
    keys += [values[0], values[-1], values[0] - 1, values[-1] + 1, -(2**31), 2**31 - 1]
    check_bsearch(find_in(lookup), values, keys)


def test_a_struct_argument_is_a_confined_arenas_segment_during_the_callback(
    lookup: ffm.SymbolLookup, unraisable: list[Any]
) -> None:
    from ffm_testpkg.struct_upcalls import STRUCT_UPCALLS, U3

    echo_u3 = downcall(lookup, "echo_u3", STRUCT_UPCALLS["echo_u3"][0])
    kinds: list[str] = []

    def target(s: MemorySegment, k: int) -> MemorySegment:
        arena = s.scope
        assert isinstance(arena, Arena) and arena.is_alive()
        assert s.is_accessible_by(threading.current_thread())
        assert not s.is_accessible_by(threading.Thread())
        assert not s.is_read_only()
        kinds.append(type(s).__name__)  # what the get/set accelerators take natively
        # the call's arena allocates, and the target may close it itself
        extra = arena.allocate(U3)
        extra.copy_from(s)
        if k == 1:
            arena.close()
            with pytest.raises(ffm.ScopeClosedError, match="Already closed"):
                s.get(JAVA_INT, 4)
            return extra  # closed too: reported, C gets a zeroed struct
        s.set(JAVA_INT, 4, 20)
        return s

    with Arena.of_confined() as arena:
        stub = LINKER.upcall_stub(target, STRUCT_UPCALLS["echo_u3"][1][0], arena)
        assert echo_u3(stub, 0) == 1.5 + 40 - 9
        assert echo_u3(stub, 1) == 0
        assert echo_u3(stub, 0) == 1.5 + 40 - 9
    assert kinds == ["_ConfinedSegment"] * 3
    (report,) = unraisable
    assert isinstance(report.exc_value, ffm.ScopeClosedError)


def test_wrong_struct_results_are_reported_and_c_gets_a_zeroed_struct(
    lookup: ffm.SymbolLookup, unraisable: list[Any]
) -> None:
    from ffm_testpkg.struct_upcalls import STRUCT_UPCALLS

    ret_u2 = downcall(lookup, "ret_u2", STRUCT_UPCALLS["ret_u2"][0])
    ret_u24 = downcall(lookup, "ret_u24", STRUCT_UPCALLS["ret_u24"][0])
    ret_uhf = downcall(lookup, "ret_uhf", STRUCT_UPCALLS["ret_uhf"][0])
    with Arena.of_confined() as closed:
        gone = closed.allocate(64)
    with Arena.of_confined() as arena:
        p = arena.allocate(8)

        def stub(name: str, target: Any) -> MemorySegment:
            return LINKER.upcall_stub(target, STRUCT_UPCALLS[name][1][0], arena)

        assert ret_u24(stub("ret_u24", lambda x, q: 3), 5, p) == 0
        assert ret_u24(stub("ret_u24", lambda x, q: arena.allocate(16)), 5, p) == 0
        assert ret_u2(stub("ret_u2", lambda x, q: gone), 1.0, p) == 0
        assert ret_uhf(stub("ret_uhf", lambda x: None), 1.0) == 0
        assert ret_uhf(stub("ret_uhf", lambda x: 1 // 0), 1.0) == 0
        assert ret_u2(stub("ret_u2", lambda x, q: MemorySegment.of_address(q.address)), 1.0, p) == 0
    shape = "(j8a8)[j8d8a8]"
    assert [(type(r.exc_value), str(r.exc_value)) for r in unraisable[:3]] == [
        (
            TypeError,
            f"result of upcall {shape} (C got a zeroed struct): expected MemorySegment for struct "
            "[j8d8a8], got int",
        ),
        (
            ffm.OutOfBoundsError,
            f"result of upcall {shape} (C got a zeroed struct): segment of 16 bytes is too small for "
            "struct [j8d8a8] (24 bytes)",
        ),
        (ffm.ScopeClosedError, "Already closed"),
    ]
    assert type(unraisable[3].exc_value) is TypeError
    assert "expected MemorySegment for struct [f4f4f4], got NoneType" in str(unraisable[3].exc_value)
    assert type(unraisable[4].exc_value) is ZeroDivisionError
    assert "segment of 0 bytes is too small for struct [d8a8] (16 bytes)" in str(unraisable[5].exc_value)
    assert len(unraisable) == 6


def test_a_replaced_arena_allocate_gives_struct_arguments_checked_segments(
    lookup: ffm.SymbolLookup, unraisable: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    # With no pooled slab, the entry's arena allocates a struct argument through
    # Arena.allocate, which a program may replace: its result is checked, and a bad one is
    # reported as any failed upcall is (it was reported without an exception, past the hook).
    from ffm_testpkg.struct_upcalls import STRUCT_UPCALLS

    from ffm_runtime._contract import ARENA_POOL_MAX

    echo_u3 = downcall(lookup, "echo_u3", STRUCT_UPCALLS["echo_u3"][0])
    ran: list[int] = []

    def target(s: MemorySegment, k: int) -> MemorySegment:
        ran.append(k)
        return s

    with Arena.of_confined() as arena:
        stub = LINKER.upcall_stub(target, STRUCT_UPCALLS["echo_u3"][1][0], arena)
        holders = [Arena.of_confined() for _ in range(ARENA_POOL_MAX + 1)]  # take every pooled slab
        try:
            monkeypatch.setattr(Arena, "allocate", lambda self, *args: None)
            assert echo_u3(stub, 5) == 0
            monkeypatch.undo()
            assert echo_u3(stub, 5) == 1.5 + 20 - 9
        finally:
            for holder in holders:
                holder.close()
    assert ran == [5]
    (report,) = unraisable
    assert type(report.exc_value) is TypeError
    assert str(report.exc_value) == (
        "Arena.allocate(16, 8) returned None, not a writable native segment of 16 bytes"
    )


def test_struct_arguments_on_a_thread_python_never_saw(
    lookup: ffm.SymbolLookup, unraisable: list[Any]
) -> None:
    # The entry's confined arena belongs to the C thread for the call, and is closed after it,
    # also when the target raised or closed it itself.
    from ffm_testpkg.struct_upcalls import STRUCT_UPCALLS

    on_new_thread = downcall(lookup, "echo_u3_on_new_thread", STRUCT_UPCALLS["echo_u3"][0])
    seen: list[tuple[int, MemorySegment]] = []

    def target(s: MemorySegment, k: int) -> MemorySegment:
        seen.append((threading.get_ident(), s))
        assert s.scope.is_alive() and s.is_accessible_by(threading.current_thread())
        if k == 1:
            raise ValueError("from a C thread")
        if k == 2:
            s.scope.close()
        s.set(JAVA_INT, 4, s.get(JAVA_INT, 4) + k)
        return s

    with Arena.of_confined() as arena:
        stub = LINKER.upcall_stub(target, STRUCT_UPCALLS["echo_u3"][1][0], arena)
        assert [on_new_thread(stub, k) for k in (0, 1, 2, 3)] == [12.5, 0, 0, 12.5 + 6]
    assert threading.get_ident() not in {ident for ident, _ in seen}
    assert all(not s.scope.is_alive() for _, s in seen)
    assert [type(r.exc_value) for r in unraisable] == [ValueError, ffm.ScopeClosedError]
