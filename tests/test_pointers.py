"""Pointers as segments at native speed: ADDRESS results of downcall handles,
MemorySegment.get/set(ADDRESS), reinterpret and as_slice are native (no Python code of the
runtime runs) and indistinguishable from the Python methods (same results, same fields,
same exceptions and messages); reinterpret's caller check is decided once per calling code
and is still right when what it was decided from changes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import types
import warnings
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
    IllegalCallerError,
    Linker,
    MemorySegment,
    NativeAccessWarning,
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
        pointer = MemorySegment.of_address(target.address)
        operations: dict[str, Callable[[], Any]] = {
            "ADDRESS result": lambda: echo(target),
            "ADDRESS result, critical": lambda: echo_critical(target),
            "ADDRESS result with a target layout": int_ptr,
            "get(ADDRESS)": lambda: segment.get(ADDRESS, 8),
            "get(ADDRESS with a target layout)": lambda: segment.get(pointer_to_long, 8),
            "set(ADDRESS)": lambda: segment.set(ADDRESS, 16, target),
            "reinterpret(size)": lambda: pointer.reinterpret(8),
            "reinterpret(size, arena)": lambda: pointer.reinterpret(8, arena),
            "as_slice(offset, size)": lambda: segment.as_slice(8, 16),
            "as_slice(offset, size, alignment)": lambda: segment.as_slice(8, 16, 8),
            "as_slice(offset)": lambda: segment.as_slice(8),
            "as_slice(offset, None, alignment)": lambda: segment.as_slice(8, None, 8),
        }
        for name, operation in operations.items():
            operation()  # (reinterpret: the caller check decides, and remembers)
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


class Size(int):
    """An int subclass as a layout's target size: never shared by the native path."""


def test_get_address_shares_the_target_size_as_python_does() -> None:
    """The segment read through a layout with a target layout holds the layout's size int
    itself (as Python's does), one reference per segment, released with it."""
    everything = ffm_runtime.MemoryLayout.sequence_layout(2**63 - 1, ffm_runtime.JAVA_BYTE)
    text = ADDRESS.with_target_layout(everything)
    size = text._target_size  # type: ignore[attr-defined]
    with Arena.of_confined() as arena:
        cell = arena.allocate(8, 8)
        cell.set(ADDRESS, 0, arena.allocate_from("hi"))
        before = sys.getrefcount(size)
        pointers = [cell.get(text, 0) for _ in range(100)]
        assert all(p._size is size for p in pointers)  # type: ignore[attr-defined]
        assert python("get")(cell, text, 0)._size is size
        assert sys.getrefcount(size) == before + 100
        del pointers
        assert sys.getrefcount(size) == before
        assert cell.get(text, 0).get_string() == "hi"
        odd = ADDRESS.with_target_layout(JAVA_LONG)
        ADDRESS.__class__._target_size.__set__(odd, Size(8))  # type: ignore[attr-defined]
        for pointer in (cell.get(odd, 0), python("get")(cell, odd, 0)):
            assert pointer.byte_size == 8 and pointer.address == cell.get(JAVA_LONG, 0)


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


# -- as_slice ---------------------------------------------------------------------------------
SLICES: list[tuple[Any, ...]] = [
    (0, 0),
    (8, 16),
    (8, 16, 8),
    (1, 8, 2),
    (0, 64, 64),
    (4, 60),
    (4, 61),
    (64, 0),
    (65, 0),
    (-1, 4),
    (4, -1),
    (8, 16, 3),
    (8, 16, 0),
    (8, 16, -8),
    (2**63, 1),
    (8, 2**63),
    (Index(8), 8),
    (8, Index(8)),
    (8, 8, Index(8)),
    (8.0, 8),
    (True, 8),
    (8, None),
    (8, JAVA_LONG),
    (8,),
    (0,),
    (64,),
    (65,),
    (-1,),
    (2**63,),
    (Index(8),),
    (8.0,),
    (8, None, 8),
    (1, None, 2),
    (65, None),
    (8, None, 3),
]


