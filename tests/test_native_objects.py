"""How native code (downcall stubs and the accelerators) treats the runtime's objects.

Stubs and accelerators read a segment's address, size and alignment bits, a handle's target
and an arena's owner and slab from int fields, with CPython's own conversions.  They read
each value afresh (an int's memory is reused for another int as soon as it is freed), keep
no reference to what they read or make, never run Python code in the middle of a call, and
give up (to the Python methods, which raise) when a private field was changed behind the
runtime's back.
"""

from __future__ import annotations

import gc
import random
import sys
from pathlib import Path
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
    ScopeClosedError,
    SegmentAllocator,
)

pytestmark = pytest.mark.usefixtures("stub_site")

SCRIPTS = Path(__file__).parent / "scripts"


@pytest.fixture(scope="module")
def lib(lookup: Any) -> Any:
    return lookup.find


def byte_len(lib: Any) -> Any:
    return Linker.native_linker().downcall_handle(lib("byte_len"), FunctionDescriptor.of(JAVA_LONG, ADDRESS))


def test_segments_made_and_freed_in_a_loop_each_read_their_own_address(lib: Any) -> None:
    """Freed ints' memory is reused for new ints at once (other values, same object
    address): native code that remembered values by object address would read stale ones."""
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


def test_native_reads_keep_no_reference_to_the_ints_they_read(lib: Any) -> None:
    length = byte_len(lib)
    with Arena.of_confined() as arena:
        text = arena.allocate_from("hello" + "!" * 300)  # a size no small-int cache holds
        fields = [text._address, text._size, text._align]  # type: ignore[attr-defined]
        owner = arena._confinement[0]  # type: ignore[attr-defined]
        before = [sys.getrefcount(field) for field in [*fields, owner]]
        for _ in range(3):
            assert length(text) == 305
            assert text.get(JAVA_BYTE, 1) == ord("e")
            text.set(JAVA_BYTE, 0, ord("j"))
        assert [sys.getrefcount(field) for field in [*fields, owner]] == before


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
    """Values in [2**63, 2**64) are addresses too (read as unsigned words); -1's bit pattern
    too."""
    echo = Linker.native_linker().downcall_handle(lib("id_ptr"), FunctionDescriptor.of(ADDRESS, ADDRESS))
    for value in (2**63, 2**63 + 8, 2**64 - 8, 2**64 - 1, 2**63 - 1):
        segment = MemorySegment.of_address(value)
        for _ in range(3):
            assert echo(segment).address == value


def test_prefix_results_share_their_block_and_stay_correct(lib: Any) -> None:
    """A prefix allocator's struct results share the block's ints and memory; every call
    makes a new result object, and the allocator keeps none of them."""
    pair = MemoryLayout.struct_layout(JAVA_INT, JAVA_INT)
    div = Linker.native_linker().downcall_handle(lib("div"), FunctionDescriptor.of(pair, JAVA_INT, JAVA_INT))
    with Arena.of_confined() as arena:
        block = arena.allocate(pair)
        prefix = SegmentAllocator.prefix_allocator(block)
        first = div(prefix, 17, 5)
        assert (first.get(JAVA_INT, 0), first.get(JAVA_INT, 4)) == (3, 2)
        assert first.address == block.address and first.byte_size == 8
        assert first._address is block._address  # type: ignore[attr-defined]
        second = div(prefix, 9, 4)  # a new object, the same memory
        assert second is not first and second.address == first.address
        assert (first.get(JAVA_INT, 0), first.get(JAVA_INT, 4)) == (2, 1)
        del first, second
        for n in range(1, 50):
            result = div(prefix, 100, n)
            assert (result.get(JAVA_INT, 0), result.get(JAVA_INT, 4)) == divmod(100, n)
            assert sys.getrefcount(result) == 2  # ``result`` and the call's argument: no other
            del result


# -- private fields changed behind the runtime's back (object.__setattr__) -------------------
# Not an API, but native code must still only give up (to the Python path) or raise: never
# crash, write where it should not, or run Python code in the middle of a call.

PAIR = MemoryLayout.struct_layout(JAVA_INT, JAVA_INT)


def div_handle(lib: Any) -> Any:
    return Linker.native_linker().downcall_handle(lib("div"), FunctionDescriptor.of(PAIR, JAVA_INT, JAVA_INT))


def pair(segment: MemorySegment) -> tuple[int, int]:
    return segment.get(JAVA_INT, 0), segment.get(JAVA_INT, 4)


