"""The native accelerators of Arena.allocate, MemorySegment.get and MemorySegment.set:
installed from the objects built into ffm_runtime, and indistinguishable from the Python
methods they replace (same results, same exceptions, same messages)."""

from __future__ import annotations

import contextlib
import inspect
import math
import os
import re
import shutil
import struct
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import ffm_runtime
from ffm_runtime import (
    ADDRESS,
    JAVA_BOOLEAN,
    JAVA_BYTE,
    JAVA_CHAR,
    JAVA_DOUBLE,
    JAVA_FLOAT,
    JAVA_INT,
    JAVA_INT_UNALIGNED,
    JAVA_LONG,
    JAVA_SHORT,
    Arena,
    MemoryLayout,
    MemorySegment,
    _accel,
)

ROOT = Path(__file__).resolve().parent.parent
INDEX = {method: i for i, (_, method) in enumerate(ffm_runtime._contract.ACCELERATORS)}


class Index(int):
    """An int subclass: the Python path converts it, the native one leaves it alone."""


LAYOUTS = [
    JAVA_BYTE,
    JAVA_BOOLEAN,
    JAVA_CHAR,
    JAVA_SHORT,
    JAVA_INT,
    JAVA_LONG,
    JAVA_FLOAT,
    JAVA_DOUBLE,
    JAVA_INT_UNALIGNED,
    JAVA_LONG.with_order("big"),
    ADDRESS,
    JAVA_INT.with_name("n"),
    JAVA_SHORT.with_byte_alignment(8),
    JAVA_BYTE.unsigned(),
    JAVA_SHORT.unsigned(),
    JAVA_INT.unsigned(),
    JAVA_LONG.unsigned(),
    JAVA_INT.unsigned().with_order("big"),
    JAVA_LONG.unsigned().with_byte_alignment(1),
]
OFFSETS: list[Any] = [
    0,
    1,
    2,
    3,
    4,
    8,
    56,
    60,
    63,
    64,
    -1,
    -8,
    2**62,
    2**63,
    2**64,
    -(2**63) - 1,
    True,
    4.0,
    "4",
    None,
    Index(4),
    np.int64(8),
]
VALUES: list[Any] = [
    0,
    1,
    -1,
    127,
    128,
    -128,
    -129,
    255,
    65535,
    65536,
    -32769,
    2**31 - 1,
    2**31,
    2**63 - 1,
    2**63,
    -(2**63) - 1,
    2**32 - 1,
    2**32,
    2**64 - 1,
    2**64,
    Index(2**64 - 1),
    True,
    False,
    1.5,
    -0.0,
    3.4e38,
    1e39,
    float("inf"),
    float("nan"),
    "x",
    None,
    Index(5),
    np.int32(7),
    np.float64(2.5),
    MemorySegment.NULL,
]


def test_installed_from_the_built_objects() -> None:
    assert ffm_runtime.accelerated()
    for cls, name in (
        (Arena, "allocate"),
        (MemorySegment, "get"),
        (MemorySegment, "set"),
        (Arena, "__enter__"),
        (Arena, "close"),
        (Arena, "of_confined"),
        (MemorySegment, "reinterpret"),
        (MemorySegment, "as_slice"),
    ):
        method = cls.__dict__[name]
        original = _accel._originals[INDEX[name]]
        if name == "of_confined":
            assert isinstance(method, staticmethod), name
            method, original = method.__func__, original.__func__
            assert type(method).__name__ == "builtin_function_or_method"
        else:
            assert type(method).__name__ == "method_descriptor", name
        assert list(inspect.signature(method).parameters) == list(inspect.signature(original).parameters)
        assert (method.__doc__ or "").strip().endswith((original.__doc__ or "").strip())
    assert Arena.__dict__["__exit__"] is Arena.__dict__["close"]


