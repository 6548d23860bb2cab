"""Lifetime: allocation cycles and dropped automatic arenas leave the process's memory flat."""

from __future__ import annotations

import gc
import os
import resource
import subprocess
import sys
import warnings

import pytest

from ffm_runtime import JAVA_LONG, Arena, _arena

PAGE = resource.getpagesize()


def resident_bytes() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * PAGE


def test_confined_cycles_leave_memory_flat() -> None:
    def cycles(count: int) -> None:
        for index in range(count):
            with Arena.of_confined() as arena:
                arena.allocate(64).set(JAVA_LONG, 8, index)
                if index % 1000 == 0:
                    arena.allocate(100_000)  # a large block, freed on close

    cycles(20_000)  # warm up: slab pool, allocator caches
    before = resident_bytes()
    cycles(1_000_000)
    growth = resident_bytes() - before
    assert growth < 8 << 20, f"resident memory grew by {growth} bytes over 1,000,000 cycles"
    assert len(_arena._pool) <= _arena._POOL_MAX


def test_dropped_auto_arenas_are_freed() -> None:
    def drop(count: int) -> None:
        for index in range(count):
            Arena.of_auto().allocate(64).set(JAVA_LONG, 0, index)

    drop(5_000)
    gc.collect()
    before = resident_bytes()
    drop(100_000)
    gc.collect()
    growth = resident_bytes() - before
    # each of these arenas held a 64 KiB slab: 100,000 of them would be 6.5 GB
    assert growth < 16 << 20, f"resident memory grew by {growth} bytes over 100,000 arenas"


def test_segments_keep_their_auto_arena_alive() -> None:
    segments = [Arena.of_auto().allocate_from(JAVA_LONG, i) for i in range(1000)]
    gc.collect()
    filler = [Arena.of_auto().allocate(64).fill(0xFF) for _ in range(1000)]
    assert [s.get(JAVA_LONG, 0) for s in segments] == list(range(1000))
    assert len(filler) == 1000 and os.getpid() > 0


def test_unclosed_confined_arena_warns_and_gives_memory_back() -> None:
    arena = Arena.of_confined()
    segment = arena.allocate(64)
    segment.set(JAVA_LONG, 0, 1)
    pool_before = len(_arena._pool)
    del segment
    with pytest.warns(ResourceWarning, match="was never closed"):
        del arena
        gc.collect()
    assert len(_arena._pool) == min(pool_before + 1, _arena._POOL_MAX)


def test_forgotten_arenas_do_not_pile_up() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        for _ in range(2_000):
            Arena.of_confined().allocate(64)
        before = resident_bytes()
        for _ in range(50_000):
            Arena.of_confined().allocate(64)
    growth = resident_bytes() - before
    assert growth < 8 << 20, f"resident memory grew by {growth} bytes"


def test_reused_slabs_are_zeroed_per_allocation() -> None:
    """Pooled slabs keep their old bytes; every allocation must still come back zeroed."""
    for size, alignment in ((4096, 1), (64, 64), (3, 1), (1000, 8)):
        for _ in range(3):
            with Arena.of_confined() as dirty:
                for _ in range(20):
                    dirty.allocate(size, alignment).fill(0xAB)
            with Arena.of_confined() as fresh:
                for _ in range(20):
                    assert fresh.allocate(size, alignment).to_bytes() == bytes(size)


def test_arenas_and_segments_are_not_copied_or_pickled() -> None:
    import copy
    import pickle

    with Arena.of_confined() as arena:
        segment = arena.allocate(8)
        for action in (copy.copy, copy.deepcopy, pickle.dumps):
            with pytest.raises(TypeError, match="an Arena cannot be copied or pickled"):
                action(arena)
        with pytest.raises(TypeError, match="a MemorySegment cannot be pickled"):
            pickle.dumps(segment)
        assert copy.copy(segment) is segment and copy.deepcopy(segment) is segment


def test_finalizing_a_confined_arena_by_hand_from_another_thread_keeps_its_memory() -> None:
    import threading

    arena = Arena.of_confined()
    cell = arena.allocate(8)
    cell.set(JAVA_LONG, 0, 42)
    with pytest.warns(ResourceWarning, match="finalized outside its owner thread"):
        thread = threading.Thread(target=arena.__del__)
        thread.start()
        thread.join()
    assert arena.is_alive() and cell.get(JAVA_LONG, 0) == 42
    arena.close()


def test_an_arena_made_with_its_class_is_refused_and_leaves_no_noise() -> None:
    """``Arena()`` (and a subclass's) raises TypeError; the half-made object's finalizer
    then has nothing to do (it reported an AttributeError through sys.unraisablehook)."""
    script = """
import gc, sys
from ffm_runtime import Arena
seen = []
sys.unraisablehook = lambda report: seen.append(report.exc_value)
class Mine(Arena):
    pass
for cls in (Arena, Mine):
    try:
        cls()
    except TypeError as exc:
        print("refused:", exc)
gc.collect()
print("unraisable:", seen)
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("refused: ") == 2, result.stdout
    assert "unraisable: []" in result.stdout, result.stdout