def test_as_slice_matches_python(segments: dict[str, MemorySegment]) -> None:
    for name, segment in segments.items():
        for args in SLICES:
            native = outcome(segment.as_slice, *args)
            assert native == outcome(python("as_slice"), segment, *args), (name, args)
        with pytest.raises(TypeError, match="byte_alignment must be an int, not str"):
            segment.as_slice(0, 0, "1")


def test_slices_of_slices_see_the_same_bytes() -> None:
    """A slice of a segment that has no view yet (a global one) reads and writes the same
    memory as the Python method's slice."""
    with Arena.of_confined() as arena:
        block = arena.allocate(64, 8)
        block.copy_from(MemorySegment.of_array(bytearray(range(64))))
        whole = MemorySegment.of_address(block.address).reinterpret(64)
        native = whole.as_slice(8, 32).as_slice(4, 8)
        assert native.to_bytes() == bytes(range(12, 20)) == python("as_slice")(whole, 12, 8).to_bytes()
        native.set(JAVA_INT, 0, -1)
        assert block.get(JAVA_INT, 12) == -1
        assert bytes(native.as_memoryview()) == block.as_slice(12, 8).to_bytes()


def test_as_slice_from_another_thread() -> None:
    arena = Arena.of_confined()
    segment = arena.allocate(16)
    found: list[Any] = []
    thread = threading.Thread(target=lambda: found.append(outcome(segment.as_slice, 0, 8)))
    thread.start()
    thread.join()
    assert found == [("raised", ffm_runtime.WrongThreadError, "Attempted access outside owning thread")]
    arena.close()
    with pytest.raises(ffm_runtime.ScopeClosedError, match="Already closed"):
        segment.as_slice(0, 8)


# -- reinterpret ------------------------------------------------------------------------------
def test_reinterpret_matches_python(segments: dict[str, MemorySegment]) -> None:
    with Arena.of_confined() as open_arena:
        closed_arena = Arena.of_confined()
        closed_arena.close()
        foreign: list[Arena] = []
        made, done = threading.Event(), threading.Event()

        def own_an_arena() -> None:
            with Arena.of_confined() as arena:
                foreign.append(arena)
                made.set()
                done.wait()

        thread = threading.Thread(target=own_an_arena)
        thread.start()
        made.wait()
        arenas: list[Any] = [
            open_arena,
            Arena.of_auto(),
            Arena.global_arena(),
            closed_arena,
            foreign[0],
            None,
            5,
        ]
        sizes: list[Any] = [0, 16, 64, 2**40, -1, 2**63, Index(8), 8.0, True, None, "8"]
        try:
            for name, segment in segments.items():
                for size in sizes:
                    native = outcome(segment.reinterpret, size)
                    assert native == outcome(python("reinterpret"), segment, size), (name, size)
                    for arena in arenas:
                        native = outcome(segment.reinterpret, size, arena)
                        expected = outcome(python("reinterpret"), segment, size, arena)
                        assert native == expected, (name, size, arena)
        finally:
            done.set()
            thread.join()


def test_reinterpret_keeps_the_scope_and_the_guard() -> None:
    with Arena.of_confined() as arena:
        segment = arena.allocate(8)
        wider = segment.reinterpret(32)
        assert type(wider) is type(segment) and wider.scope is arena and wider._guard is segment._guard
        moved = MemorySegment.of_address(segment.address).reinterpret(8, arena)
        assert type(moved) is type(segment) and moved.scope is arena
        moved.set(JAVA_LONG, 0, 7)
        assert segment.get(JAVA_LONG, 0) == 7
        auto = Arena.of_auto()
        into_auto = segment.reinterpret(8, auto)
        assert type(into_auto) is MemorySegment and into_auto.scope is auto and into_auto._guard is None
    with pytest.raises(ffm_runtime.ScopeClosedError, match="Already closed"):
        moved.get(JAVA_LONG, 0)


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
                    ("as_slice", (0, 0)),
                    ("as_slice", (4,)),
                    ("reinterpret", (8,)),
                    ("reinterpret", (8, confined)),
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