class ClosesArena(int):
    """An int whose freeing closes an arena and hands its memory to a new one."""

    arena: Arena | None = None
    others: ClassVar[list[tuple[Arena, MemorySegment]]] = []

    def __del__(self) -> None:
        if ClosesArena.arena is not None and ClosesArena.arena.is_alive():
            ClosesArena.arena.close()
            other = Arena.of_confined()  # takes the pooled slab
            segment = other.allocate(PAIR)
            segment.set(JAVA_INT, 0, 1111)
            segment.set(JAVA_INT, 4, 2222)
            ClosesArena.others.append((other, segment))


def test_parent_ints_of_other_types_are_not_shared(lib: Any) -> None:
    """A result cut from a prefix allocator shares only exact ints with its block: an int
    subclass there (whose freeing runs Python code) stays the block's, and is freed when the
    block lets go of it, by Python code, never in the middle of a downcall."""
    div = div_handle(lib)
    ClosesArena.others.clear()
    arena = ClosesArena.arena = Arena.of_confined()
    block = arena.allocate(PAIR)
    object.__setattr__(block, "_address", ClosesArena(block.address))
    prefix = SegmentAllocator.prefix_allocator(block)
    first = div(prefix, 17, 5)
    assert type(first._address) is int  # type: ignore[attr-defined]
    del first
    object.__setattr__(block, "_address", int(block.address))  # the subclass goes: closes
    assert not arena.is_alive() and len(ClosesArena.others) == 1
    with pytest.raises(ScopeClosedError, match="Already closed"):
        div(prefix, 100, 7)
    other, segment = ClosesArena.others.pop()
    assert pair(segment) == (1111, 2222)
    other.close()
    ClosesArena.arena = None


def test_changed_arena_fields_never_crash_a_struct_call(stub_site: Any) -> None:
    """Run in a child process: a bad cursor, slab alignment or limit makes the stub's own
    allocation give up, and the Python method then copes or raises; nothing is written
    outside the slab.  (The Python method trusts the slab's start address.)"""
    import os
    import subprocess

    result = subprocess.run(
        [sys.executable, str(SCRIPTS / "changed_arena_fields.py"), str(stub_site)],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "FFM_ENABLE_NATIVE_ACCESS": "ALL-UNNAMED"},
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    outcomes = [line.split(" ", 1)[1] for line in result.stdout.splitlines() if not line.startswith("freed")]
    assert len(outcomes) == 18, result.stdout
    assert "SystemError" not in result.stderr
    # a cursor the stub does not take: the Python method starts a new slab or refuses
    assert outcomes[:6] == [
        "2**63 True",
        "2**64 - 8 True",
        "-8 ValueError",
        "'x' TypeError",
        "Noisy(16) True",
        "2**20 True",
    ]


def test_a_pooled_slab_that_is_not_one_is_left_alone() -> None:
    """Run in a child process: ``Arena.of_confined`` (native) takes the last pooled slab; an
    entry of the private pool that is not a slab tuple of ints is left in the pool, and the
    arena starts without a slab (as with an empty pool), with no error left set."""
    import os
    import subprocess

    result = subprocess.run(
        [sys.executable, str(SCRIPTS / "tampered_pool.py")],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ},
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert result.stdout.split("\n")[:-1] == ["True True"] * 4, result.stdout


@pytest.mark.usefixtures("stub_site")
def test_objects_made_without_init_raise_instead_of_crashing(stub_site: Any) -> None:
    """Native paths read fields at fixed offsets: objects whose fields were never set (made
    with object.__new__) must reach the Python path, which raises AttributeError."""
    import os
    import subprocess
    import sys

    outputs = []
    for pure in ("", "1"):  # the accelerators, and the Python methods they stand for
        result = subprocess.run(
            [sys.executable, str(SCRIPTS / "uninitialized_objects.py"), str(stub_site)],
            capture_output=True,
            text=True,
            check=False,
            env={**os.environ, "FFM_ENABLE_NATIVE_ACCESS": "ALL-UNNAMED", "FFM_PURE_PYTHON": pure},
        )
        assert result.returncode == 0, result.stderr
        outputs.append(result.stdout.split())
    assert len(outputs[0]) == 27 and outputs[0][:11] == outputs[1][:11]
    assert outputs[0].count("returned") == 1  # __enter__ only returns self
    # a method called on another class's instance: native methods check self (TypeError),
    # the Python functions fail on the missing field (AttributeError)
    assert outputs[0][11:13] == ["TypeError", "TypeError"]
    assert outputs[0][13:] == outputs[1][13:]  # the bulk accelerators
    assert set(outputs[0][13:]) == {"AttributeError", "TypeError"}
