"""Segment operations, after the JDK's TestSegments: sizes, alignment, slices, equality, bounds."""

from __future__ import annotations

import array
import gc
import itertools
import math
import os
import struct
import subprocess
import sys
import threading
from enum import IntEnum
from pathlib import Path

import pytest

import ffm_runtime as ffm
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
    SegmentAllocator,
)


@pytest.fixture
def arena() -> ffm.Arena:
    with Arena.of_confined() as arena:
        yield arena


class TestAllocation:
    @pytest.mark.parametrize("size", [0, 1, 7, 64, 4095, 4096, 4097, 100_000])
    @pytest.mark.parametrize("alignment", [1, 2, 8, 64, 128, 4096])
    def test_zeroed_and_aligned(self, arena: ffm.Arena, size: int, alignment: int) -> None:
        segment = arena.allocate(size, alignment)
        assert segment.byte_size == size and segment.address % alignment == 0
        assert segment.address != 0
        assert segment.to_bytes() == bytes(size)

    def test_reused_memory_is_zeroed_again(self) -> None:
        for _ in range(3):
            with Arena.of_confined() as arena:
                segment = arena.allocate(256)
                assert segment.to_bytes() == bytes(256)
                segment.fill(0xAB)

    def test_allocations_do_not_overlap(self, arena: ffm.Arena) -> None:
        segments = [arena.allocate(size, 8) for size in (3, 100, 5000, 1, 64) * 20]
        spans = sorted((s.address, s.address + s.byte_size) for s in segments)
        assert all(end <= start for (_, end), (start, _) in itertools.pairwise(spans))

    def test_layout_forms(self, arena: ffm.Arena) -> None:
        point = MemoryLayout.struct_layout(JAVA_INT, JAVA_INT)
        assert arena.allocate(point).byte_size == 8
        assert arena.allocate(JAVA_LONG, 10).byte_size == 80
        assert arena.allocate(JAVA_LONG, 10).address % 8 == 0
        with pytest.raises(ValueError, match="Invalid element count: -1"):
            arena.allocate(JAVA_INT, -1)

    def test_allocate_from(self, arena: ffm.Arena) -> None:
        assert arena.allocate_from(JAVA_INT, -5).get(JAVA_INT, 0) == -5
        values = arena.allocate_from(JAVA_SHORT, [1, -2, 3])
        assert values.byte_size == 6 and values.to_array(JAVA_SHORT).tolist() == [1, -2, 3]
        doubles = arena.allocate_from(JAVA_DOUBLE, array.array("d", [0.5, 1.5]))
        assert doubles.to_array(JAVA_DOUBLE).tolist() == [0.5, 1.5]
        big = arena.allocate_from(JAVA_INT.with_order("big"), [1, 2])
        assert big.to_bytes() == b"\0\0\0\1\0\0\0\2"
        flags = arena.allocate_from(JAVA_BOOLEAN, [True, False, True])
        assert flags.to_bytes() == b"\1\0\1"
        target = arena.allocate(1)
        pointers = arena.allocate_from(ADDRESS, [target, MemorySegment.NULL])
        assert pointers.get_at_index(ADDRESS, 0).address == target.address
        with pytest.raises(OverflowError, match="out of range for JAVA_BYTE"):
            arena.allocate_from(JAVA_BYTE, [1, 2, 300])
        with pytest.raises(TypeError, match="JAVA_INT needs an int, not str"):
            arena.allocate_from(JAVA_INT, [1, "2"])
        utf16 = arena.allocate_from("hé", charset="utf-16le")
        assert utf16.to_bytes() == "hé".encode("utf-16le") + b"\0\0"
        assert utf16.get_string(0, "utf-16le") == "hé"


