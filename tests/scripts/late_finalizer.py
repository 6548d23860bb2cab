"""A finalizer that runs after the runtime's modules were cleared at interpreter exit (it is
reachable from ``sys.excepthook``, which goes last) and uses accelerated methods and a
downcall handle.  Prints what it read; run by tests/test_exit.py."""

from __future__ import annotations

import sys

import ffm_runtime
from ffm_runtime import (
    ADDRESS,
    JAVA_INT,
    JAVA_LONG,
    Arena,
    FunctionDescriptor,
    Linker,
    SymbolLookup,
)

strlen = Linker.native_linker().downcall_handle(
    SymbolLookup.loader_lookup().find("strlen"), FunctionDescriptor.of(JAVA_LONG, ADDRESS)
)


class Late:
    # what __del__ uses is kept here: the modules' globals are gone when it runs
    def __init__(self) -> None:
        self.arena = Arena.of_confined()
        self.segment = self.arena.allocate(16)
        self.text = self.arena.allocate_from("hello")
        self.new_arena = Arena.of_confined
        self.strlen = strlen
        self.accelerated = ffm_runtime.accelerated()
        self.out = sys.stdout
        self.layout = JAVA_INT

    def __del__(self) -> None:
        self.segment.set(self.layout, 0, 7)
        value = self.segment.get(self.layout, 0)
        other = self.new_arena()
        other.allocate(16).set(self.layout, 4, 1)
        other.close()
        length = self.strlen(self.text)
        self.arena.close()
        self.out.write(f"late finalizer: {value} {length} {self.accelerated}\n")


class Hook:
    def __init__(self) -> None:
        self.late = Late()

    def __call__(self, *args: object) -> None:
        sys.__excepthook__(*args)  # type: ignore[arg-type]


sys.excepthook = Hook()
