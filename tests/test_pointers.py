"""Pointers as segments at native speed: ADDRESS results of downcall handles and
MemorySegment.get/set(ADDRESS) are native (no Python code of the runtime runs) and
indistinguishable from the Python methods (same results, same fields, same exceptions and
messages)."""

from __future__ import annotations

import sys
import types
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from test_accel import JUNK, SEGMENT_FIELDS, Index, tamper, tampered_outcome

import ffm_runtime
from ffm_runtime import (
    ADDRESS,
    JAVA_INT,
    JAVA_LONG,
    Arena,
    FunctionDescriptor,
    Linker,
    MemorySegment,
    _accel,
    _access,
    _handles,
)

INDEX = {method: i for i, (_, method) in enumerate(ffm_runtime._contract.ACCELERATORS)}
RUNTIME = str(Path(ffm_runtime.__file__).parent)
ENABLE, POLICY = _access.ENV_ENABLE, _access.ENV_POLICY


def python(method: str) -> Callable[..., Any]:
    """The Python implementation of an accelerated ``MemorySegment`` method."""
    return _accel._python_methods[INDEX[method]]


def runtime_calls(call: Callable[[], Any]) -> tuple[Any, list[str]]:
    """``call()``'s result, and the Python functions of ffm_runtime that ran meanwhile."""
    seen: list[str] = []

    def profile(frame: types.FrameType, event: str, arg: object) -> None:
        if event == "call" and frame.f_code.co_filename.startswith(RUNTIME):
            seen.append(frame.f_code.co_name)

    sys.setprofile(profile)
    try:
        result = call()
    finally:
        sys.setprofile(None)
    return result, seen


def state(segment: MemorySegment) -> tuple[Any, ...]:
    """What a segment is: its type, fields (the scope and guard by identity), and whether it
    is read-only (not its bytes: it may be anywhere)."""
    return (
        type(segment).__name__,
        segment._address,
        segment._size,
        id(segment._scope),
        id(segment._guard),
        segment._align,
        segment.is_read_only(),
    )


def outcome(call: Callable[..., Any], *args: Any) -> tuple[Any, ...]:
    try:
        value = call(*args)
    except Exception as exc:
        return ("raised", type(exc), str(exc))
    if isinstance(value, MemorySegment):
        return ("segment", *state(value))
    return ("value", type(value), value)


@pytest.fixture
def segments() -> Iterator[dict[str, MemorySegment]]:
    heap = bytearray(64)
    with Arena.of_confined() as confined:
        block = confined.allocate(64, 64)
        block.copy_from(MemorySegment.of_array(bytearray(range(64))))
        auto = Arena.of_auto().allocate(64, 64)
        closed_arena = Arena.of_confined()
        closed = closed_arena.allocate(64, 64)
        closed_arena.close()
        yield {
            "confined": block,
            "auto": auto,
            "global": MemorySegment.of_address(block.address).reinterpret(64),
            "zero-length": MemorySegment.of_address(block.address),
            "read-only": block.as_read_only(),
            "odd slice": block.as_slice(1, 40),
            "heap": MemorySegment.of_array(heap),
            "bytes": MemorySegment.of_array(bytes(range(64))),
            "closed": closed,
            "NULL": MemorySegment.NULL,
        }


# -- no Python code on the native paths ----------------------------------------------------
@pytest.fixture(scope="module")
def lib(lookup: Any, stub_site: Path) -> Any:
    return lookup.find