class TestAccess:
    @pytest.mark.parametrize(
        ("layout", "value"),
        [
            (JAVA_BOOLEAN, True),
            (JAVA_BYTE, -128),
            (JAVA_CHAR, 65535),
            (JAVA_SHORT, -2),
            (JAVA_INT, 2**31 - 1),
            (JAVA_LONG, -(2**63)),
            (JAVA_FLOAT, 1.5),
            (JAVA_DOUBLE, math.pi),
        ],
        ids=lambda x: getattr(x, "constant_name", ""),
    )
    def test_set_get_both_orders(self, arena: ffm.Arena, layout: ffm.ValueLayout, value: object) -> None:
        segment = arena.allocate(16, 8)
        for order in ("little", "big"):
            ordered = layout.with_order(order)  # type: ignore[arg-type]
            segment.set(ordered, 8, value)
            assert segment.get(ordered, 8) == value
        big = segment.to_bytes()[8 : 8 + layout.byte_size]
        segment.set(layout, 8, value)
        little = segment.to_bytes()[8 : 8 + layout.byte_size]
        assert big == little[::-1]

    def test_out_of_bounds(self, arena: ffm.Arena) -> None:
        segment = arena.allocate(8, 8)
        with pytest.raises(
            ffm.OutOfBoundsError,
            match=r"Out of bound access.*offset = 8.*"
            r"length = 4",
        ) as info:
            segment.get(JAVA_INT, 8)
        assert (info.value.offset, info.value.length) == (8, 4)
        assert isinstance(info.value, IndexError)
        for offset in (-4, 2**63, -(2**64)):
            with pytest.raises(IndexError, match="Out of bound access"):
                segment.set(JAVA_INT, offset, 1)
        with pytest.raises(TypeError, match="offset must be an int, not str"):
            segment.get(JAVA_INT, "0")  # type: ignore[arg-type]

    def test_alignment(self, arena: ffm.Arena) -> None:
        segment = arena.allocate(16, 8)
        with pytest.raises(ffm.MisalignedAccessError, match="Misaligned access at address"):
            segment.get(JAVA_INT, 2)
        segment.set(JAVA_INT_UNALIGNED, 2, 0x01020304)
        assert segment.get(JAVA_INT_UNALIGNED, 2) == 0x01020304
        assert isinstance(ffm.MisalignedAccessError("x"), ValueError)

    def test_value_range(self, arena: ffm.Arena) -> None:
        segment = arena.allocate(8, 8)
        with pytest.raises(OverflowError, match="out of range for JAVA_SHORT"):
            segment.set(JAVA_SHORT, 0, 40000)
        with pytest.raises(OverflowError, match="out of range for JAVA_CHAR"):
            segment.set(JAVA_CHAR, 0, -1)
        with pytest.raises(OverflowError, match="out of range for JAVA_FLOAT"):
            segment.set(JAVA_FLOAT, 0, 1e300)
        with pytest.raises(TypeError, match="JAVA_INT needs an int, not float"):
            segment.set(JAVA_INT, 0, 1.0)
        with pytest.raises(TypeError, match="JAVA_BOOLEAN needs a bool, not int"):
            segment.set(JAVA_BOOLEAN, 0, 1)
        with pytest.raises(TypeError, match="ADDRESS needs a MemorySegment"):
            segment.set(ADDRESS, 0, 5)
        with pytest.raises(TypeError, match="get\\(\\) needs a ValueLayout"):
            segment.get(MemoryLayout.struct_layout(JAVA_INT), 0)  # type: ignore[arg-type]

    def test_at_index(self, arena: ffm.Arena) -> None:
        segment = arena.allocate(JAVA_LONG, 4)
        for index in range(4):
            segment.set_at_index(JAVA_LONG, index, index * 10)
        assert [segment.get_at_index(JAVA_LONG, i) for i in range(4)] == [0, 10, 20, 30]
        with pytest.raises(IndexError):
            segment.get_at_index(JAVA_LONG, 4)

    def test_addresses_and_target_layouts(self, arena: ffm.Arena) -> None:
        target = arena.allocate_from(JAVA_INT, 99)
        holder = arena.allocate(ADDRESS)
        holder.set(ADDRESS, 0, target)
        plain = holder.get(ADDRESS, 0)
        assert plain.address == target.address and plain.byte_size == 0
        with pytest.raises(IndexError):
            plain.get(JAVA_INT, 0)
        sized = holder.get(ADDRESS.with_target_layout(JAVA_INT), 0)
        assert sized.byte_size == 4 and sized.get(JAVA_INT, 0) == 99


