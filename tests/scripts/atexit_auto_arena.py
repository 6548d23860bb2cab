"""An ``atexit`` handler registered before the runtime's first automatic arena (so it runs
after anything the runtime registers) reads and writes a segment of a reachable automatic
arena.  Prints what it read; run by tests/test_exit.py."""

from __future__ import annotations

import atexit
import sys
from typing import Any

state: dict[str, Any] = {}


def late() -> None:
    arena, segment = state["arena"], state["segment"]
    before = segment.to_bytes()
    segment.fill(0x44)
    sys.stdout.write(
        f"atexit: alive={arena.is_alive()} intact={before == bytes([0x33]) * 4096}"
        f" {segment.to_bytes() == bytes([0x44]) * 4096}\n"
    )


atexit.register(late)

from ffm_runtime import Arena  # noqa: E402  (after the handler, on purpose)

state["arena"] = arena = Arena.of_auto()
state["segment"] = segment = arena.allocate(4096)
segment.fill(0x33)