def outcome(call: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[Any, ...]:
    try:
        value = call(*args, **kwargs)
    except Exception as exc:
        return ("raised", type(exc), str(exc))
    if isinstance(value, float):
        return ("value", float, struct.pack("<d", value))  # NaN-safe, -0.0-exact
    if isinstance(value, MemorySegment):
        return ("value", MemorySegment, value.address, value.byte_size)
    return ("value", type(value), value)


@pytest.fixture
def segments() -> Iterator[dict[str, tuple[MemorySegment, MemorySegment]]]:
    """name -> (segment under test, a writable segment over the same bytes)."""
    heap = bytearray(64)
    with Arena.of_confined() as confined:
        block = confined.allocate(64, 64)
        auto = Arena.of_auto().allocate(64, 64)
        closed_arena = Arena.of_confined()
        closed = closed_arena.allocate(64, 64)
        closed_arena.close()
        shared_arena, closed_shared_arena = Arena.of_shared(), Arena.of_shared()
        shared = shared_arena.allocate(64, 64)
        closed_shared = closed_shared_arena.allocate(64, 64)
        closed_shared_arena.close()
        yield {
            "shared": (shared, shared),
            "shared slice": (shared.as_slice(3, 40), shared.as_slice(3, 40)),
            "closed shared": (closed_shared, closed_shared),
            "confined": (block, block),
            "auto": (auto, auto),
            "read-only": (block.as_read_only(), block),
            "odd slice": (block.as_slice(1, 40), block.as_slice(1, 40)),
            "heap": (MemorySegment.of_array(heap), MemorySegment.of_array(heap)),
            "empty": (block.as_slice(0, 0), block),
            "closed": (closed, closed),
        }
        shared_arena.close()


def test_get_matches_python(segments: dict[str, tuple[MemorySegment, MemorySegment]]) -> None:
    python_get = _accel._python_methods[INDEX["get"]]
    compared = 0
    for name, (segment, writable) in segments.items():
        if not name.startswith("closed"):
            writable.fill(0)
            writable.copy_from(MemorySegment.of_array(bytearray(range(7, 7 + writable.byte_size))))
        for layout in LAYOUTS:
            for offset in OFFSETS:
                native = outcome(segment.get, layout, offset)
                python = outcome(python_get, segment, layout, offset)
                assert native == python, (name, layout, offset)
                compared += 1
            assert outcome(segment.get, layout) == outcome(python_get, segment, layout)
            assert outcome(segment.get, layout, offset=8) == outcome(python_get, segment, layout, offset=8)
    assert compared == len(segments) * len(LAYOUTS) * len(OFFSETS)


def test_set_matches_python(segments: dict[str, tuple[MemorySegment, MemorySegment]]) -> None:
    python_set = _accel._python_methods[INDEX["set"]]
    for name, (segment, writable) in segments.items():
        for layout in LAYOUTS:
            for offset in (0, 3, 8, 60, -1, 2**63, Index(4)):
                for value in VALUES:
                    native = _set_outcome(name, writable, segment.set, layout, offset, value)
                    python = _set_outcome(name, writable, python_set, segment, layout, offset, value)
                    assert native == python, (name, layout, offset, value)
        assert _set_outcome(name, writable, segment.set, JAVA_INT, offset=4, value=9) == _set_outcome(
            name, writable, python_set, segment, JAVA_INT, offset=4, value=9
        )


def _set_outcome(
    name: str, writable: MemorySegment, setter: Callable[..., Any], *args: Any, **kwargs: Any
) -> tuple[Any, ...]:
    """What a set did: its outcome, and the bytes of the segment (0x5A before)."""
    if not name.startswith("closed"):
        writable.fill(0x5A)
    result = outcome(setter, *args, **kwargs)
    return (*result, b"" if name.startswith("closed") else writable.to_bytes())


def test_values_round_trip_exactly() -> None:
    with Arena.of_confined() as arena:
        cell = arena.allocate(8, 8)
        for layout, values in (
            (JAVA_BYTE.unsigned(), (0, 128, 255)),
            (JAVA_SHORT.unsigned(), (0, 32768, 65535)),
            (JAVA_INT.unsigned(), (0, 2**31, 2**32 - 1)),
            (JAVA_LONG.unsigned(), (0, 2**63, 2**64 - 1)),
            (JAVA_BYTE, (-128, 127)),
            (JAVA_CHAR, (0, 65535)),
            (JAVA_SHORT, (-32768, 32767)),
            (JAVA_INT, (-(2**31), 2**31 - 1)),
            (JAVA_LONG, (-(2**63), 2**63 - 1)),
            (JAVA_BOOLEAN, (True, False)),
            (JAVA_DOUBLE, (math.pi, -0.0, 5e-324)),
            (JAVA_FLOAT, (1.5, -(2.0**127))),
        ):
            for value in values:
                cell.set(layout, 0, value)
                assert cell.get(layout, 0) == value
                assert type(cell.get(layout, 0)) is type(value)


STRUCT = MemoryLayout.struct_layout(JAVA_INT.with_name("a"), JAVA_INT, JAVA_LONG.with_name("b"))


@pytest.mark.parametrize("make", [Arena.of_confined, Arena.of_shared], ids=["confined", "shared"])
def test_allocate_matches_python(make: Callable[[], Arena]) -> None:
    python_allocate = _accel._python_methods[INDEX["allocate"]]
    cases: list[tuple[Any, ...]] = [
        (0,),
        (1,),
        (64,),
        (4096,),
        (4097,),
        (8, 8),
        (8, 64),
        (8, 128),
        (8, 3),
        (8, 0),
        (-1,),
        (8, -8),
        (2**63,),
        (Index(8),),
        (8, Index(8)),
        (8.0,),
        ("8",),
        (JAVA_INT,),
        (JAVA_INT, 3),
        (True,),
        (),
        # layouts: struct, value and address layouts natively, the others through Python
        (STRUCT,),
        (STRUCT, 0),
        (STRUCT, 3),
        (STRUCT, 256),
        (STRUCT, 257),  # a block of its own
        (STRUCT, -1),
        (STRUCT, 2**63),
        (STRUCT, Index(2)),
        (STRUCT, 2.0),
        (STRUCT, None),
        (JAVA_LONG, 512),
        (JAVA_LONG, 513),
        (JAVA_DOUBLE.with_byte_alignment(64),),
        (JAVA_INT.with_byte_alignment(128), 2),
        (ADDRESS,),
        (ADDRESS.with_target_layout(JAVA_INT), 2),
        (MemoryLayout.struct_layout(),),
        (MemoryLayout.struct_layout(JAVA_BYTE.with_byte_alignment(4096)),),
        (MemoryLayout.union_layout(JAVA_INT, JAVA_LONG),),
        (MemoryLayout.sequence_layout(3, JAVA_INT),),
        (MemoryLayout.padding_layout(8),),
    ]
    with make() as native_arena, make() as python_arena:
        for args in cases:
            native = outcome(native_arena.allocate, *args)
            python = outcome(python_allocate, python_arena, *args)
            if native[0] == "value":
                segment = native_arena.allocate(*args)
                assert python[0] == "value" and segment.byte_size == python[3], args
                assert segment.scope is native_arena and segment.to_bytes() == bytes(python[3])
            else:
                assert native == python, args
        assert native_arena.allocate(16, alignment_or_count=8).byte_size == 16
        assert native_arena.allocate(STRUCT, alignment_or_count=2).byte_size == 32


@pytest.mark.parametrize("field", ["_byte_size", "_byte_alignment"])
def test_allocate_of_tampered_layouts_matches_python(field: str) -> None:
    """A layout whose size or alignment field was replaced: the native allocate and the
    Python method agree (each reads it once, as an int or not at all)."""
    python_allocate = _accel._python_methods[INDEX["allocate"]]
    with Arena.of_confined() as arena:
        for junk in JUNK:
            for make in (
                lambda: MemoryLayout.struct_layout(JAVA_INT, JAVA_INT),
                lambda: JAVA_LONG.with_name("x"),
            ):
                native, python = make(), make()
                for layout in (native, python):
                    descriptor = MemoryLayout.__dict__[field]
                    if junk == "<unset>":
                        descriptor.__delete__(layout)
                    else:
                        descriptor.__set__(layout, junk)
                for count in ((), (2,)):
                    assert tampered_outcome(arena.allocate, native, *count) == tampered_outcome(
                        python_allocate, arena, python, *count
                    ), (field, junk, count)


def test_allocate_of_layouts_is_native() -> None:
    """allocate(layout[, count]) of struct, value and address layouts takes no slow path,
    and gives what the Python method gives: byte_size * count bytes, aligned as the layout."""
    methods = _accel._python_methods
    index = INDEX["allocate"]
    original = methods[index]
    slow: list[int] = []
    methods[index] = lambda *args, **kwargs: slow.append(1) or original(*args, **kwargs)
    try:
        with Arena.of_confined() as arena:
            made = [
                arena.allocate(STRUCT),
                arena.allocate(STRUCT, 3),
                arena.allocate(JAVA_LONG),
                arena.allocate(JAVA_SHORT, 5),
                arena.allocate(ADDRESS, 2),
                arena.allocate(JAVA_DOUBLE.with_byte_alignment(64)),
            ]
            assert not slow
            assert [s.byte_size for s in made] == [16, 48, 8, 10, 16, 8]
            assert [s.address % a for s, a in zip(made, (8, 8, 8, 2, 8, 64), strict=True)] == [0] * 6
            assert all(s.to_bytes() == bytes(s.byte_size) and s.scope is arena for s in made)
            arena.allocate(MemoryLayout.union_layout(JAVA_INT))
            assert slow == [1]
    finally:
        methods[index] = original


def test_allocate_from_another_thread_and_after_close() -> None:
    import threading

    arena = Arena.of_confined()
    errors: list[BaseException] = []
    thread = threading.Thread(target=lambda: errors.append(outcome(arena.allocate, 8)))
    thread.start()
    thread.join()
    assert errors == [("raised", ffm_runtime.WrongThreadError, "Attempted access outside owning thread")]
    arena.close()
    with pytest.raises(ffm_runtime.ScopeClosedError, match="Already closed"):
        arena.allocate(8)


def test_allocate_from_a_shared_arena_in_another_thread_and_after_close() -> None:
    import threading

    python_allocate = _accel._python_methods[INDEX["allocate"]]
    arena = Arena.of_shared()
    made: list[MemorySegment] = []
    thread = threading.Thread(target=lambda: made.extend((arena.allocate(8, 8), arena.allocate(8, 8))))
    thread.start()
    thread.join()
    assert made[1].address == made[0].address + 8 and made[0].scope is arena
    assert type(made[0]) is type(python_allocate(arena, 8))
    arena.close()
    assert outcome(arena.allocate, 8) == outcome(python_allocate, arena, 8)
    assert outcome(arena.allocate, 8)[1:] == (ffm_runtime.ScopeClosedError, "Already closed")


def run_python(code: str, env: dict[str, str], path: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-S", "-W", "always", "-c", code],
        capture_output=True,
        text=True,
        check=False,
        cwd=path,
        env={**os.environ, "PYTHONPATH": str(path), **env},
    )


def test_pure_python_when_asked() -> None:
    result = run_python(
        "import ffm_runtime as f; print(f.accelerated(), type(f.MemorySegment.get).__name__)",
        {"FFM_PURE_PYTHON": "1"},
    )
    assert result.stdout.split() == ["False", "function"], result.stderr


def test_modified_object_is_not_used(tmp_path: Path) -> None:
    copy = tmp_path / "ffm_runtime"
    shutil.copytree(ROOT / "ffm_runtime", copy, ignore=shutil.ignore_patterns("__pycache__"))
    target = ffm_runtime._targets.host_target()
    obj = copy / "_objects" / f"accel-{target}.img"
    data = bytearray(obj.read_bytes())
    data[len(data) // 2] ^= 0x01
    obj.write_bytes(bytes(data))
    result = run_python("import ffm_runtime as f; print(f.accelerated())", {}, tmp_path)
    assert result.stdout.strip() == "False"
    assert "does not match its manifest" in result.stderr and "RuntimeWarning" in result.stderr


def test_memory_suites_pass_in_pure_python() -> None:
    """The Python methods stay the accelerators' reference: the memory test files pass
    with them alone."""
    files = [
        "tests/test_memory.py",
        "tests/test_segments.py",
        "tests/test_scoped_operations.py",
        "tests/test_memory_properties.py",
        "tests/test_lifetime.py",
        "tests/test_operation_ordering.py",
    ]
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *files],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
        env={**os.environ, "FFM_PURE_PYTHON": "1"},
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert " passed" in result.stdout


def arena_state(arena: Arena) -> dict[str, Any]:
    """Every slot of an arena (the slab by identity)."""
    state = {}
    for name in Arena.__slots__:
        if name == "__weakref__":
            continue
        try:
            value = getattr(arena, name)
        except AttributeError:
            value = "<unset>"
        state[name] = id(value) if name in ("_slab", "_slab_view") else value
    return state


@pytest.mark.parametrize("pooled", [True, False])
def test_confined_life_cycle_matches_python(pooled: bool) -> None:
    """of_confined, __enter__ and close leave an arena exactly as the Python methods do,
    with a pooled slab to start with and without one."""
    python_new = _accel._originals[INDEX["of_confined"]].__func__
    python_close = _accel._python_methods[INDEX["close"]]
    pool = ffm_runtime._arena._pool
    saved = list(pool)
    try:
        for make, close in ((Arena.of_confined, Arena.close), (python_new, python_close)):
            del pool[:]
            if pooled:
                with Arena.of_confined() as warm:
                    warm.allocate(8)  # one slab in the pool
            arena = make()
            state = arena_state(arena)
            assert state["_confinement"] == [state["_owner"]] and state["_alive"] is True
            assert state["_kind"] == "confined" and state["_extra"] is None
            assert state["_cursor"] == 0 and pool == []
            assert (state["_limit"] == 65536) == pooled and (state["_slab"] == id(None)) != pooled
            assert arena.__enter__() is arena
            cell = arena.allocate(8)
            close(arena)
            closed = arena_state(arena)
            assert closed["_confinement"] == [0] and closed["_alive"] is False
            assert closed["_slab"] == id(None) and len(pool) == 1
            with pytest.raises(ffm_runtime.ScopeClosedError, match="Already closed"):
                cell.get(JAVA_INT, 0)
            with pytest.raises(ffm_runtime.ScopeClosedError, match="Already closed"):
                close(arena)
    finally:
        pool[:] = (saved + pool)[: ffm_runtime._contract.ARENA_POOL_MAX]


def test_allocations_with_and_without_padding_match_python() -> None:
    """A slab segment's base (its offset in the slab's view) is what the Python method gives,
    whether or not the allocation needed padding, and the view and the address name the
    same bytes."""
    python_allocate = _accel._python_methods[INDEX["allocate"]]
    sequence = [(1, 1), (8, 8), (3, 1), (16, 16), (5, 4), (64, 64), (7, 2), (8, 8), (8, 8)]
    with Arena.of_confined() as native_arena, Arena.of_confined() as python_arena:
        for size, alignment in sequence:
            native = native_arena.allocate(size, alignment)
            python = python_allocate(python_arena, size, alignment)
            assert native._base == python._base, (size, alignment)  # type: ignore[attr-defined]
            assert native.address % alignment == 0
            for index in range(size):
                native.set(JAVA_BYTE, index, index + 1)
            assert native.to_bytes() == bytes(range(1, size + 1))
            assert bytes(native.as_memoryview()) == bytes(range(1, size + 1))


#: values a private field should never hold: of the wrong type, or beyond any range
JUNK: list[Any] = [None, "x", 1.5, [], ["x"], [0], ("x",), 2**70, -(2**70), -1, object(), "<unset>"]
SEGMENT_FIELDS = ["_address", "_size", "_scope", "_guard", "_view", "_base", "_align"]
ARENA_FIELDS = [
    "_alive",
    "_confinement",
    "_cursor",
    "_extra",
    "_kind",
    "_limit",
    "_owner",
    "_segment_class",
    "_slab",
    "_slab_align",
    "_slab_start",
    "_slab_view",
]


def tamper(obj: object, field: str, value: object) -> None:
    if value == "<unset>":
        delattr(obj, field)
    else:
        setattr(obj, field, value)


def tampered_outcome(call: Callable[..., Any], *args: Any) -> tuple[Any, ...]:
    """Like :func:`outcome`, for objects whose state no longer means anything: values are
    compared by type only, exceptions by type and message (object addresses and thread
    idents left out: the two paths get two objects)."""
    result = outcome(call, *args)
    if result[0] != "raised":
        return result[:2]
    return result[0], result[1], re.sub(r"0x[0-9a-f]+|owner=\d+", "...", result[2])


@pytest.mark.parametrize("field", SEGMENT_FIELDS)
def test_tampered_segments_match_python(field: str) -> None:
    """A segment whose private field was replaced gets the same result or exception from
    the native and the Python get and set (both read _guard, _size, _align and _address
    only); the native path leaves no error behind."""
    python_get = _accel._python_methods[INDEX["get"]]
    python_set = _accel._python_methods[INDEX["set"]]
    auto = Arena.of_auto()
    with Arena.of_confined() as confined:
        for junk in JUNK:
            for arena in (confined, auto):
                native, python = arena.allocate(16, 8), arena.allocate(16, 8)
                tamper(native, field, junk)
                tamper(python, field, junk)
                where = (field, junk, arena)
                assert tampered_outcome(native.get, JAVA_INT, 4) == tampered_outcome(
                    python_get, python, JAVA_INT, 4
                ), where
                assert tampered_outcome(native.set, JAVA_INT, 4, 5) == tampered_outcome(
                    python_set, python, JAVA_INT, 4, 5
                ), where


@pytest.mark.parametrize("field", ARENA_FIELDS)
def test_tampered_arenas_match_python(field: str) -> None:
    """The same for an arena's allocate and close.  (A replaced guard makes the arena's
    finalizer fail too: that is Python code, the same for both.)"""
    python_allocate = _accel._python_methods[INDEX["allocate"]]
    python_close = _accel._python_methods[INDEX["close"]]
    kept = []
    for junk in JUNK:
        native, python = Arena.of_confined(), Arena.of_confined()
        for arena in (native, python):
            arena.allocate(8)
            tamper(arena, field, junk)
        kept += [native, python]
        where = (field, junk)
        assert tampered_outcome(native.allocate, 8) == tampered_outcome(python_allocate, python, 8), where
        assert tampered_outcome(native.close) == tampered_outcome(python_close, python), where
    for arena in kept:  # leave no arena whose finalizer would fail for the next test
        with contextlib.suppress(Exception):
            arena._confinement = [0]  # type: ignore[attr-defined]


def test_a_replaced_guard_entry_is_python_s_to_judge() -> None:
    """A guard whose entry is not a thread ident: the native close and get hand over to Python
    with no error left set (it used to surface as SystemError or a wrong TypeError)."""
    arena = Arena.of_confined()
    segment = arena.allocate(8)
    segment.set(JAVA_INT, 0, 42)
    arena._confinement[0] = "x"  # type: ignore[attr-defined]
    assert segment.get(JAVA_INT, 0) == 42
    arena.close()
    assert not arena.is_alive()


@pytest.mark.parametrize("pure_python", ["", "1"], ids=["native", "python"])
def test_close_with_a_field_whose_finalizer_takes_the_slab(pure_python: str) -> None:
    script = Path(__file__).parent / "scripts" / "close_finalizes_a_field.py"
    env = {**os.environ, "FFM_PURE_PYTHON": pure_python, "PYTHONMALLOC": "debug"}
    done = subprocess.run(
        [sys.executable, str(script)], check=False, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["_alive", "0", "True", "owner", "0", "True"]