class TestSlices:
    def test_slices_alias_their_parent(self, arena: ffm.Arena) -> None:
        parent = arena.allocate(32, 8)
        child = parent.as_slice(8, 8)
        child.set(JAVA_LONG, 0, 7)
        assert parent.get(JAVA_LONG, 8) == 7
        assert child.address == parent.address + 8 and child.scope is parent.scope
        assert parent.as_slice(24).byte_size == 8
        assert parent.as_slice(0, JAVA_LONG).byte_size == 8

    def test_slice_bounds_and_alignment(self, arena: ffm.Arena) -> None:
        parent = arena.allocate(16, 8)
        for offset, size in ((17, 0), (8, 9), (-1, 1), (0, -1)):
            with pytest.raises(IndexError, match="Out of bound access"):
                parent.as_slice(offset, size)
        with pytest.raises(ffm.MisalignedAccessError, match="incompatible with alignment"):
            parent.as_slice(4, 8, 8)

    def test_reinterpret(self, arena: ffm.Arena) -> None:
        segment = arena.allocate(8, 8)
        zero = MemorySegment.of_address(segment.address)
        with pytest.raises(IndexError):
            zero.get(JAVA_BYTE, 0)
        wide = zero.reinterpret(8)
        wide.set(JAVA_LONG, 0, 5)
        assert segment.get(JAVA_LONG, 0) == 5
        assert wide.scope is MemorySegment.NULL.scope
        with pytest.raises(ValueError, match="Invalid size: -1"):
            zero.reinterpret(-1)

    def test_reinterpret_with_arena_and_cleanup(self) -> None:
        seen: list[tuple[int, int]] = []
        target = Arena.global_arena().allocate(16)
        arena = Arena.of_confined()
        moved = MemorySegment.of_address(target.address).reinterpret(
            16, arena, lambda s: seen.append((s.address, s.byte_size))
        )
        assert moved.scope is arena and moved.byte_size == 16
        MemorySegment.of_address(target.address).reinterpret(
            arena=arena, cleanup=lambda s: seen.append((0, 0))
        )
        assert seen == []
        arena.close()
        assert sorted(seen) == sorted([(target.address, 16), (0, 0)])
        with pytest.raises(ffm.ScopeClosedError):
            moved.get(JAVA_BYTE, 0)
        with pytest.raises(ffm.ScopeClosedError, match="Already closed"):
            MemorySegment.NULL.reinterpret(1, arena)


class TestBulk:
    def test_fill_copy_mismatch(self, arena: ffm.Arena) -> None:
        first = arena.allocate(100).fill(0x11)
        second = arena.allocate(100)
        assert first.mismatch(second) == 0
        second.copy_from(first)
        assert first.mismatch(second) == -1
        second.set(JAVA_BYTE, 77, 0)
        assert first.mismatch(second) == 77
        assert first.mismatch(second.as_slice(0, 50)) == -1 or first.mismatch(second.as_slice(0, 50)) == 50
        assert first.as_slice(0, 50).mismatch(second) == 50
        with pytest.raises(OverflowError, match="does not fit in a byte"):
            first.fill(256)

    def test_copy_overlapping(self, arena: ffm.Arena) -> None:
        segment = arena.allocate_from(JAVA_BYTE, list(range(10)))
        MemorySegment.copy(segment, 0, segment, 2, 8)
        assert list(segment.to_bytes()) == [0, 1, 0, 1, 2, 3, 4, 5, 6, 7]

    def test_copy_elements_swaps_byte_order(self, arena: ffm.Arena) -> None:
        source = arena.allocate_from(JAVA_INT, [1, 2, 3])
        target = arena.allocate(12)
        MemorySegment.copy(source, JAVA_INT, 0, target, JAVA_INT.with_order("big"), 0, 3)
        assert target.to_bytes() == b"\0\0\0\1\0\0\0\2\0\0\0\3"
        with pytest.raises(IndexError):
            MemorySegment.copy(source, 0, target, 4, 12)

    def test_to_array(self, arena: ffm.Arena) -> None:
        segment = arena.allocate_from(JAVA_CHAR, [65, 66])
        assert segment.to_array(JAVA_CHAR).tolist() == [65, 66]
        assert segment.to_array(JAVA_BYTE).tolist() == [65, 0, 66, 0]
        with pytest.raises(TypeError, match="to_array\\(\\) takes JAVA_BYTE"):
            segment.to_array(JAVA_BOOLEAN)
        with pytest.raises(ValueError, match="not a multiple"):
            segment.to_array(JAVA_LONG)

    def test_strings(self, arena: ffm.Arena) -> None:
        segment = arena.allocate(32)
        segment.set_string(4, "héllo")
        assert segment.get_string(4) == "héllo"
        with pytest.raises(IndexError):
            segment.set_string(30, "abc")
        with pytest.raises(ValueError, match="Unsupported charset 'klingon'"):
            segment.get_string(0, "klingon")