# -- the caller check, remembered -------------------------------------------------------------
CALLER = compile("def call(size):\n    return segment.reinterpret(size)\n", "<caller>", "exec")


def caller(module: str, segment: MemorySegment, **extra: Any) -> tuple[Callable[[int], Any], dict[str, Any]]:
    """A function of module ``module`` (its unit: the top-level package) calling reinterpret."""
    scope: dict[str, Any] = {"__name__": module, "segment": segment, **extra}
    exec(CALLER, scope)
    return scope["call"], scope


def remembered(call: Callable[[], Any]) -> Any:
    """``call()``, checking it was decided natively (no Python code of the runtime)."""
    result, calls = runtime_calls(call)
    assert calls == [], calls
    return result


@pytest.fixture
def pointer() -> MemorySegment:
    return MemorySegment.of_address(0x1000)


def denied(unit: str) -> str:
    return (
        rf"Illegal native access from package '{unit}' \(module {unit}\.mod\) calling the "
        r"restricted MemorySegment\.reinterpret"
    )


def test_a_changed_variable_is_seen(monkeypatch: pytest.MonkeyPatch, pointer: MemorySegment) -> None:
    call, _ = caller("unit_a.mod", pointer)
    monkeypatch.setenv(ENABLE, "unit_a")
    monkeypatch.delenv(POLICY, raising=False)
    call(8)
    assert remembered(lambda: call(16)).byte_size == 16
    monkeypatch.setenv(ENABLE, "other")
    with pytest.raises(IllegalCallerError, match=denied("unit_a")):
        call(8)
    monkeypatch.setenv(ENABLE, "unit_a")  # the same value again: a new string
    call(8)
    assert remembered(lambda: call(8)).byte_size == 8
    monkeypatch.setenv(POLICY, "allow")  # another variable: decided again, then remembered
    monkeypatch.setenv(ENABLE, "")
    call(8)
    assert remembered(lambda: call(8)).byte_size == 8
    monkeypatch.setenv(POLICY, "deny")
    with pytest.raises(IllegalCallerError, match=denied("unit_a")):
        call(8)
    monkeypatch.delenv(POLICY)
    with pytest.raises(IllegalCallerError, match=denied("unit_a")):
        call(8)


def test_the_same_code_in_other_modules(monkeypatch: pytest.MonkeyPatch, pointer: MemorySegment) -> None:
    """One code object run under the globals of two modules: each gets its own decision,
    however the calls alternate."""
    monkeypatch.setenv(ENABLE, "unit_a")
    call_a, _ = caller("unit_a.mod", pointer)
    call_b = types.FunctionType(call_a.__code__, {"__name__": "unit_b.mod", "segment": pointer})
    assert call_a.__code__ is call_b.__code__
    for _ in range(3):
        assert call_a(8).byte_size == 8
        with pytest.raises(IllegalCallerError, match=denied("unit_b")):
            call_b(8)
    assert remembered(lambda: call_a(8)).byte_size == 8


def test_a_module_renamed(monkeypatch: pytest.MonkeyPatch, pointer: MemorySegment) -> None:
    monkeypatch.setenv(ENABLE, "unit_a")
    call, scope = caller("unit_a.mod", pointer)
    call(8)
    remembered(lambda: call(8))
    scope["__name__"] = "unit_b.mod"
    with pytest.raises(IllegalCallerError, match=denied("unit_b")):
        call(8)
    scope["__name__"] = "unit_a.mod"
    call(8)
    remembered(lambda: call(8))
    del scope["__name__"]  # a module without a name is __main__
    with pytest.raises(IllegalCallerError, match="from the __main__ script"):
        call(8)


