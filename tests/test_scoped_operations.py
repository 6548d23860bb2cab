"""After the JDK's TestScopedOperations: every operation of a confined arena's segment fails
after close() with the closed error, and from another thread with the wrong-thread error."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest

import ffm_runtime as ffm
from ffm_runtime import (
    ADDRESS,
    JAVA_BYTE,
    JAVA_DOUBLE,
    JAVA_INT,
    JAVA_LONG,
    Arena,
    MemoryLayout,
    MemorySegment,
    PathElement,
)

POINT = MemoryLayout.struct_layout(JAVA_INT.with_name("x"), JAVA_INT.with_name("y"))

ARENA_OPERATIONS: dict[str, Callable[[ffm.Arena], Any]] = {
    "allocate(size)": lambda a: a.allocate(8),
    "allocate(size, align)": lambda a: a.allocate(8, 8),
    "allocate(large)": lambda a: a.allocate(100_000),
    "allocate(layout)": lambda a: a.allocate(POINT),
    "allocate(layout, count)": lambda a: a.allocate(JAVA_INT, 4),
    "allocate_from(str)": lambda a: a.allocate_from("text"),
    "allocate_from(layout, value)": lambda a: a.allocate_from(JAVA_DOUBLE, 1.5),
    "allocate_from(layout, values)": lambda a: a.allocate_from(JAVA_LONG, [1, 2, 3]),
    "reinterpret(arena)": lambda a: MemorySegment.NULL.reinterpret(8, a),
    "close()": lambda a: a.close(),
}

SEGMENT_OPERATIONS: dict[str, Callable[[MemorySegment], Any]] = {
    "get": lambda s: s.get(JAVA_INT, 0),
    "set": lambda s: s.set(JAVA_INT, 0, 1),
    "get_at_index": lambda s: s.get_at_index(JAVA_LONG, 1),
    "set_at_index": lambda s: s.set_at_index(JAVA_LONG, 1, 1),
    "var_handle.get": lambda s: POINT.var_handle(PathElement.group_element("y")).get(s, 0),
    "var_handle.set": lambda s: POINT.var_handle(PathElement.group_element("y")).set(s, 0, 2),
    "as_slice": lambda s: s.as_slice(8),
    "fill": lambda s: s.fill(0),
    "copy_from": lambda s: s.copy_from(Arena.global_arena().allocate(4)),
    "copy (as source)": lambda s: MemorySegment.copy(s, 0, Arena.global_arena().allocate(4), 0, 4),
    "mismatch": lambda s: s.mismatch(Arena.global_arena().allocate(4)),
    "to_bytes": lambda s: s.to_bytes(),
    "to_array": lambda s: s.to_array(JAVA_BYTE),
    "get_string": lambda s: s.get_string(),
    "set_string": lambda s: s.set_string(0, "x"),
    "as_memoryview": lambda s: s.as_memoryview(),
    "get(ADDRESS)": lambda s: s.get(ADDRESS, 8),
}

SEGMENT_FACTORIES: dict[str, Callable[[ffm.Arena], MemorySegment]] = {
    "allocated": lambda a: a.allocate(32, 8),
    "slice": lambda a: a.allocate(64, 8).as_slice(8, 32),
    "read-only": lambda a: a.allocate(32, 8).as_read_only(),
    "reinterpreted into arena": lambda a: Arena.global_arena().allocate(32, 8).reinterpret(32, a),
    "large block": lambda a: a.allocate(100_000, 8).as_slice(0, 32),
}


def run_in_thread(action: Callable[[], Any]) -> BaseException | None:
    failure: list[BaseException] = []

    def target() -> None:
        try:
            action()
        except BaseException as exc:
            failure.append(exc)

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    return failure[0] if failure else None


@pytest.mark.parametrize("name", sorted(ARENA_OPERATIONS))
def test_arena_operation_after_close(name: str) -> None:
    arena = Arena.of_confined()
    arena.close()
    with pytest.raises(ffm.ScopeClosedError, match="Already closed"):
        ARENA_OPERATIONS[name](arena)


@pytest.mark.parametrize("name", sorted(ARENA_OPERATIONS))
def test_arena_operation_from_other_thread(name: str) -> None:
    with Arena.of_confined() as arena:
        error = run_in_thread(lambda: ARENA_OPERATIONS[name](arena))
    assert isinstance(error, ffm.WrongThreadError), error
    assert "Attempted access outside owning thread" in str(error)


@pytest.mark.parametrize("factory", sorted(SEGMENT_FACTORIES))
@pytest.mark.parametrize("name", sorted(SEGMENT_OPERATIONS))
def test_segment_operation_after_close(factory: str, name: str) -> None:
    arena = Arena.of_confined()
    segment = SEGMENT_FACTORIES[factory](arena)
    arena.close()
    with pytest.raises(ffm.ScopeClosedError, match="Already closed"):
        SEGMENT_OPERATIONS[name](segment)


@pytest.mark.parametrize("factory", sorted(SEGMENT_FACTORIES))
@pytest.mark.parametrize("name", sorted(SEGMENT_OPERATIONS))
def test_segment_operation_from_other_thread(factory: str, name: str) -> None:
    with Arena.of_confined() as arena:
        segment = SEGMENT_FACTORIES[factory](arena)
        error = run_in_thread(lambda: SEGMENT_OPERATIONS[name](segment))
    assert isinstance(error, ffm.WrongThreadError), error
    assert "Attempted access outside owning thread" in str(error)


@pytest.mark.parametrize("name", sorted(SEGMENT_OPERATIONS))
def test_operations_work_while_open(name: str) -> None:
    with Arena.of_confined() as arena:
        segment = arena.allocate(32, 8)
        segment.set(ADDRESS, 8, MemorySegment.NULL)
        SEGMENT_OPERATIONS[name](segment)