class TestReadOnlyAndViews:
    def test_read_only(self, arena: ffm.Arena) -> None:
        segment = arena.allocate(8, 8)
        frozen = segment.as_read_only()
        assert frozen.is_read_only() and not segment.is_read_only()
        segment.set(JAVA_INT, 0, 3)
        assert frozen.get(JAVA_INT, 0) == 3
        for write in (
            lambda: frozen.set(JAVA_INT, 0, 1),
            lambda: frozen.fill(0),
            lambda: frozen.copy_from(segment),
            lambda: frozen.set_string(0, "x"),
        ):
            with pytest.raises(ffm.ReadOnlyError, match="read-only segment"):
                write()
        assert frozen.as_slice(4).is_read_only()

    def test_memoryview_is_zero_copy_and_released_on_close(self) -> None:
        arena = Arena.of_confined()
        segment = arena.allocate(8)
        view = segment.as_memoryview()
        view[0] = 42
        assert segment.get(JAVA_BYTE, 0) == 42
        arena.close()
        with pytest.raises(ValueError, match="released memoryview"):
            view[0]

    def test_memoryview_of_auto_arena_keeps_memory(self) -> None:
        view = Arena.of_auto().allocate(16).as_memoryview()
        view[:4] = b"abcd"
        assert bytes(view[:4]) == b"abcd"


class TestHeapSegments:
    @pytest.mark.parametrize(
        "make",
        [
            lambda: bytearray(16),
            lambda: array.array("i", [0] * 4),
            lambda: memoryview(bytearray(16)),
        ],
        ids=["bytearray", "array", "memoryview"],
    )
    def test_of_array_is_zero_copy(self, make: object) -> None:
        buffer = make()  # type: ignore[operator]
        segment = MemorySegment.of_array(buffer)
        assert not segment.is_native() and segment.byte_size == 16 and segment.address == 0
        segment.set(JAVA_INT_UNALIGNED, 4, 0x01020304)
        assert bytes(memoryview(buffer).cast("B"))[4:8] == (0x01020304).to_bytes(4, "little")
        assert segment.heap_base() is buffer

    def test_numpy_arrays(self) -> None:
        import numpy

        values = numpy.zeros(4, dtype=numpy.float64)
        segment = MemorySegment.of_array(values)
        segment.set_at_index(JAVA_DOUBLE, 2, 2.5)
        assert values[2] == 2.5

    def test_buffer_cannot_be_resized_while_wrapped(self) -> None:
        buffer = bytearray(4)
        segment = MemorySegment.of_array(buffer)
        with pytest.raises(BufferError):
            buffer.extend(b"more")
        assert segment.byte_size == 4

    def test_refusals(self) -> None:
        with pytest.raises(TypeError, match="needs a writable buffer or bytes"):
            MemorySegment.of_array(memoryview(b"bytes"))
        with pytest.raises(TypeError, match="buffer protocol"):
            MemorySegment.of_array([1, 2])
        with pytest.raises(ffm.UnsupportedOperationError, match="Not a native segment"):
            MemorySegment.of_array(bytearray(4)).reinterpret(8)

    def test_equality(self) -> None:
        buffer = bytearray(8)
        assert MemorySegment.of_array(buffer) == MemorySegment.of_array(buffer)
        assert MemorySegment.of_array(buffer) != MemorySegment.of_array(bytearray(8))
        assert MemorySegment.of_array(buffer).as_slice(2) == MemorySegment.of_array(buffer).as_slice(2)