def test_native_paths_run_no_python_code(lib: Any) -> None:
    """Each operation, on its common case, runs no Python code of the runtime (before, each
    went through a Python function: the result cell, the codec, the access check)."""
    linker = Linker.native_linker()
    echo = linker.downcall_handle(lib("id_ptr"), FunctionDescriptor.of(ADDRESS, ADDRESS))
    echo_critical = linker.downcall_handle(
        lib("id_ptr"), FunctionDescriptor.of(ADDRESS, ADDRESS), Linker.Option.critical()
    )
    int_ptr = linker.downcall_handle(
        lib("int_ptr"), FunctionDescriptor.of(ADDRESS.with_target_layout(JAVA_INT))
    )
    pointer_to_long = ADDRESS.with_target_layout(JAVA_LONG)
    with Arena.of_confined() as arena:
        segment = arena.allocate(64, 8)
        target = arena.allocate(8, 8)
        segment.set(ADDRESS, 8, target)
        operations: dict[str, Callable[[], Any]] = {
            "ADDRESS result": lambda: echo(target),
            "ADDRESS result, critical": lambda: echo_critical(target),
            "ADDRESS result with a target layout": int_ptr,
            "get(ADDRESS)": lambda: segment.get(ADDRESS, 8),
            "get(ADDRESS with a target layout)": lambda: segment.get(pointer_to_long, 8),
            "set(ADDRESS)": lambda: segment.set(ADDRESS, 16, target),
        }
        for name, operation in operations.items():
            operation()
            result, calls = runtime_calls(operation)
            assert calls == [], (name, calls)
            assert result is None or isinstance(result, MemorySegment), name
        assert echo(target).address == target.address
        assert int_ptr().byte_size == 4 and int_ptr().get(JAVA_INT, 0) == 1234
        assert segment.get(pointer_to_long, 8).byte_size == 8
        assert segment.get(JAVA_LONG, 16) == target.address


# -- ADDRESS results -------------------------------------------------------------------------
@pytest.mark.parametrize("critical", [False, True])
def test_address_results_are_what_python_makes(lib: Any, critical: bool) -> None:
    """An ADDRESS result is the segment ``_handles.result_segment`` makes, field by field:
    MemorySegment.NULL itself for 0, a zero-length global segment otherwise (the target
    layout's size with one), for addresses beyond the signed range too."""
    options = (Linker.Option.critical(),) if critical else ()
    echo = Linker.native_linker().downcall_handle(
        lib("id_ptr"), FunctionDescriptor.of(ADDRESS, ADDRESS), *options
    )
    assert echo(MemorySegment.NULL) is MemorySegment.NULL
    for address in (1, 8, 2**30 - 1, 2**30 + 12, 2**47 + 3, 2**63, 2**64 - 8, 2**64 - 1):
        result = echo(MemorySegment.of_address(address))
        assert state(result) == state(_handles.result_segment(address, 0)), address
        assert result.scope is ffm_runtime._memory.GLOBAL_SCOPE and result._view is None
        assert result._base == 0 and not result.is_read_only()
    int_ptr = Linker.native_linker().downcall_handle(
        lib("int_ptr"), FunctionDescriptor.of(ADDRESS.with_target_layout(JAVA_INT))
    )
    result = int_ptr()
    assert state(result) == state(_handles.result_segment(result.address, 4))


# -- get / set (ADDRESS) ------------------------------------------------------------------
POINTERS = [
    ADDRESS,
    ADDRESS.with_target_layout(JAVA_LONG),
    ADDRESS.with_target_layout(ffm_runtime.MemoryLayout.sequence_layout(100, JAVA_INT)),
    ADDRESS.with_order("big"),
    ADDRESS.with_byte_alignment(1),
    ADDRESS.with_name("p"),
]
OFFSETS: list[Any] = [0, 8, 3, 56, 57, 64, -1, 2**63, Index(8), 8.0, None]


def test_get_address_matches_python(segments: dict[str, MemorySegment]) -> None:
    patterns = [0, 1, 2**31 + 5, 2**47 + 8, 2**63, 2**64 - 1]
    for name, segment in segments.items():
        for pattern in patterns:
            if name in ("confined", "auto", "global"):
                segment.set(JAVA_LONG, 8, pattern - 2**64 if pattern >= 2**63 else pattern)
            for layout in POINTERS:
                for offset in OFFSETS:
                    native = outcome(segment.get, layout, offset)
                    assert native == outcome(python("get"), segment, layout, offset), (name, layout, offset)
                assert outcome(segment.get, layout) == outcome(python("get"), segment, layout)


