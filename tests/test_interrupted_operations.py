"""Python code that runs at a call boundary of a memory operation (where CPython runs signal
handlers and, from 3.12, finalizers; the cycle collector also runs at an allocation on 3.10
and 3.11) can raise, or allocate from the same arena.

A profiler is called at exactly those call boundaries of the runtime's own Python code: on
entering a function, and when a call returns.  At each of them in turn, the tests raise
``KeyboardInterrupt`` there (as a signal handler does on Ctrl-C): the operation must not leave
the arena pinned, unclosable, for ever.  Or they allocate from the same arena there (as a
signal handler, a finalizer or a ``gc.callbacks`` hook may): no two segments may share memory,
and the arena must give back each slab once (a slab pooled twice goes to two arenas).
"""

from __future__ import annotations

import ctypes
import gc
import itertools
import sys
from collections.abc import Callable
from types import FrameType
from typing import Any

import pytest
from test_operation_ordering import OPERATIONS, fresh_arena, operations

import ffm_runtime
from ffm_runtime import Arena, MemorySegment

SMALL = ffm_runtime._contract.ARENA_SMALL


class Interrupt(KeyboardInterrupt):
    """The KeyboardInterrupt a signal handler raises, told apart from a real one."""


def _ours(frame: FrameType) -> bool:
    name = frame.f_globals.get("__name__", "")
    return isinstance(name, str) and name.partition(".")[0] == "ffm_runtime"


def run_with_hook_at(step: int, hook: Callable[[], None], operation: Callable[[], Any]) -> tuple[bool, Any]:
    """Run ``operation`` and call ``hook`` at the ``step``-th call boundary of the runtime's
    code; returns (whether that boundary was reached, the outcome)."""
    count = 0

    def profile(frame: FrameType, event: str, arg: Any) -> None:
        nonlocal count
        if event not in ("call", "return", "c_return") or not _ours(frame):
            return
        count += 1
        if count - 1 == step:
            sys.setprofile(None)
            hook()

    sys.setprofile(profile)
    try:
        outcome: Any = ("value", operation())
    except Interrupt as exc:
        outcome = ("interrupted", exc)
    except Exception as exc:
        outcome = ("raised", exc)
    finally:
        sys.setprofile(None)
    return count > step, outcome


def _interrupt() -> None:
    raise Interrupt


@pytest.mark.parametrize("name", OPERATIONS)
def test_an_interrupt_at_any_call_boundary_leaves_no_pin(name: str) -> None:
    """Wherever the KeyboardInterrupt lands, the arena can be closed afterwards."""
    step = 0
    while True:
        arena, segment = fresh_arena()
        reached, _ = run_with_hook_at(step, _interrupt, operations(segment, arena)[name][0])
        arena.close()  # ScopeInUseError if a pin was left behind
        assert not arena.is_alive()
        if not reached:
            break
        step += 1


ALLOCATIONS: dict[str, Callable[[Arena], Any]] = {
    "small": lambda arena: arena.allocate(SMALL, 8),
    "small, a new slab": lambda arena: arena.allocate(SMALL),
    "a block": lambda arena: arena.allocate(SMALL * 2),
    "allocate_from": lambda arena: arena.allocate_from(ffm_runtime.JAVA_INT, [1] * 1000),
    "as_memoryview": lambda arena: arena.allocate(SMALL).as_memoryview(),
}


def _full_arena() -> Arena:
    """A confined arena whose current slab has no room for another SMALL bytes."""
    arena = Arena.of_confined()
    arena.allocate(SMALL)
    while arena._cursor + SMALL <= arena._limit:  # type: ignore[attr-defined]
        arena.allocate(SMALL)
    return arena


def _check_disjoint(segments: list[MemorySegment]) -> None:
    spans = sorted((segment.address, segment.address + segment.byte_size) for segment in segments)
    for first, second in itertools.pairwise(spans):
        assert first[1] <= second[0], "two segments of one arena share memory"
    for segment in segments:  # its address and the view Python reads it through agree
        segment.fill(0x11)
        assert ctypes.string_at(segment.address, segment.byte_size) == segment.to_bytes()


def _check_given_back_once(arena: Arena) -> None:
    pool = ffm_runtime._arena._pool
    before = len(pool)
    arena.close()
    starts = [slab[1] for slab in pool]
    assert len(starts) == len(set(starts)), "a slab was given back twice"
    del pool[before:]  # not for the next arenas: they would share it


@pytest.mark.parametrize("inner", ["small, a new slab", "a block", "as_memoryview"])
@pytest.mark.parametrize("outer", list(ALLOCATIONS))
def test_allocating_at_any_call_boundary_of_an_allocation(outer: str, inner: str) -> None:
    """A signal handler or finalizer allocating from the arena during an allocation (the
    Python path of a full slab included)."""
    step = 0
    while True:
        arena = _full_arena()
        made: list[Any] = []
        reached, outcome = run_with_hook_at(
            step,
            lambda: made.append(ALLOCATIONS[inner](arena)),  # noqa: B023  (run in this turn)
            lambda: ALLOCATIONS[outer](arena),  # noqa: B023  (run in this turn)
        )
        assert outcome[0] == "value", (step, outcome)
        made.append(outcome[1])
        segments = [item for item in made if isinstance(item, MemorySegment)]
        _check_disjoint(segments)
        _check_given_back_once(arena)
        if not reached:
            break
        step += 1


@pytest.mark.parametrize("outer", list(ALLOCATIONS))
def test_a_collection_allocating_at_any_allocation(outer: str) -> None:
    """A gc callback allocating from the arena at every collection, with a collection at
    (nearly) every allocation of a container."""
    arena = _full_arena()
    made: list[Any] = []
    active = False

    def callback(phase: str, info: object) -> None:
        nonlocal active
        if phase == "start" and not active:
            active = True
            try:
                made.append(arena.allocate(SMALL))
            finally:
                active = False

    threshold = gc.get_threshold()
    gc.collect()
    gc.callbacks.append(callback)
    gc.set_threshold(1)
    try:
        for _ in range(40):
            made.append(ALLOCATIONS[outer](arena))
    finally:
        gc.set_threshold(*threshold)
        gc.callbacks.remove(callback)
    _check_disjoint([item for item in made if isinstance(item, MemorySegment)])
    _check_given_back_once(arena)
