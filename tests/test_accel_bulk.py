"""The bulk accelerators (to_bytes, fill, copy_from, copy, get_string, set_string,
Arena.allocate_from, MemorySegment.of_array): installed from the objects built into
ffm_runtime, and indistinguishable from the Python methods they replace (same results, same
bytes written, same exceptions, same messages), on every kind of segment and argument."""

from __future__ import annotations

import array
import contextlib
import ctypes
import gc
import inspect
import sys
import threading
from collections.abc import Callable, Iterator
from functools import partial
from typing import Any

import numpy as np
import pytest
from test_accel import INDEX, JUNK, SEGMENT_FIELDS, Index, tamper, tampered_outcome

import ffm_runtime
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
    MemorySegment,
    _accel,
)

BULK = ["to_bytes", "fill", "copy_from", "copy", "get_string", "set_string", "allocate_from", "of_array"]


def python(name: str) -> Callable[..., Any]:
    return _accel._python_methods[INDEX[name]]  # type: ignore[no-any-return]


class Text(str):
    """A str subclass: its encode() could be anything, so only Python converts it."""

    def encode(self, *args: Any, **kwargs: Any) -> bytes:
        return b"subclass"


def test_installed_from_the_built_objects() -> None:
    assert ffm_runtime.accelerated()
    for name in BULK:
        cls = Arena if name == "allocate_from" else MemorySegment
        method = cls.__dict__[name]
        original = _accel._originals[INDEX[name]]
        if name in ("copy", "of_array"):
            assert isinstance(method, staticmethod), name
            method, original = method.__func__, original.__func__
            assert type(method).__name__ == "builtin_function_or_method"
        else:
            assert type(method).__name__ == "method_descriptor", name
        assert list(inspect.signature(method).parameters) == list(inspect.signature(original).parameters)
        assert (method.__doc__ or "").strip().endswith((original.__doc__ or "").strip())
    # inherited by Arena from SegmentAllocator: installed on Arena alone
    assert ffm_runtime.SegmentAllocator.__dict__["allocate_from"] is _accel._originals[INDEX["allocate_from"]]