def test_main_run_as_a_module(monkeypatch: pytest.MonkeyPatch, pointer: MemorySegment) -> None:
    """__main__'s unit comes from its __spec__ (python -m unit_a.tool): a changed spec counts."""
    monkeypatch.setenv(ENABLE, "unit_a")
    spec = types.SimpleNamespace(name="unit_a.tool")
    call, scope = caller("__main__", pointer, __spec__=spec)
    call(8)
    call(8)
    spec.name = "unit_b.tool"
    with pytest.raises(IllegalCallerError, match="from package 'unit_b'"):
        call(8)
    scope["__spec__"] = None
    with pytest.raises(IllegalCallerError, match="from the __main__ script"):
        call(8)
    monkeypatch.setenv(ENABLE, "unit_a,__main__")
    call(8)
    remembered(lambda: call(8))
    scope["__spec__"] = types.SimpleNamespace(name="unit_b.tool")
    with pytest.raises(IllegalCallerError, match="from package 'unit_b'"):
        call(8)


def test_units_enabled_while_building(monkeypatch: pytest.MonkeyPatch, pointer: MemorySegment) -> None:
    monkeypatch.setenv(ENABLE, "other")
    call, _ = caller("unit_c.mod", pointer)
    with _access.enabled_while(["unit_c"]):
        call(8)
        remembered(lambda: call(8))
    with pytest.raises(IllegalCallerError, match=denied("unit_c")):
        call(8)


