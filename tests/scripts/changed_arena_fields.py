"""A struct-returning downcall with an arena whose cursor, slab alignment or limit was changed
to a bad value: prints, per field and value, whether the result was right or which exception
the call raised.  ``argv[1]``: the folder holding the test package.  Run by
tests/test_native_objects.py."""

from __future__ import annotations

import sys

sys.path.insert(0, sys.argv[1])
import ffm_runtime as ffm
from ffm_runtime import JAVA_INT, Arena, FunctionDescriptor, Linker, MemoryLayout


class Noisy(int):
    def __del__(self) -> None:
        print("freed", int(self), flush=True)


div = Linker.native_linker().downcall_handle(
    ffm.SymbolLookup.loader_lookup().find("div"),
    FunctionDescriptor.of(MemoryLayout.struct_layout(JAVA_INT, JAVA_INT), JAVA_INT, JAVA_INT),
)
for field, text in [
    (f, v)
    for f in ("_cursor", "_slab_align", "_limit")
    for v in ("2**63", "2**64 - 8", "-8", "'x'", "Noisy(16)", "2**20")
]:
    arena = Arena.of_confined()
    div(arena, 1, 1)
    object.__setattr__(arena, field, eval(text))
    outcome: object
    try:
        result = div(arena, 7, 2)
        outcome = (result.get(JAVA_INT, 0), result.get(JAVA_INT, 4)) == (3, 1)
    except (TypeError, ValueError, OverflowError, MemoryError) as exc:
        outcome = type(exc).__name__
    print(field, text, outcome, flush=True)
