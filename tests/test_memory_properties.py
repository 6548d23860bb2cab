"""Property tests: random get/set/slice/fill/copy sequences on a segment against a bytearray model,
for every value layout, both byte orders, native and heap segments."""

from __future__ import annotations

import math
import struct
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import ffm_runtime as ffm
from ffm_runtime import (
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
)

SIZE = 64
LAYOUTS = [JAVA_BOOLEAN, JAVA_BYTE, JAVA_CHAR, JAVA_SHORT, JAVA_INT, JAVA_LONG, JAVA_FLOAT, JAVA_DOUBLE]
FORMATS = {"z": "?", "b": "b", "c": "H", "s": "h", "i": "i", "j": "q", "f": "f", "d": "d"}
RANGES = {"b": 8, "s": 16, "i": 32, "j": 64}


def values_for(carrier: str) -> st.SearchStrategy[Any]:
    if carrier == "z":
        return st.booleans()
    if carrier == "c":
        return st.integers(0, 65535)
    if carrier in RANGES:
        bits = RANGES[carrier]
        return st.integers(-(1 << (bits - 1)), (1 << (bits - 1)) - 1)
    if carrier == "f":
        return st.floats(width=32)
    return st.floats()


@st.composite
def operations(draw: st.DrawFn) -> list[tuple[Any, ...]]:
    ops: list[tuple[Any, ...]] = []
    for _ in range(draw(st.integers(1, 25))):
        kind = draw(st.sampled_from(["set", "get", "fill", "copy", "slice"]))
        layout = draw(st.sampled_from(LAYOUTS))
        layout = layout.with_order(draw(st.sampled_from(["little", "big"])))
        aligned = draw(st.booleans())
        if not aligned:
            layout = layout.with_byte_alignment(1)
        offset = draw(st.integers(-2, SIZE + 2))
        if kind == "set":
            ops.append((kind, layout, offset, draw(values_for(layout.carrier))))
        elif kind == "get":
            ops.append((kind, layout, offset))
        elif kind == "fill":
            ops.append((kind, draw(st.integers(0, 255))))
        elif kind == "copy":
            ops.append(
                (kind, draw(st.integers(0, SIZE)), draw(st.integers(0, SIZE)), draw(st.integers(0, SIZE)))
            )
        else:
            start = draw(st.integers(0, SIZE))
            ops.append(
                (
                    kind,
                    start,
                    draw(st.integers(0, SIZE - start)),
                    layout,
                    offset,
                    draw(values_for(layout.carrier)),
                )
            )
    return ops


def expected_error(
    layout: ffm.ValueLayout, base: int, offset: int, size: int, address: int
) -> type[Exception] | None:
    if offset < 0 or offset + layout.byte_size > size:
        return IndexError
    if (address + offset) % layout.byte_alignment:
        return ffm.MisalignedAccessError
    return None


def same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and math.isnan(a):
        return isinstance(b, float) and math.isnan(b)
    return bool(a == b) and type(a) is type(b)


def run(segment: MemorySegment, ops: list[tuple[Any, ...]]) -> None:
    model = bytearray(SIZE)
    address = segment._address  # the real address decides alignment, also for heap segments
    for op in ops:
        kind = op[0]
        if kind in ("set", "get", "slice"):
            if kind == "slice":
                _, start, length, layout, offset, value = op
                target, base, size = segment.as_slice(start, length), start, length
            else:
                layout, offset = op[1], op[2]
                value = op[3] if kind == "set" else None
                target, base, size = segment, 0, SIZE
            fmt = ("<" if layout.order == "little" else ">") + FORMATS[layout.carrier]
            error = expected_error(layout, base, offset, size, address + base)
            if error is not None:
                with pytest.raises(error):
                    if kind == "get":
                        target.get(layout, offset)
                    else:
                        target.set(layout, offset, value)
                continue
            if kind == "get":
                expected = struct.unpack_from(fmt, model, base + offset)[0]
                assert same(target.get(layout, offset), expected)
            else:
                struct.pack_into(fmt, model, base + offset, value)
                target.set(layout, offset, value)
                assert same(target.get(layout, offset), struct.unpack_from(fmt, model, base + offset)[0])
        elif kind == "fill":
            segment.fill(op[1])
            model[:] = bytes([op[1]]) * SIZE
        else:
            _, source, target_offset, length = op
            if source + length > SIZE or target_offset + length > SIZE:
                with pytest.raises(IndexError):
                    MemorySegment.copy(segment, source, segment, target_offset, length)
                continue
            MemorySegment.copy(segment, source, segment, target_offset, length)
            model[target_offset : target_offset + length] = model[source : source + length]
        assert segment.to_bytes() == bytes(model)


SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(operations())
def test_native_segment_matches_model(ops: list[tuple[Any, ...]]) -> None:
    with Arena.of_confined() as arena:
        run(arena.allocate(SIZE, 8), ops)


@SETTINGS
@given(operations(), st.integers(0, 7))
def test_heap_segment_matches_model(ops: list[tuple[Any, ...]], shift: int) -> None:
    buffer = bytearray(SIZE + 8)
    run(MemorySegment.of_array(buffer).as_slice(shift, SIZE), ops)


@SETTINGS
@given(st.integers(-(2**70), 2**70), st.sampled_from([JAVA_BYTE, JAVA_CHAR, JAVA_SHORT, JAVA_INT, JAVA_LONG]))
def test_integer_range_is_enforced(value: int, layout: ffm.ValueLayout) -> None:
    bits = layout.byte_size * 8
    low, high = (0, (1 << bits) - 1) if layout.carrier == "c" else (-(1 << (bits - 1)), (1 << (bits - 1)) - 1)
    segment = Arena.global_arena().allocate(8, 8)
    if low <= value <= high:
        segment.set(layout, 0, value)
        assert segment.get(layout, 0) == value
    else:
        with pytest.raises(OverflowError, match=f"out of range for {layout.constant_name}"):
            segment.set(layout, 0, value)
