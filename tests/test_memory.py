"""The memory model downcalls need: segments, confined/auto/global arenas, strings."""

from __future__ import annotations

import threading

import pytest

import ffm_runtime as ffm
from ffm_runtime import JAVA_LONG, Arena, MemoryLayout, MemorySegment


def test_null_and_of_address() -> None:
    assert MemorySegment.NULL.address == 0 and MemorySegment.NULL.byte_size == 0
    segment = MemorySegment.of_address(0x1234)
    assert (segment.address, segment.byte_size) == (0x1234, 0)
    assert MemorySegment.of_address(0) is MemorySegment.NULL
    assert segment == MemorySegment.of_address(0x1234) and hash(segment) == hash(
        MemorySegment.of_address(0x1234)
    )
    assert segment.is_native()
    with pytest.raises(OverflowError, match=r"outside \[0, 2\*\*64 - 1\]"):
        MemorySegment.of_address(-1)
    with pytest.raises(TypeError, match="address must be an int, not str"):
        MemorySegment.of_address("1")  # type: ignore[arg-type]


def test_segments_cannot_be_made_directly() -> None:
    with pytest.raises(TypeError, match="cannot be created directly"):
        MemorySegment(0x1000, 4096)  # type: ignore[call-arg]


def test_confined_allocation_is_zeroed_and_aligned() -> None:
    with Arena.of_confined() as arena:
        for alignment in (1, 8, 64, 4096):
            segment = arena.allocate(100, alignment)
            assert segment.byte_size == 100
            assert segment.address % alignment == 0
            assert segment.to_bytes() == bytes(100)
        assert arena.allocate(0).byte_size == 0


@pytest.mark.parametrize(
    ("size", "alignment", "error", "message"),
    [
        (-1, 1, ValueError, "Invalid allocation size : -1"),
        (8, 3, ValueError, "Invalid alignment constraint : 3"),
        (8, 0, ValueError, "Invalid alignment constraint : 0"),
        ("8", 1, TypeError, "byte_size must be an int"),
        (8, 1.0, TypeError, "byte_alignment must be an int"),
    ],
)
def test_allocate_validates(size: object, alignment: object, error: type[Exception], message: str) -> None:
    with Arena.of_confined() as arena, pytest.raises(error, match=message):
        arena.allocate(size, alignment)  # type: ignore[arg-type]


def test_strings_round_trip() -> None:
    with Arena.of_confined() as arena:
        for text in ["", "hello", "ünïcødé ✓", "a" * 1000]:
            segment = arena.allocate_from(text)
            assert segment.byte_size == len(text.encode()) + 1
            assert segment.get_string() == text
        segment = arena.allocate_from("hello world")
        assert segment.get_string(6) == "world"
        with pytest.raises(IndexError, match="Out of bound access"):
            segment.get_string(100)
        with pytest.raises(TypeError, match=r"allocate_from\(\) takes a str or a ValueLayout, not bytes"):
            arena.allocate_from(b"x")  # type: ignore[arg-type]


def test_string_without_terminator() -> None:
    with Arena.of_confined() as arena:
        segment = arena.allocate(4)
        segment.reinterpret(4)  # same size, still restricted but allowed here
        unterminated = arena.allocate_from("abc").reinterpret(3)
        with pytest.raises(ffm.OutOfBoundsError, match="No string terminator found"):
            unterminated.get_string()


def test_closed_arena() -> None:
    arena = Arena.of_confined()
    segment = arena.allocate_from("x")
    arena.close()
    assert not arena.is_alive()
    for operation in (segment.get_string, segment.to_bytes, lambda: arena.allocate(1), arena.close):
        with pytest.raises(ffm.ScopeClosedError, match="Already closed"):
            operation()


def test_confined_arena_rejects_other_threads() -> None:
    with Arena.of_confined() as arena:
        segment = arena.allocate_from("x")
        errors: list[BaseException] = []

        def other() -> None:
            for operation in (segment.get_string, lambda: arena.allocate(1), arena.close):
                try:
                    operation()
                except BaseException as exc:
                    errors.append(exc)

        thread = threading.Thread(target=other)
        thread.start()
        thread.join()
        assert len(errors) == 3
        assert all(isinstance(e, ffm.WrongThreadError) for e in errors)
        assert all("Attempted access outside owning thread" in str(e) for e in errors)


def test_global_and_auto_arenas_cannot_be_closed() -> None:
    with pytest.raises(ffm.UnsupportedOperationError, match=r"non-closeable \(global\) arena"):
        Arena.global_arena().close()
    with pytest.raises(ffm.UnsupportedOperationError, match=r"non-closeable \(automatic\) arena"):
        Arena.of_auto().close()
    assert Arena.global_arena() is Arena.global_arena()


def test_auto_arena_memory_lives_with_its_segments() -> None:
    segment = Arena.of_auto().allocate_from("still here")
    assert segment.get_string() == "still here"


def test_reinterpret_validates() -> None:
    with pytest.raises(ValueError, match="Invalid size: -1"):
        MemorySegment.NULL.reinterpret(-1)


@pytest.mark.parametrize(("size", "alignment"), [(2**64, 1), (2**62, 1), (8, 2**64), (2**63 - 1, 1)])
def test_absurd_allocations_fail_cleanly(size: int, alignment: int) -> None:
    with Arena.of_confined() as arena, pytest.raises(MemoryError, match="cannot allocate"):
        arena.allocate(size, alignment)
    with Arena.of_confined() as arena, pytest.raises(MemoryError, match="cannot allocate"):
        # the largest layout (2**63 - 8 bytes; a larger one is refused when made, as in Java)
        arena.allocate(MemoryLayout.sequence_layout((2**63 - 1) // 8, JAVA_LONG))