class TestAllocators:
    def test_slicing_allocator(self, arena: ffm.Arena) -> None:
        block = arena.allocate(32, 8)
        allocator = SegmentAllocator.slicing_allocator(block)
        first = allocator.allocate(3)
        second = allocator.allocate(JAVA_LONG)
        assert first.address == block.address and second.address == block.address + 8
        allocator.allocate(16)
        with pytest.raises(IndexError, match="cannot fit 1 more bytes"):
            allocator.allocate(1)

    def test_prefix_allocator(self, arena: ffm.Arena) -> None:
        block = arena.allocate(16, 8)
        allocator = SegmentAllocator.prefix_allocator(block)
        assert allocator.allocate(8).address == allocator.allocate(JAVA_INT).address == block.address
        assert allocator.allocate_from(JAVA_INT, 7).get(JAVA_INT, 0) == 7
        with pytest.raises(IndexError):
            allocator.allocate(17)


class TestArenasAndScopes:
    def test_accessibility(self) -> None:
        confined = Arena.of_confined()
        segment = confined.allocate(1)
        other = threading.Thread(target=lambda: None)
        other.start()
        other.join()
        assert segment.is_accessible_by(threading.current_thread())
        assert not segment.is_accessible_by(other)
        assert Arena.of_auto().allocate(1).is_accessible_by(other)
        confined.close()
        assert not confined.is_alive()

    def test_close_twice(self) -> None:
        arena = Arena.of_confined()
        arena.close()
        with pytest.raises(ffm.ScopeClosedError, match="Already closed"):
            arena.close()

    def test_equality_and_hash(self, arena: ffm.Arena) -> None:
        segment = arena.allocate(8)
        same = MemorySegment.of_address(segment.address).reinterpret(8)
        assert segment == same and hash(segment) == hash(same)
        assert segment != segment.as_slice(0, 4)
        assert segment != MemorySegment.of_address(segment.address)


def test_an_object_that_looks_like_a_layout_is_refused() -> None:
    """Only layouts are trusted with the size and codec of an access: an object carrying a
    codec wider than its declared size cannot read or write past the segment."""

    class Liar:
        _codec = struct.Struct("<Q")
        _mask = 0
        _byte_size = 0

    with Arena.of_confined() as arena:
        segment = arena.allocate(4)
        with pytest.raises(TypeError, match="get\\(\\) needs a ValueLayout, not Liar"):
            segment.get(Liar(), 4)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="set\\(\\) needs a ValueLayout, not Liar"):
            segment.set(Liar(), 4, 1)  # type: ignore[arg-type]


class Sneaky(int):
    """An int whose operators lie: the checks must not use them."""

    def __lt__(self, other: object) -> bool:
        return False

    def __gt__(self, other: object) -> bool:
        return False

    def __rsub__(self, other: object) -> int:
        return 0

    def __mul__(self, other: object) -> int:
        return 0


class FakeOffset:
    def __lt__(self, other: object) -> bool:
        return False

    def __gt__(self, other: object) -> bool:
        return False

    def __radd__(self, other: int) -> int:
        return other + 64


class Size(IntEnum):
    SMALL = 8


def test_offsets_must_really_be_ints() -> None:
    with Arena.of_confined() as arena:
        segment = arena.allocate(8, 8)
        for method in (lambda o: segment.get(JAVA_LONG, o), lambda o: segment.set(JAVA_LONG, o, 1)):
            with pytest.raises(TypeError, match="offset must be an int, not FakeOffset"):
                method(FakeOffset())


