"""Python code that runs at a call boundary of a memory operation (where CPython runs signal
handlers and, from 3.12, finalizers) can raise.

A profiler is called at exactly those call boundaries of the runtime's own Python code: on
entering a function, and when a call returns.  At each of them in turn, the tests raise
``KeyboardInterrupt`` there (as a signal handler does on Ctrl-C): the operation must not leave
the arena pinned, unclosable, for ever.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from types import FrameType
from typing import Any

import pytest
from test_operation_ordering import OPERATIONS, fresh_arena, operations

import ffm_runtime

SMALL = ffm_runtime._abi.ARENA_SMALL


class Interrupt(KeyboardInterrupt):
    """The KeyboardInterrupt a signal handler raises, told apart from a real one."""


def _ours(frame: FrameType) -> bool:
    name = frame.f_globals.get("__name__", "")
    return isinstance(name, str) and name.partition(".")[0] == "ffm_runtime"


def run_with_hook_at(step: int, hook: Callable[[], None], operation: Callable[[], Any]
                     ) -> tuple[bool, Any]:
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