def test_set_address_matches_python(segments: dict[str, MemorySegment]) -> None:
    """Writes a native segment's address (whatever its scope, as Python); refuses heap
    segments and anything else with Python's exceptions, writing nothing."""
    with Arena.of_confined() as arena:
        closed_arena = Arena.of_confined()
        closed = closed_arena.allocate(8)
        closed_arena.close()
        odd = MemorySegment.of_address(0x1000)
        odd._address = Index(0x2000)  # type: ignore[attr-defined]
        values: list[Any] = [
            MemorySegment.NULL,
            arena.allocate(8),
            MemorySegment.of_address(2**64 - 1),
            closed,
            segments["read-only"],
            MemorySegment.of_array(bytearray(8)),
            MemorySegment.of_array(b"xy"),
            odd,
            5,
            None,
            "x",
        ]
        for name, segment in segments.items():
            for layout in POINTERS:
                for offset in (0, 8, 3, 60, -1, Index(16)):
                    for value in values:
                        before = segment.to_bytes() if name in ("confined", "auto", "heap") else None
                        native = (outcome(segment.set, layout, offset, value), _bytes(name, segment))
                        if before is not None:
                            segment.copy_from(MemorySegment.of_array(bytearray(before)))
                        expected = (
                            outcome(python("set"), segment, layout, offset, value),
                            _bytes(name, segment),
                        )
                        assert native == expected, (name, layout, offset, value)


def _bytes(name: str, segment: MemorySegment) -> bytes | None:
    return segment.to_bytes() if name in ("confined", "auto", "heap") else None


# -- private fields that were replaced ------------------------------------------------------
@pytest.mark.parametrize("field", SEGMENT_FIELDS)
def test_tampered_segments_match_python(field: str) -> None:
    """A segment whose private field was replaced gets the same result or exception from the
    native and the Python methods (as parent, and as the value set)."""
    auto = Arena.of_auto()
    with Arena.of_confined() as confined:
        for junk in JUNK:
            for scope in (confined, auto, None):
                native, python_side = (
                    (scope.allocate(16, 8), scope.allocate(16, 8))
                    if scope is not None
                    else (
                        MemorySegment.of_address(auto.allocate(16, 8).address).reinterpret(16),
                        MemorySegment.of_address(auto.allocate(16, 8).address).reinterpret(16),
                    )
                )
                tamper(native, field, junk)
                tamper(python_side, field, junk)
                where = (field, junk, scope)
                for method, args in (
                    ("get", (ADDRESS, 0)),
                    ("set", (ADDRESS, 0, MemorySegment.NULL)),
                ):
                    assert tampered_outcome(getattr(native, method), *args) == tampered_outcome(
                        python(method), python_side, *args
                    ), (*where, method)
                cell = confined.allocate(8, 8)
                assert tampered_outcome(cell.set, ADDRESS, 0, native) == tampered_outcome(
                    python("set"), cell, ADDRESS, 0, python_side
                ), where


@pytest.mark.parametrize(
    ("field", "junk"), [("_target_size", -1), ("_target_size", "x"), ("_kind", 5), ("_kind", 9)]
)
def test_tampered_layouts_match_python(field: str, junk: object) -> None:
    """An address layout whose private field was replaced (and a value layout with an
    address's kind): the same outcome from both paths."""
    with Arena.of_confined() as arena:
        cell = arena.allocate(8, 8)
        cell.set(JAVA_LONG, 0, 0x1000)
        layouts = [ADDRESS.with_name("tampered")]
        if field == "_kind":
            layouts.append(JAVA_LONG.with_name("tampered"))
        for layout in layouts:
            object.__setattr__(layout, field, junk)
            assert tampered_outcome(cell.get, layout, 0) == tampered_outcome(python("get"), cell, layout, 0)
            assert tampered_outcome(cell.set, layout, 0, MemorySegment.NULL) == tampered_outcome(
                python("set"), cell, layout, 0, MemorySegment.NULL
            )