def test_a_new_manifest_on_sys_path(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, pointer: MemorySegment
) -> None:
    """ALL-UNNAMED lets a package through until a manifest mentions it: one found on a new
    sys.path entry counts at the next call, as in Python."""
    monkeypatch.setenv(ENABLE, _access.ALL_UNNAMED)
    call, _ = caller("unit_d.mod", pointer)
    call(8)
    remembered(lambda: call(8))
    manifest = tmp_path / "unit_d" / "_ffm" / "manifest.json"
    manifest.parent.mkdir(parents=True)
    manifest.write_text(
        json.dumps(
            {
                "format": ffm_runtime._manifest.FORMAT_VERSION,
                "generator": ffm_runtime._manifest.GENERATOR,
                "package": "unit_d",
                "objects": [],
                "stubs": [],
                "enable_native_access": [],
            }
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(IllegalCallerError, match=denied("unit_d")):
        call(8)


def test_warn_warns_once_then_lets_through(monkeypatch: pytest.MonkeyPatch, pointer: MemorySegment) -> None:
    monkeypatch.setenv(ENABLE, "other")
    monkeypatch.setenv(POLICY, "warn")
    call, _ = caller("unit_w.mod", pointer)
    with pytest.warns(NativeAccessWarning, match="MemorySegment.reinterpret has been called by unit_w.mod"):
        call(8)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        call(8)
        remembered(lambda: call(8))


def test_threads(monkeypatch: pytest.MonkeyPatch, pointer: MemorySegment) -> None:
    """A decision is the calling code's, in any thread; a restricted method handed to the
    standard library (a thread's target) is still refused after code of an enabled package
    was let through."""
    monkeypatch.setenv(ENABLE, "unit_a")
    call, _ = caller("unit_a.mod", pointer)
    call(8)
    found: list[Any] = []
    thread = threading.Thread(target=lambda: found.append(remembered(lambda: call(8)).byte_size))
    thread.start()
    thread.join()
    assert found == [8]
    errors: list[BaseException] = []

    def run() -> None:
        try:
            threading.Thread.run(worker)
        except IllegalCallerError as exc:
            errors.append(exc)

    worker = threading.Thread(target=pointer.reinterpret, args=(8,))
    worker.run = run  # type: ignore[method-assign]
    worker.start()
    worker.join()
    assert len(errors) == 1 and "the standard library's threading" in str(errors[0])


def test_decisions_are_bounded(monkeypatch: pytest.MonkeyPatch, pointer: MemorySegment) -> None:
    monkeypatch.setenv(ENABLE, "unit_a")
    for index in range(_access._DECIDED_MAX + 10):
        code = compile(f"def call(size):\n    return segment.reinterpret(size + {index})\n", "<many>", "exec")
        scope = {"__name__": "unit_a.mod", "segment": pointer}
        exec(code, scope)
        scope["call"](0)
    assert len(_access._decided) <= _access._DECIDED_MAX


def test_the_environment_read_natively_is_os_environ() -> None:
    assert _access.NATIVE_STATE[3] is os.environ
    assert _access.NATIVE_STATE[4] is os.environ._data  # type: ignore[attr-defined]
    assert _access.NATIVE_STATE[14] == "_data"
    assert len(_access.NATIVE_STATE) == len(ffm_runtime._contract.NATIVE_ACCESS_ITEMS)


def test_scripts_and_namespaces_without_a_name(
    monkeypatch: pytest.MonkeyPatch, pointer: MemorySegment
) -> None:
    """Code run in globals without ``__name__`` (timeit's, exec's) or in a ``__main__``
    without ``__spec__`` is the ``__main__`` script's, and remembered as such."""
    monkeypatch.setenv(ENABLE, "__main__")
    nameless: dict[str, Any] = {"segment": pointer}
    exec(CALLER, nameless)
    main, _ = caller("__main__", pointer)
    for call in (nameless["call"], main):
        call(8)
        assert remembered(lambda: call(8)).byte_size == 8  # noqa: B023
    monkeypatch.setenv(ENABLE, "other")
    for call in (nameless["call"], main):
        with pytest.raises(IllegalCallerError, match="from the __main__ script"):
            call(8)


@pytest.mark.parametrize("pure_python", ["", "1"], ids=["native", "python"])
def test_the_check_holds_the_decision_it_reads(pure_python: str) -> None:
    """Python code run by a dictionary lookup of the remembered check (a colliding key of the
    caller's globals) decides again and drops the decision being read: no use after free."""
    script = Path(__file__).parent / "scripts" / "reinterpret_check_reentered.py"
    env = {**os.environ, "FFM_PURE_PYTHON": pure_python, "PYTHONMALLOC": "debug"}
    done = subprocess.run(
        [sys.executable, str(script)], check=False, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["reinterpret", "32", "compared"]


def test_a_replaced_environment_dictionary(monkeypatch: pytest.MonkeyPatch, pointer: MemorySegment) -> None:
    """``os.environ._data`` replaced by a dictionary without the policy: the variable is
    gone for Python (deny), so it is for the remembered decision."""
    monkeypatch.setenv(POLICY, "allow")
    monkeypatch.setenv(ENABLE, "other")
    call, _ = caller("unit_e.mod", pointer)
    call(8)
    assert remembered(lambda: call(8)).byte_size == 8
    data = dict(os.environ._data)  # type: ignore[attr-defined]
    del data[os.fsencode(POLICY)]
    monkeypatch.setattr(os.environ, "_data", data)
    with pytest.raises(IllegalCallerError, match=denied("unit_e")):
        call(8)


def test_a_list_subclass_as_sys_path(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, pointer: MemorySegment
) -> None:
    """``sys.path`` replaced by a list subclass holding the same entries, whose iteration (what
    the import system and the manifest registry see) adds a folder with a manifest that
    mentions the unit: ALL-UNNAMED no longer covers it, for the remembered decision too."""
    monkeypatch.setenv(ENABLE, _access.ALL_UNNAMED)
    call, _ = caller("unit_f.mod", pointer)
    call(8)
    remembered(lambda: call(8))
    manifest = tmp_path / "unit_f" / "_ffm" / "manifest.json"
    manifest.parent.mkdir(parents=True)
    manifest.write_text(
        json.dumps(
            {
                "format": ffm_runtime._manifest.FORMAT_VERSION,
                "generator": ffm_runtime._manifest.GENERATOR,
                "package": "unit_f",
                "objects": [],
                "stubs": [],
                "enable_native_access": [],
            }
        )
    )

    class Path_(list):  # type: ignore[type-arg]
        def __iter__(self) -> Iterator[Any]:
            yield from list.__iter__(self)
            yield str(tmp_path)

    monkeypatch.setattr(sys, "path", Path_(sys.path))
    with pytest.raises(IllegalCallerError, match=denied("unit_f")):
        call(8)
