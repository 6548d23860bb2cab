"""Python code run in the middle of reinterpret's remembered caller check: a key of the
calling module's globals whose hash is that of ``"__name__"`` compares itself with it when
the check looks the name up, and there decides the same code again (a changed variable),
which drops the decision the check was reading.  The check must still hold it: run under
``PYTHONMALLOC=debug``, a read of the dropped decision kills the process.  Prints
``reinterpret 32`` and ``compared``.  Run by tests/test_pointers.py."""

from __future__ import annotations

import os
from typing import Any

from ffm_runtime import Arena

os.environ["FFM_ENABLE_NATIVE_ACCESS"] = "__main__"
arena = Arena.of_confined()
segment = arena.allocate(16)
state = {"armed": False, "compared": False}


class Collides:
    """A key that ``"__name__"`` is compared with when the globals are looked in."""

    def __hash__(self) -> int:
        return hash("__name__")

    def __eq__(self, other: object) -> bool:
        if state["armed"] and not state["compared"]:
            state["compared"] = True
            os.environ["FFM_ENABLE_NATIVE_ACCESS"] = "__main__,other"  # a new value
            call(8)  # decided again for this code: the decision read so far is dropped
            del [tuple(range(8)) for _ in range(5000)][:]  # its memory is not kept as a tuple
        return False

    __ne__ = object.__ne__


def call(size: int) -> object:
    return segment.reinterpret(size)


call(8)  # decided, and remembered
scope: dict[Any, Any] = globals()
name = scope.pop("__name__")
scope[Collides()] = None  # looking "__name__" up meets this key first
scope["__name__"] = name
state["armed"] = True
print("reinterpret", call(32).byte_size)  # type: ignore[attr-defined]
print("compared" if state["compared"] else "not compared")
arena.close()