def test_int_subclasses_are_read_as_plain_ints() -> None:
    with Arena.of_confined() as arena:
        segment = arena.allocate(16, 8)
        with pytest.raises(IndexError, match="Out of bound access"):
            segment.as_slice(0, Sneaky(4096))
        with pytest.raises(IndexError, match="Out of bound access"):
            segment.get(JAVA_LONG, Sneaky(64))
        with pytest.raises(IndexError):
            segment.get_at_index(JAVA_LONG, Sneaky(5))
        with pytest.raises(IndexError):
            MemorySegment.copy(segment, 0, segment, 0, Sneaky(1 << 40))
        assert segment.as_slice(Sneaky(8)).byte_size == 8
        assert arena.allocate(Size.SMALL, Size.SMALL).byte_size == 8


def test_views_outlive_close_on_memory_that_is_not_reused() -> None:
    with Arena.of_confined() as first:
        derived = first.allocate(64).as_memoryview()[:]
        owner = first.allocate(1 << 16).as_memoryview().obj
    with Arena.of_confined() as second:
        fresh = second.allocate(64)
        derived[0:4] = b"LATE"  # writes to the first arena's kept memory
        owner[100] = b"x"
        assert fresh.to_bytes()[:4] == bytes(4)
    del derived, owner
    gc.collect()


def test_released_views_let_close_reuse_the_memory() -> None:
    """A view released before close (and nothing derived from it left) leaves nothing that
    reaches the memory: close gives the slab back to the pool, as without a view; a view
    still derived from it, or its exporter held, keeps the memory out of the pool."""
    pool = ffm._arena._pool
    with Arena.of_confined() as arena:
        arena.allocate(64).as_memoryview().release()
        slab = arena._slab  # type: ignore[attr-defined]
    assert pool[-1] is slab
    with Arena.of_confined() as arena:
        view = arena.allocate(64).as_memoryview()
        derived = view[:8]
        view.release()
        kept = arena._slab  # type: ignore[attr-defined]
    assert all(pooled is not kept for pooled in pool)
    derived[:4] = b"LATE"  # on kept memory
    with Arena.of_confined() as arena:
        held = arena.allocate(64).as_memoryview().obj
        kept = arena._slab  # type: ignore[attr-defined]
    assert all(pooled is not kept for pooled in pool)
    held[0] = b"x"  # type: ignore[index]
    del derived, held
    gc.collect()


def test_read_only_views_are_copies() -> None:
    with Arena.of_confined() as arena:
        segment = arena.allocate(8)
        view = segment.as_read_only().as_memoryview()
        assert view.readonly
        with pytest.raises(TypeError):
            view.obj[0] = 65  # type: ignore[index]
        heap = MemorySegment.of_array(bytearray(8)).as_read_only().as_memoryview()
        assert heap.readonly and heap.obj is not None and not isinstance(heap.obj, bytearray)
        assert segment.get(JAVA_BYTE, 0) == 0


