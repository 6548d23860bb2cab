"""The native code's memo of int values (``hatch_ffm._codegen._Helpers.word``).

Stubs and accelerators read a segment's address, size and alignment bits, a handle's target
and an arena's owner from ints, and remember the value of each int object they saw in a
small table keyed by the object's address.  These tests pin down why that is safe: the table
holds a reference to each int it remembers (an address then cannot name another int), it
lets go of old ones, and it never keeps an object whose freeing could run Python code.
"""

from __future__ import annotations

import gc
import random
import sys
from typing import Any, ClassVar

import pytest

from ffm_runtime import (
    ADDRESS,
    JAVA_BYTE,
    JAVA_INT,
    JAVA_LONG,
    Arena,
    FunctionDescriptor,
    Linker,
    MemoryLayout,
    MemorySegment,
    SegmentAllocator,
)

pytestmark = pytest.mark.usefixtures("stub_site")


@pytest.fixture(scope="module")
def lib(native_lib: Any) -> Any:
    import ffm_runtime as ffm

    ffm.load_library(str(native_lib))
    return ffm.SymbolLookup.loader_lookup().find


def byte_len(lib: Any) -> Any:
    return Linker.native_linker().downcall_handle(lib("byte_len"),
                                                  FunctionDescriptor.of(JAVA_LONG, ADDRESS))


def test_segments_made_and_freed_in_a_loop_each_read_their_own_address(lib: Any) -> None:
    """Freed ints' memory is reused for new ints at once (other values, same object
    address): a memo that did not hold its ints would hand out stale addresses here."""
    length = byte_len(lib)
    rng = random.Random(20261126)
    print("seed 20261126")
    for round_ in range(3000):
        with Arena.of_confined() as arena:
            arena.allocate(rng.randrange(1, 512))  # moves the next segment's address
            expected = [rng.randrange(0, 40) for _ in range(4)]
            texts = [arena.allocate_from("x" * n) for n in expected]
            assert [length(text) for text in texts] == expected, round_
        auto = Arena.of_auto()
        text = auto.allocate_from("y" * (round_ % 50))
        assert length(text) == round_ % 50
        del auto, text


def test_the_memo_holds_one_reference_per_int_and_lets_it_go(lib: Any) -> None:
    length = byte_len(lib)
    with Arena.of_confined() as arena:
        text = arena.allocate_from("hello")
        address = text._address  # type: ignore[attr-defined]
        before = sys.getrefcount(address)
        for _ in range(3):
            assert length(text) == 5
        assert sys.getrefcount(address) == before + 1
        others = [arena.allocate_from("z") for _ in range(2000)]
        for other in others:
            assert length(other) == 1
        assert sys.getrefcount(address) == before


class Tracked(int):
    """An int subclass whose freeing runs Python code (and records it)."""

    freed: ClassVar[list[int]] = []

    def __del__(self) -> None:
        Tracked.freed.append(int(self))


def test_int_subclasses_in_fields_are_read_but_never_kept(lib: Any) -> None:
    length = byte_len(lib)
    Tracked.freed.clear()
    arena = Arena.of_confined()
    text = arena.allocate_from("four")
    value = text.address
    object.__setattr__(text, "_address", Tracked(value))
    object.__setattr__(text, "_size", Tracked(5))
    for _ in range(3):
        assert length(text) == 4
        assert text.get(JAVA_BYTE, 1) == ord("o")
    assert Tracked.freed == []
    del text
    gc.collect()
    assert sorted(Tracked.freed) == sorted([value, 5])
    arena.close()


def test_addresses_beyond_the_signed_range(lib: Any) -> None:
    """Values in [2**63, 2**64) are remembered as unsigned words; -1's bit pattern too."""
    echo = Linker.native_linker().downcall_handle(lib("id_ptr"),
                                                  FunctionDescriptor.of(ADDRESS, ADDRESS))
    for value in (2**63, 2**63 + 8, 2**64 - 8, 2**64 - 1, 2**63 - 1):
        segment = MemorySegment.of_address(value)
        for _ in range(3):
            assert echo(segment).address == value


def test_prefix_results_share_their_block_and_stay_correct(lib: Any) -> None:
    """A prefix allocator's struct results share the block's ints and memory; a result
    object is handed out again only while nothing else holds it."""
    pair = MemoryLayout.struct_layout(JAVA_INT, JAVA_INT)
    div = Linker.native_linker().downcall_handle(lib("div"),
                                                 FunctionDescriptor.of(pair, JAVA_INT, JAVA_INT))
    with Arena.of_confined() as arena:
        block = arena.allocate(pair)
        prefix = SegmentAllocator.prefix_allocator(block)
        first = div(prefix, 17, 5)
        assert (first.get(JAVA_INT, 0), first.get(JAVA_INT, 4)) == (3, 2)
        assert first.address == block.address and first.byte_size == 8
        assert first._address is block._address  # type: ignore[attr-defined]
        second = div(prefix, 9, 4)  # ``first`` is held: a new object, the same memory
        assert second is not first and second.address == first.address
        assert (first.get(JAVA_INT, 0), first.get(JAVA_INT, 4)) == (2, 1)
        del first, second
        again = [id(div(prefix, 100, n)) for n in range(1, 4)]
        assert again[0] == again[1] == again[2]  # nothing else held it: handed out again
        for n in range(1, 50):
            result = div(prefix, 100, n)
            assert (result.get(JAVA_INT, 0), result.get(JAVA_INT, 4)) == divmod(100, n)
            del result
