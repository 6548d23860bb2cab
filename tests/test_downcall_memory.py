"""Downcalls with memory: heap segments, critical(allow_heap_access=True), target layouts."""

from __future__ import annotations

import array
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from support import ROOT

import ffm_runtime as ffm
from ffm_runtime import (
    ADDRESS,
    JAVA_INT,
    JAVA_LONG,
    Arena,
    FunctionDescriptor,
    Linker,
    MemoryLayout,
    MemorySegment,
)

pytestmark = pytest.mark.usefixtures("stub_site")
LINKER = Linker.native_linker()
COPY = FunctionDescriptor.of_void(ADDRESS, ADDRESS, JAVA_LONG)


@pytest.fixture(scope="module")
def copy_heap(lookup: ffm.SymbolLookup) -> Any:
    return LINKER.downcall_handle(
        lookup.find("copy_bytes"), COPY, Linker.Option.critical(allow_heap_access=True)
    )


def test_heap_segments_refused_without_heap_access(lookup: ffm.SymbolLookup) -> None:
    copy = LINKER.downcall_handle(lookup.find("copy_bytes"), COPY)
    source = MemorySegment.of_array(bytearray(b"abcd"))
    with Arena.of_confined() as arena:
        target = arena.allocate(4)
        with pytest.raises(
            ValueError,
            match=r"argument 1: Heap segment not allowed.*"
            r"critical\(allow_heap_access=True\)",
        ):
            copy(target, source, 4)
        copy(target, arena.allocate_from("abc"), 4)
        assert target.get_string() == "abc"


def test_heap_access_passes_buffers_without_copying(copy_heap: Any) -> None:
    source = bytearray(b"hello, heap")
    target = array.array("i", [0] * 3)
    copy_heap(MemorySegment.of_array(target), MemorySegment.of_array(source), len(source))
    assert target.tobytes()[: len(source)] == bytes(source)


def test_bytes_pass_as_read_only_heap_segments(copy_heap: Any) -> None:
    """A const char * argument from bytes, with no copy: C reads the bytes object's own memory."""
    source = b"read-only bytes"
    with Arena.of_confined() as arena:
        target = arena.allocate(len(source))
        copy_heap(target, MemorySegment.of_array(source), len(source))
        assert target.to_bytes() == source
        copy_heap(target, MemorySegment.of_array(source).as_slice(5, 4), 4)
        assert target.to_bytes()[:4] == b"only"


def test_heap_slices_and_mixed_segments(copy_heap: Any) -> None:
    buffer = bytearray(16)
    with Arena.of_confined() as arena:
        native = arena.allocate_from(JAVA_INT, [1, 2, 3, 4])
        copy_heap(MemorySegment.of_array(buffer).as_slice(4), native, 8)
    assert buffer[4:12] == b"\1\0\0\0\2\0\0\0"


def test_numpy_arrays_as_heap_segments(copy_heap: Any) -> None:
    import numpy

    values = numpy.arange(4, dtype=numpy.float64)
    result = numpy.zeros(4, dtype=numpy.float64)
    copy_heap(MemorySegment.of_array(result), MemorySegment.of_array(values), 32)
    assert result.tolist() == [0.0, 1.0, 2.0, 3.0]


def test_closed_and_foreign_segments_still_refused_with_heap_access(copy_heap: Any) -> None:
    arena = Arena.of_confined()
    native = arena.allocate(4)
    arena.close()
    with pytest.raises(ffm.ScopeClosedError, match="Already closed"):
        copy_heap(MemorySegment.of_array(bytearray(4)), native, 4)


def test_address_result_with_target_layout(lookup: ffm.SymbolLookup) -> None:
    int_ptr = LINKER.downcall_handle(
        lookup.find("int_ptr"), FunctionDescriptor.of(ADDRESS.with_target_layout(JAVA_INT))
    )
    result = int_ptr()
    assert result.byte_size == 4 and result.get(JAVA_INT, 0) == 1234


def test_read_only_segments_can_be_passed(lookup: ffm.SymbolLookup) -> None:
    byte_len = LINKER.downcall_handle(lookup.find("byte_len"), FunctionDescriptor.of(JAVA_LONG, ADDRESS))
    with Arena.of_confined() as arena:
        assert byte_len(arena.allocate_from("four").as_read_only()) == 4


def test_each_segment_of_a_call_is_checked(lookup: ffm.SymbolLookup) -> None:
    """Segments of one arena are checked once per call; a second segment of another arena
    (closed, or another thread's) is still refused."""
    import threading

    copy = LINKER.downcall_handle(lookup.find("copy_bytes"), COPY)
    closed_arena = Arena.of_confined()
    closed = closed_arena.allocate_from("gone")
    closed_arena.close()
    ready, done = threading.Event(), threading.Event()
    foreign: list[MemorySegment] = []

    def owner() -> None:
        with Arena.of_confined() as theirs:
            foreign.append(theirs.allocate_from("theirs"))
            ready.set()
            done.wait()

    thread = threading.Thread(target=owner)
    thread.start()
    ready.wait()
    try:
        with Arena.of_confined() as arena, Arena.of_confined() as second:
            target, source = arena.allocate(8), arena.allocate_from("same")
            copy(target, source, 5)
            assert target.get_string() == "same"
            copy(target, second.allocate_from("two"), 4)
            assert target.get_string() == "two"
            with pytest.raises(ffm.ScopeClosedError, match="Already closed"):
                copy(target, closed, 5)
            with pytest.raises(ffm.WrongThreadError, match="outside owning thread"):
                copy(target, foreign[0], 7)
            with pytest.raises(ffm.WrongThreadError, match="outside owning thread"):
                copy(foreign[0], source, 5)
            assert target.get_string() == "two"
    finally:
        done.set()
        thread.join()