class TestBytes:
    """bytes without copies: a read-only heap segment over them, and one copy into an arena."""

    def test_of_array_over_bytes_is_read_only_and_not_a_copy(self) -> None:
        data = b"hello\x00\xff"
        segment = MemorySegment.of_array(data)
        assert segment.is_read_only() and not segment.is_native() and segment.heap_base() is None
        assert segment.byte_size == 7 and segment.address == 0
        # the segment's memory is the bytes object's own (CPython: after the object header)
        assert segment._address == id(data) + bytes.__basicsize__ - 1  # type: ignore[attr-defined]
        assert segment.get_string(0) == "hello"
        assert segment.get(JAVA_BYTE, 6) == -1 and segment.to_bytes() == data
        with pytest.raises(ffm.ReadOnlyError, match="Attempt to write to the read-only segment"):
            segment.set(JAVA_BYTE, 0, 1)
        with pytest.raises(ffm.ReadOnlyError, match="Attempt to write to the read-only segment"):
            segment.fill(0)
        assert data == b"hello\x00\xff"
        assert MemorySegment.of_array(b"").byte_size == 0
        # equal when over the same object (read-only segments have no heap_base() to compare)
        other = bytes(bytearray(data))  # equal bytes, another object
        assert MemorySegment.of_array(data) == segment != MemorySegment.of_array(other)
        assert (
            MemorySegment.of_array(bytearray(4)).as_read_only()
            != MemorySegment.of_array(bytearray(4)).as_read_only()
        )

    def test_other_read_only_buffers_are_refused(self) -> None:
        with pytest.raises(
            TypeError, match="of_array\\(\\) needs a writable buffer or bytes; memoryview is read-only"
        ):
            MemorySegment.of_array(memoryview(b"abc"))

    @pytest.mark.parametrize(
        "data",
        [
            b"ab\x80\xff",
            bytearray(b"ab\x80\xff"),
            memoryview(b"xxab\x80\xffyy")[2:6],
            array.array("B", b"ab\x80\xff"),
        ],
        ids=["bytes", "bytearray", "memoryview", "array"],
    )
    def test_allocate_from_java_byte_takes_bytes_like_data(self, data: object) -> None:
        with Arena.of_confined() as arena:
            segment = arena.allocate_from(JAVA_BYTE, data)
            assert segment.byte_size == 4 and segment.to_bytes() == b"ab\x80\xff"
            assert segment.get(JAVA_BYTE, 2) == -128

    def test_buffers_of_wider_items_stay_element_wise(self) -> None:
        with Arena.of_confined() as arena:
            assert arena.allocate_from(JAVA_BYTE, array.array("i", [1, 2])).to_bytes() == b"\x01\x02"
            assert arena.allocate_from(JAVA_BYTE, 5).to_bytes() == b"\x05"

    def test_allocate_from_java_byte_needs_contiguous_bytes(self) -> None:
        with (
            Arena.of_confined() as arena,
            pytest.raises(TypeError, match="allocate_from\\(JAVA_BYTE, data\\) needs a C-contiguous buffer"),
        ):
            arena.allocate_from(JAVA_BYTE, memoryview(b"abcdef")[::2])


@pytest.mark.parametrize("pure_python", ["", "1"], ids=["native", "python"])
def test_get_string_stops_at_the_terminator_before_an_unmapped_page(pure_python: str) -> None:
    script = Path(__file__).parent / "scripts" / "string_at_page_end.py"
    env = {**os.environ, "FFM_PURE_PYTHON": pure_python, "FFM_ENABLE_NATIVE_ACCESS": "__main__"}
    done = subprocess.run(
        [sys.executable, str(script)], check=False, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [
        *("utf-8", "ok", "latin-1", "ok", "utf-16le", "ok", "utf-32le", "ok"),
        *("two-pages", "ok"),
    ]


@pytest.mark.parametrize("pure_python", ["", "1"], ids=["native", "python"])
def test_strings_and_bytes_at_or_past_2_63_are_refused(pure_python: str) -> None:
    """A segment reinterpreted to end past 2**63 (a restricted operation) reads its strings
    below 2**63; the bytes at 2**63 and beyond are no memory of this process: get_string
    there used to scan them for a terminator for ever (2**51 empty chunks, holding the GIL),
    a sized get_string and to_bytes returned nothing, instead of the error get raises."""
    script = """
import ffm_runtime as ffm
text = ffm.Arena.global_arena().allocate_from("ab")
huge = ffm.MemorySegment.of_address(text.address).reinterpret(2**64 - 1)
print(huge.get_string(0), huge.get_string(0, "utf-8", 2))
beyond = 2**63 - text.address
for call in (
    lambda: huge.get_string(beyond),
    lambda: huge.get_string(beyond + 8, "utf-16le"),
    lambda: huge.get_string(beyond, "utf-8", 4),
    lambda: huge.get_string(beyond - 2, "utf-8", 4),
    lambda: huge.as_slice(beyond, 4).to_bytes(),
):
    try:
        call()
    except ValueError as exc:
        print(str(exc).split(" has ")[1])
    else:
        print("no error")
"""
    env = {**os.environ, "FFM_PURE_PYTHON": pure_python, "FFM_ENABLE_NATIVE_ACCESS": "__main__"}
    done = subprocess.run(
        [sys.executable, "-c", script], check=False, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "ab ab"
    assert lines[1:] == ["no address this process can access (at or beyond 2**63)"] * 5