def outcome(call: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[Any, ...]:
    """What a call did: its value (a segment by what it is, not where), or its exception."""
    try:
        value = call(*args, **kwargs)
    except Exception as exc:
        return ("raised", type(exc), str(exc))
    if isinstance(value, MemorySegment):
        heap = value.heap_base()
        return (
            "segment",
            type(value),
            value.byte_size,
            value.to_bytes(),
            value.is_read_only(),
            value.is_native(),
            repr(value.scope),  # (the arena: each path has its own)
            value.max_byte_alignment() >= 8 if value.byte_size == 8 else None,
            id(heap) if heap is not None else None,
            value.address if not value.is_native() else None,
            repr(value) if not value.is_native() else None,
        )
    return ("value", type(value), value)


@pytest.fixture
def segments() -> Iterator[dict[str, MemorySegment]]:
    """Every kind of segment, 64 bytes of a pattern (with a NUL at 20 and 63) where writable."""
    heap = bytearray(64)
    foreign: list[MemorySegment] = []
    made, done = threading.Event(), threading.Event()

    def owner() -> None:  # an arena of another thread, open while the test runs
        with Arena.of_confined() as arena:
            foreign.append(arena.allocate(64))
            made.set()
            done.wait()

    thread = threading.Thread(target=owner)
    thread.start()
    made.wait()
    with Arena.of_confined() as confined, Arena.of_shared() as shared:
        block = confined.allocate(64, 64)
        closed_arena = Arena.of_confined()
        closed = closed_arena.allocate(64, 64)
        closed_arena.close()
        closed_shared_arena = Arena.of_shared()
        closed_shared = closed_shared_arena.allocate(64, 64)
        closed_shared_arena.close()
        yield {
            "shared": shared.allocate(64, 64),
            "closed shared": closed_shared,
            "confined": block,
            "auto": Arena.of_auto().allocate(64, 64),
            "global": Arena.global_arena().allocate(64),
            "read-only": block.as_read_only(),
            "odd slice": block.as_slice(1, 40),
            "heap": MemorySegment.of_array(heap),
            "heap slice": MemorySegment.of_array(heap).as_slice(3, 30),
            "bytes": MemorySegment.of_array(bytes(range(1, 65))),
            "array": MemorySegment.of_array(array.array("i", range(16))),
            "empty": block.as_slice(0, 0),
            "closed": closed,
            "other thread": foreign[0],
            "NULL": MemorySegment.NULL,
        }
    done.set()
    thread.join()


PATTERN = bytes(range(65, 85)) + b"\0" + "héllo wörld\udcff".encode("utf-8", "surrogateescape") + b"\xff\xfe"


def reset(segments: dict[str, MemorySegment]) -> None:
    for name, segment in segments.items():
        if name in ("closed", "closed shared", "other thread", "NULL", "bytes") or segment.is_read_only():
            continue
        data = (PATTERN * 2)[: segment.byte_size - 1] + b"\0" if segment.byte_size else b""
        python("copy_from")(segment, MemorySegment.of_array(bytearray(data)))


def state(segments: dict[str, MemorySegment]) -> list[bytes]:
    """The bytes of every segment that can be read."""
    result = []
    for name, segment in segments.items():
        if name not in ("closed", "closed shared", "other thread"):
            result.append(python("to_bytes")(segment))
    return result


def compare(
    segments: dict[str, MemorySegment], name: str, call: Callable[..., Any], *args: Any, **kwargs: Any
) -> None:
    """The accelerated call and the Python method: same outcome, same bytes afterwards."""
    reset(segments)
    native = outcome(call, *args, **kwargs)
    native_state = state(segments)
    reset(segments)
    positional = args if name not in ("copy", "of_array") else (None, *args)
    method_args = (
        (call.__self__, *positional)
        if hasattr(call, "__self__") and name not in ("copy", "of_array")
        else positional
    )
    reference = outcome(python(name), *method_args, **kwargs)
    assert native == reference, (name, args, kwargs)
    assert native_state == state(segments), (name, args, kwargs)
    assert not sys.exc_info()[0]


FILL_VALUES: list[Any] = [0, 7, 255, -128, -1, -129, 256, 2**64, True, 1.5, "x", None, Index(7), np.int8(3)]
OFFSETS: list[Any] = [0, 1, 3, 20, 21, 39, 40, 63, 64, 65, -1, 2**63, -(2**63), True, 1.0, None, Index(2)]


def test_to_bytes_and_fill_match_python(segments: dict[str, MemorySegment]) -> None:
    for segment in segments.values():
        compare(segments, "to_bytes", segment.to_bytes)
        for value in FILL_VALUES:
            compare(segments, "fill", segment.fill, value)
        compare(segments, "fill", segment.fill, value=3)
        compare(segments, "fill", segment.fill)
        compare(segments, "fill", segment.fill, 1, 2)


def test_copies_match_python(segments: dict[str, MemorySegment]) -> None:
    others: list[Any] = [*segments.values(), 42, None, bytearray(8)]
    for target in segments.values():
        for source in others:
            compare(segments, "copy_from", target.copy_from, source)
            for source_offset, target_offset, size in (
                (0, 0, 8),
                (1, 3, 16),
                (0, 0, 0),
                (0, 0, 64),
                (0, 0, 65),
                (30, 0, 10),
                (0, 30, 10),
                (-1, 0, 1),
                (0, -1, 1),
                (0, 0, -1),
                (2**63, 0, 1),
                (0, 0, 2**63),
                (Index(1), 0, 1),
                (0, True, 1),
                (0, 0, 1.0),
            ):
                compare(
                    segments, "copy", MemorySegment.copy, source, source_offset, target, target_offset, size
                )
    block = segments["confined"]
    compare(segments, "copy", MemorySegment.copy, block, 0, block, 4, 32)  # overlapping
    compare(segments, "copy", MemorySegment.copy, block, 4, block, 0, 32)
    compare(segments, "copy", MemorySegment.copy, block, JAVA_INT, 0, block, JAVA_INT, 8, 4)
    compare(segments, "copy", MemorySegment.copy, block, 0, block, 0)
    compare(segments, "copy", MemorySegment.copy, block, 0, block, 0, byte_size=4)
    compare(segments, "copy_from", block.copy_from, source=block)


def test_strings_match_python(segments: dict[str, MemorySegment]) -> None:
    texts: list[Any] = ["", "hi", "héllo", "日本語", "a\0b", "\ud800", "x" * 70, Text("abc"), b"hi", 5, None]
    for segment in segments.values():
        for offset in OFFSETS:
            compare(segments, "get_string", segment.get_string, offset)
            for text in texts:
                compare(segments, "set_string", segment.set_string, offset, text)
        compare(segments, "get_string", segment.get_string)
        for charset in ("utf-8", "UTF_8", "ascii", "latin-1", "utf-16le", "bogus", 5):
            compare(segments, "get_string", segment.get_string, 0, charset)
            compare(segments, "get_string", segment.get_string, charset=charset)
            compare(segments, "set_string", segment.set_string, 2, "hé", charset)
        compare(segments, "get_string", segment.get_string, offset=21)
        compare(segments, "set_string", segment.set_string, 0, text="x")
        compare(segments, "set_string", segment.set_string, 0)


def test_sized_strings_match_python(segments: dict[str, MemorySegment]) -> None:
    """get_string(offset, charset, byte_length): exactly byte_length bytes, NULs included."""
    lengths: list[Any] = [0, 1, 4, 20, 21, 43, 44, 64, 65, -1, 2**63, True, 1.0, "4", Index(4), None]
    for segment in segments.values():
        for offset in OFFSETS:
            for length in lengths:
                compare(segments, "get_string", segment.get_string, offset, "utf-8", length)
        charsets: list[Any] = ["utf-8", "UTF-8", "UTF_8", "utf8", "Utf-8", "latin-1", "utf-16le", "bogus", 5]
        for charset in (*charsets, Text("utf-8")):
            compare(segments, "get_string", segment.get_string, 0, charset, 6)
            compare(segments, "get_string", segment.get_string, 21, charset, None)
        compare(segments, "get_string", segment.get_string, 0, "utf-8", byte_length=30)
        compare(segments, "get_string", segment.get_string, byte_length=30)


def test_sized_strings_read_nuls_and_replace_bad_bytes() -> None:
    with Arena.of_confined() as arena:
        segment = arena.allocate(16)
        segment.copy_from(MemorySegment.of_array(bytearray(b"a\0b\xffc\xe2\x82")))
        for read in (segment.get_string, partial(python("get_string"), segment)):
            assert read(0, "utf-8", 7) == "a\0b\ufffdc\ufffd"
            assert read(0, "UTF-8", 16) == "a\0b\ufffdc\ufffd" + "\0" * 9
            assert read(0, "utf-8", None) == read(0) == "a"
            assert read(2, "utf-8", 0) == ""
            assert read(0, "latin-1", 4) == "a\0b\xff"
            with pytest.raises(ffm_runtime.OutOfBoundsError, match="new offset = 10; new length = 7"):
                read(10, "utf-8", 7)
            with pytest.raises(ffm_runtime.OutOfBoundsError, match="new offset = 0; new length = -1"):
                read(0, "utf-8", -1)
            with pytest.raises(TypeError, match="byte_length must be an int, not float"):
                read(0, "utf-8", 1.0)


def test_invalid_utf8_is_replaced_as_python_does() -> None:
    with Arena.of_confined() as arena:
        segment = arena.allocate(16)
        segment.copy_from(MemorySegment.of_array(bytearray(b"a\xff\xc3(b\xe2\x82\0")))
        assert segment.get_string() == python("get_string")(segment) == "a\ufffd\ufffd(b\ufffd"


ALLOCATE_FROM: list[tuple[Any, ...]] = [
    ("abc",),
    ("",),
    ("héllo",),
    ("x" * 4095,),
    ("x" * 4096,),  # with its terminator: a block of its own
    ("\ud800",),
    (Text("abc"),),
    (b"abc",),
    (5,),
    (),
    (JAVA_LONG, 7),
    (JAVA_LONG, -(2**63)),
    (JAVA_LONG, 2**63),
    (JAVA_INT, 2**31),
    (JAVA_INT, 1.5),
    (JAVA_INT, True),
    (JAVA_INT, Index(3)),
    (JAVA_INT, np.int32(3)),
    (JAVA_INT, None),
    (JAVA_INT, [1, 2, 3]),
    (JAVA_INT, (1, 2, 3)),
    (JAVA_INT, []),
    (JAVA_INT, [1, 2**31, 3]),
    (JAVA_INT, [1, "2", 3]),
    (JAVA_INT, [1, 2.0]),
    (JAVA_INT, [1, Index(2)]),
    (JAVA_INT, list(range(1024))),
    (JAVA_INT, list(range(1025))),
    (JAVA_LONG, (2**63 - 1, -(2**63))),
    (JAVA_BYTE, [1, -128, 127]),
    (JAVA_BYTE, [128]),
    (JAVA_CHAR, [0, 65535]),
    (JAVA_BOOLEAN, [True, False]),
    (JAVA_BOOLEAN, [True, 0]),
    (JAVA_FLOAT, [1.5, 1e39]),
    (JAVA_FLOAT, (1.5, -0.0)),
    (JAVA_DOUBLE, [1.5, 2]),
    (JAVA_DOUBLE, [float("inf"), float("nan")]),
    (JAVA_INT, type("Ints", (list,), {})([1, 2])),
    (JAVA_INT, range(3)),
    (JAVA_INT, type("Iterable", (), {"__iter__": lambda self: iter([1, 2])})()),
    (JAVA_LONG.with_order("big"), [1, 2]),
    (JAVA_SHORT.with_byte_alignment(8), [1, 2]),
    (JAVA_BYTE, bytearray()),
    (JAVA_BYTE, bytearray(4096)),
    (JAVA_BYTE, bytearray(4097)),
    (JAVA_BYTE, [b"x"]),
    (JAVA_INT, "7"),
    (JAVA_SHORT, -32768),
    (JAVA_CHAR, 65535),
    (JAVA_CHAR, -1),
    (JAVA_BYTE, 127),
    (JAVA_BYTE, 128),
    (JAVA_BOOLEAN, True),
    (JAVA_BOOLEAN, 1),
    (JAVA_FLOAT, 1.5),
    (JAVA_FLOAT, 1e39),
    (JAVA_FLOAT, 2),
    (JAVA_DOUBLE, -0.0),
    (JAVA_DOUBLE, float("nan")),
    (JAVA_BYTE, b"abc"),
    (JAVA_BYTE, b""),
    (JAVA_BYTE, bytes(4096)),
    (JAVA_BYTE, bytes(4097)),
    (JAVA_BYTE, bytearray(b"xy")),
    (JAVA_BYTE, memoryview(b"xy")),
    (JAVA_BYTE, array.array("B", b"xy")),
    (JAVA_BYTE.with_byte_alignment(8), b"abc"),
    (JAVA_INT, b"abcd"),
    (JAVA_LONG.with_order("big"), 7),
    (JAVA_SHORT.with_byte_alignment(8), 3),
    (JAVA_INT.with_byte_alignment(128), 3),
    (ADDRESS, MemorySegment.NULL),
    (JAVA_INT.with_name("n"), 3),
    ("abc", 5),
    (JAVA_INT, 1, 2),
]


@pytest.mark.parametrize("state_", ["open", "closed", "other thread", "automatic", "global"])
def test_allocate_from_matches_python(state_: str) -> None:
    method = python("allocate_from")
    for args in ALLOCATE_FROM:
        results = []
        for allocate_from in (None, method):
            arena = {
                "automatic": Arena.of_auto,
                "global": Arena.global_arena,
            }.get(state_, Arena.of_confined)()
            if state_ == "closed":
                arena.close()
            if state_ == "other thread":
                made: list[tuple[Any, ...]] = []
                call = arena.allocate_from if allocate_from is None else partial(method, arena)
                thread = threading.Thread(target=lambda: made.append(outcome(call, *args)))  # noqa: B023
                thread.start()
                thread.join()
                results.append(made[0])
            elif allocate_from is None:
                results.append(outcome(arena.allocate_from, *args))
            else:
                results.append(outcome(method, arena, *args))
            if state_ == "open":
                segment = arena.allocate_from(*args) if results[-1][0] == "segment" else None
                if segment is not None and isinstance(args[0], ffm_runtime.ValueLayout):
                    assert segment.address % args[0].byte_alignment == 0
            if state_ in ("open", "other thread"):
                arena.close()
        assert results[0] == results[1], (state_, args)
    with Arena.of_confined() as arena:
        assert outcome(arena.allocate_from, "abc", charset="latin-1") == outcome(
            method, arena, "abc", charset="latin-1"
        )


NATIVE_ALLOCATE_FROM: list[tuple[Any, ...]] = [
    ("text",),
    (JAVA_LONG, 7),
    (JAVA_DOUBLE, 2.5),
    (JAVA_BYTE, b"bytes"),
    (JAVA_BYTE, bytearray(b"bytearray")),
    (JAVA_INT, [1, 2, 3]),
    (JAVA_FLOAT, (1.5, 2.5)),
    (JAVA_BOOLEAN, [True]),
]


def test_allocate_from_is_native_in_the_common_cases() -> None:
    with Arena.of_confined() as arena:
        arena.allocate(8)  # the arena's first slab (a new one is Python's business)
        with counting_fallbacks("allocate_from") as slow:
            for args in NATIVE_ALLOCATE_FROM:
                arena.allocate_from(*args)
                assert not slow, args


def test_allocate_from_keeps_the_arena_s_cursor() -> None:
    """Native and Python allocations leave the arena exactly where the other would."""
    with Arena.of_confined() as native, Arena.of_confined() as reference:
        for args in (
            (JAVA_BYTE, 1),
            ("abc",),
            (JAVA_LONG, 5),
            (JAVA_BYTE, b"xyz"),
            (JAVA_SHORT, 2),
            ("",),
            (JAVA_SHORT, [1, 2, 3]),
            (JAVA_DOUBLE, (1.5,)),
            (JAVA_BYTE, bytearray(b"ab")),
        ):
            made = native.allocate_from(*args)
            expected = python("allocate_from")(reference, *args)
            assert made._base == expected._base, args  # type: ignore[attr-defined]
            assert native._cursor == reference._cursor, args  # type: ignore[attr-defined]
            assert made.scope is native and made.to_bytes() == expected.to_bytes()


def released_view() -> memoryview:
    view = memoryview(bytearray(4))
    view.release()
    return view


BUFFERS: list[Callable[[], Any]] = [
    lambda: b"abc",
    lambda: b"",
    lambda: bytearray(b"abcdefgh"),
    bytearray,
    lambda: array.array("i", [1, 2, 3]),
    lambda: memoryview(bytearray(8)),
    lambda: memoryview(b"abc"),
    lambda: memoryview(bytearray(16))[::2],
    lambda: np.arange(4, dtype=np.int16),
    lambda: array.array("d", [1.5, 2.5]),
    lambda: array.array("b"),
    lambda: array.array("I", [1, 2]),
    lambda: memoryview(bytearray(16)).cast("q"),
    lambda: memoryview(array.array("h", [1, 2, 3])),
    lambda: memoryview(bytearray(16)).cast("B", (4, 4)),
    lambda: memoryview(bytearray(8))[2:6],
    lambda: memoryview((ctypes.c_int * 3)()),
    lambda: memoryview(ctypes.c_int(5)),
    released_view,
    lambda: memoryview(b"read-only"),
    lambda: "abc",
    lambda: 5,
    lambda: None,
    lambda: type("Bytes", (bytes,), {})(b"sub"),
    lambda: type("Array", (bytearray,), {})(b"sub"),
]


def test_of_array_matches_python() -> None:
    for make in BUFFERS:
        obj = make()
        native = outcome(MemorySegment.of_array, obj)
        reference = outcome(python("of_array"), None, obj)
        assert native == reference, obj
        if native[0] == "segment":
            segment, expected = MemorySegment.of_array(obj), python("of_array")(None, obj)
            assert segment.max_byte_alignment() == expected.max_byte_alignment(), obj
            if segment.byte_size:
                assert segment.as_slice(1).to_bytes() == expected.as_slice(1).to_bytes(), obj
            if hasattr(obj, "append") and segment.byte_size:
                del expected
                with pytest.raises(BufferError):
                    obj.append(obj[0])  # kept exported by the segment


def test_of_array_segments_behave_as_python_s() -> None:
    data = bytearray(b"0123456789abcdef")
    segment = MemorySegment.of_array(data)
    reference = python("of_array")(None, data)
    assert type(segment) is type(reference) and segment == reference and hash(segment) == hash(reference)
    assert segment.heap_base() is data and segment.address == 0 and segment.scope is reference.scope
    segment.set(JAVA_INT, 4, 0x41424344)
    assert bytes(data[4:8]) == b"DCBA" and reference.get(JAVA_INT, 4) == 0x41424344
    with pytest.raises(BufferError):
        data.extend(b"more")  # the segment keeps the buffer exported
    assert segment.as_slice(8, 4).to_bytes() == b"89ab"
    del segment, reference
    gc.collect()
    data.extend(b"more")  # and no longer once it is gone
    frozen = MemorySegment.of_array(b"read me\0")
    assert frozen.is_read_only() and frozen.heap_base() is None and frozen.get_string() == "read me"
    with pytest.raises(ffm_runtime.ReadOnlyError, match="read-only segment"):
        frozen.set(JAVA_BYTE, 0, 1)
    assert frozen == python("of_array")(None, frozen._object)  # type: ignore[attr-defined]


def test_no_references_are_leaked_or_kept() -> None:
    """Each accelerated call gives back every reference it took (counted on the objects it
    was given)."""
    data, text, array_ = b"leak check data", "leak check text", bytearray(b"leak")
    numbers, view = array.array("i", [1, 2]), memoryview(bytearray(8))
    objects = (data, text, array_, numbers, view, JAVA_LONG)
    with Arena.of_confined() as arena:
        segment = arena.allocate(64)
        before = [sys.getrefcount(obj) for obj in (*objects, segment)]
        for _ in range(1000):
            segment.to_bytes()
            segment.fill(1)
            segment.copy_from(segment)
            MemorySegment.copy(segment, 0, segment, 1, 8)
            segment.set_string(0, text)
            segment.get_string()
            MemorySegment.of_array(data)
            MemorySegment.of_array(array_)
            MemorySegment.of_array(numbers)
            MemorySegment.of_array(view)
        for _ in range(100):  # (one slab: a new one is Python's)
            arena.allocate_from(text)
            arena.allocate_from(JAVA_LONG, 5)
            arena.allocate_from(JAVA_BYTE, data)
        gc.collect()
        after = [sys.getrefcount(obj) for obj in (*objects, segment)]
    assert after == before


def tampered(call: Callable[..., Any], *args: Any) -> tuple[Any, ...]:
    """What a call on tampered objects did: the type of its value, or its exception."""
    try:
        value = call(*args)
    except Exception as exc:
        return tampered_outcome(_raise, exc)
    return ("value", type(value))


def _raise(exc: Exception) -> None:
    raise exc


@pytest.mark.parametrize("field", SEGMENT_FIELDS)
def test_tampered_segments_match_python(field: str) -> None:
    """A segment whose private field was replaced gets the same result or exception from the
    native and the Python bulk operations; the native path leaves no error behind."""
    auto = Arena.of_auto()
    with Arena.of_confined() as confined:
        for junk in JUNK:
            for arena in (confined, auto):
                native, reference = arena.allocate(16, 8), arena.allocate(16, 8)
                for segment in (native, reference):
                    segment.set_string(0, "tampered")
                    tamper(segment, field, junk)
                other = arena.allocate(16, 8)
                where = (field, junk, arena)
                for name, args in (
                    ("to_bytes", ()),
                    ("fill", (3,)),
                    ("get_string", ()),
                    ("get_string", (0, "utf-8", 4)),
                    ("set_string", (1, "x")),
                    ("copy_from", (other,)),
                ):
                    assert tampered(getattr(native, name), *args) == tampered(
                        python(name), reference, *args
                    ), (name, *where)
                for pair in ((native, other), (other, native)):
                    reference_pair = tuple(reference if s is native else s for s in pair)
                    assert tampered(MemorySegment.copy, pair[0], 0, pair[1], 0, 4) == tampered(
                        python("copy"), None, reference_pair[0], 0, reference_pair[1], 0, 4
                    ), ("copy", *where)
                assert tampered(other.copy_from, native) == tampered(python("copy_from"), other, reference), (
                    "copy_from source",
                    *where,
                )


@pytest.mark.parametrize(
    "field", ["_confinement", "_cursor", "_limit", "_segment_class", "_slab_start", "_slab_view"]
)
def test_tampered_arenas_allocate_from_as_python(field: str) -> None:
    kept = []
    for junk in JUNK:
        native, reference = Arena.of_confined(), Arena.of_confined()
        for arena in (native, reference):
            arena.allocate(8)
            tamper(arena, field, junk)
        kept += [native, reference]
        for args in (("abc",), (JAVA_LONG, 5), (JAVA_BYTE, b"ab")):
            assert (
                tampered(native.allocate_from, *args)[:2]
                == tampered(python("allocate_from"), reference, *args)[:2]
            ), (field, junk, args)
    for arena in kept:
        with contextlib.suppress(Exception):
            arena._confinement = [0]  # type: ignore[attr-defined]


@contextlib.contextmanager
def counting_fallbacks(name: str) -> Iterator[list[int]]:
    """Counts the calls of accelerator ``name``'s Python method (its slow path)."""
    methods = _accel._python_methods
    index = INDEX[name]
    original = methods[index]
    calls: list[int] = []

    def counted(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return original(*args, **kwargs)

    methods[index] = counted
    try:
        yield calls
    finally:
        methods[index] = original


VIEWS: dict[str, Callable[[MemorySegment], Any]] = {
    "released": lambda segment: segment.as_memoryview().release(),
    "released, two": lambda segment: [segment.as_memoryview().release() for _ in range(2)],
    "dropped": lambda segment: segment.as_memoryview(),
    "kept": lambda segment: segment.as_memoryview(),
    "derived kept": lambda segment: segment.as_memoryview()[2:4],
    "exporter kept": lambda segment: segment.as_memoryview().obj,
}


@pytest.mark.parametrize("case", VIEWS)
def test_close_after_views_matches_python(case: str) -> None:
    """Closing an arena that handed out views: natively when every view is released (the
    slab goes back to the pool, as without views), by Python otherwise (the memory is kept
    while a view can reach it); the arena ends closed either way."""
    pool = ffm_runtime._arena._pool
    outcomes = []
    for native in (True, False):
        arena = Arena.of_confined()
        segment = arena.allocate(64)
        held = VIEWS[case](segment)
        if case == "dropped":
            held = None
        slab = arena._slab  # type: ignore[attr-defined]
        with counting_fallbacks("close") as slow:
            if native:
                arena.close()
            else:
                python("close")(arena)
        pooled = any(item is slab for item in pool)
        outcomes.append((pooled, arena.is_alive(), arena._confinement, outcome(segment.to_bytes)))  # type: ignore[attr-defined]
        if native:  # a view dropped unreleased is still the arena's to release: Python's
            assert bool(slow) == (case not in ("released", "released, two")), case
        if case == "kept":
            with pytest.raises(ValueError, match="released memoryview"):
                held[0] = 1  # the view handed out is released by the close
        if case == "derived kept":
            held[0] = 1  # on kept memory
        del held
        gc.collect()
    assert outcomes[0] == outcomes[1]
    assert outcomes[0][0] == (case not in ("derived kept", "exporter kept"))  # reused, or kept


EXTRAS_JUNK: list[Any] = [None, "x", [1], [("x",)], [(1, 2)], [(memoryview(b""), 5)], (), "<unset>"]


@pytest.mark.parametrize("field", ["slabs", "blocks", "cleanups", "exports"])
def test_close_with_tampered_extras_matches_python(field: str) -> None:
    """An arena whose view bookkeeping was replaced: the native close hands it to Python,
    which raises or closes as it does for any arena; no error is left behind."""
    # (junk blocks are addresses the Python close frees: only what it cannot mistake for one)
    for junk in EXTRAS_JUNK if field != "blocks" else [None, (), "<unset>"]:
        results = []
        for close in (Arena.close, python("close")):
            arena = Arena.of_confined()
            arena.allocate(8).as_memoryview().release()
            extra = arena._extra  # type: ignore[attr-defined]
            tamper(extra, field, junk)
            results.append(tampered(close, arena))
            with contextlib.suppress(Exception):
                arena._confinement = [0]  # type: ignore[attr-defined]
        assert results[0] == results[1], (field, junk)


def test_the_common_cases_are_native() -> None:
    """No slow path for the cases the accelerators take (the differential tests above
    compare results; this says which path made them)."""
    with Arena.of_confined() as arena:
        segment = arena.allocate(64)
        other = Arena.of_auto().allocate(64)
        heap = MemorySegment.of_array(bytearray(64))
        shared_arena = Arena.of_shared()
        shared = shared_arena.allocate(64)
        calls: list[tuple[str, Callable[[], Any]]] = [
            ("to_bytes", shared.to_bytes),
            ("fill", lambda: shared.fill(7)),
            ("copy", lambda: MemorySegment.copy(shared, 0, segment, 0, 64)),
            ("set_string", lambda: shared.set_string(0, "shared")),
            ("get_string", shared.get_string),
            ("to_bytes", segment.to_bytes),
            ("to_bytes", heap.to_bytes),
            ("fill", lambda: segment.fill(0x41)),
            ("fill", lambda: heap.fill(-1)),
            ("copy_from", lambda: segment.copy_from(other)),
            ("copy_from", lambda: heap.copy_from(segment)),
            ("copy", lambda: MemorySegment.copy(segment, 1, other, 3, 16)),
            ("copy", lambda: MemorySegment.copy(heap, 0, segment, 0, 64)),
            ("set_string", lambda: segment.set_string(4, "héllo")),
            ("get_string", lambda: segment.get_string(4)),
            ("get_string", segment.get_string),
            ("get_string", lambda: segment.get_string(4, "utf-8", 9)),
            ("get_string", lambda: segment.get_string(4, "UTF-8", None)),
            ("get_string", lambda: segment.get_string(4, "utf-8")),
            ("get_string", lambda: heap.get_string(0, "utf-8", 64)),
            ("of_array", lambda: MemorySegment.of_array(b"bytes")),
            ("of_array", lambda: MemorySegment.of_array(bytearray(3))),
            ("of_array", lambda: MemorySegment.of_array(array.array("d", [1.0]))),
            ("of_array", lambda: MemorySegment.of_array(memoryview(bytearray(8)).cast("i"))),
        ]
        for name, call in calls:
            with counting_fallbacks(name) as slow:
                call()
            assert not slow, name
        shared_arena.close()