@pytest.mark.usefixtures("stub_site")
def test_stubs_never_write_through_read_only_segments() -> None:
    import errno

    import ffm_runtime as ffm
    from ffm_runtime import ADDRESS, FunctionDescriptor, Linker, SegmentAllocator

    find = ffm.SymbolLookup.loader_lookup().find
    link = Linker.native_linker().downcall_handle
    div = link(
        find("div"), FunctionDescriptor.of(MemoryLayout.struct_layout(JAVA_INT, JAVA_INT), JAVA_INT, JAVA_INT)
    )
    strtol = link(
        find("strtol"),
        FunctionDescriptor.of(JAVA_LONG, ADDRESS, ADDRESS, JAVA_INT),
        Linker.Option.capture_call_state("errno"),
    )
    with Arena.of_confined() as arena:
        frozen = arena.allocate(64, 8).as_read_only()
        for make in (SegmentAllocator.prefix_allocator, SegmentAllocator.slicing_allocator):
            with pytest.raises(TypeError, match="not a writable native segment of 8 bytes"):
                div(make(frozen), 17, 5)
        assert frozen.to_bytes() == bytes(64)
        state = arena.allocate(Linker.Option.capture_state_layout())
        with pytest.raises(ffm.ReadOnlyError, match=r"capture state .* is written by the call"):
            strtol(state.as_read_only(), arena.allocate_from("9" * 30), MemorySegment.NULL, 10)
        assert strtol(state, arena.allocate_from("9" * 30), MemorySegment.NULL, 10) == 2**63 - 1
        assert state.get(JAVA_INT, 0) == errno.ERANGE


REPLACED_ALLOCATE = """
import ffm_runtime as ffm
from ffm_runtime import JAVA_INT, Arena, FunctionDescriptor, Linker, MemoryLayout, MemorySegment
linker = Linker.native_linker()
div = linker.downcall_handle(
    linker.default_lookup().find("div"),
    FunctionDescriptor.of(MemoryLayout.struct_layout(JAVA_INT, JAVA_INT), JAVA_INT, JAVA_INT),
)
installed = Arena.allocate
frozen = bytes(range(16))
with Arena.of_confined() as arena:
    for _ in range(16):
        arena.allocate(4096)  # the slab is full: the stub asks the arena for the result
    neighbour = arena.allocate(4096 + 8)
    results = {
        "None": None,
        "an int": 12345,
        "a list": [1, 2, 3],
        "bytes": MemorySegment.of_array(frozen),
        "a read-only segment": neighbour.as_slice(4096).as_read_only(),
        "a smaller segment": neighbour.as_slice(4092, 4),
    }
    for name, result in results.items():
        Arena.allocate = lambda self, *args, result=result: result
        try:
            div(arena, 17, 5)
        except TypeError as exc:
            print(name, "|", exc)
        else:
            print(name, "| returned")
        finally:
            Arena.allocate = installed
    Arena.allocate = lambda self, size, alignment: installed(self, size, alignment)
    quotient = div(arena, 17, 5)
    Arena.allocate = installed
    print("wrapped |", quotient.get(JAVA_INT, 0), quotient.get(JAVA_INT, 4))
    print(frozen == bytes(range(16)), neighbour.to_bytes() == bytes(4096 + 8))
"""


def test_a_replaced_arena_allocate_is_checked_like_any_allocator(stub_site: Path) -> None:
    # A struct result the stub cannot cut from the arena's slab comes from arena.allocate,
    # which a program may replace: what it returns is checked as any allocator's result is,
    # instead of being written through (the process crashed on an int, and the result was
    # written into an immutable bytes object and past a smaller segment).
    env = {k: v for k, v in os.environ.items() if not k.startswith("FFM_")}
    env.update(PYTHONPATH=f"{ROOT}{os.pathsep}{stub_site}", FFM_ENABLE_NATIVE_ACCESS="__main__")
    result = subprocess.run(
        [sys.executable, "-c", REPLACED_ALLOCATE],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=120,
    )
    assert (result.returncode, result.stderr) == (0, "")
    lines = result.stdout.splitlines()
    assert lines[-2:] == ["wrapped | 3 2", "True True"]
    reported = [line.split(" | ") for line in lines[:-2]]
    assert [name for name, _ in reported] == [
        "None",
        "an int",
        "a list",
        "bytes",
        "a read-only segment",
        "a smaller segment",
    ]
    for _, message in reported:
        pattern = r"Arena\.allocate\(8, 4\) returned .*, not a writable native segment of 8 bytes"
        assert re.fullmatch(pattern, message), message
