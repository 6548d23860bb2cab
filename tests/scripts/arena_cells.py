"""The arena an upcall opens for its struct arguments is the runtime's, not whatever
``Arena.of_confined`` and ``Arena.close`` were when the runtime set itself up.  Run by
tests/test_startup.py in a fresh interpreter:

    python arena_cells.py SITE LIBRARY FIRST

``SITE``: a folder on which the test package is installed; ``LIBRARY``: the C test library;
``FIRST``: what runs while ``Arena.close`` is replaced (as ``unittest.mock.patch`` does in a
test): ``handle`` (the first downcall handle: the bootstrap) or ``arena`` (the first arena:
the accelerators).  Prints "arena cells checked".
"""

from __future__ import annotations

import sys
from unittest import mock

sys.path.insert(0, sys.argv[1])

from ffm_runtime import JAVA_INT, Arena, FunctionDescriptor, Linker, SymbolLookup, load_library

load_library(sys.argv[2])
from ffm_testpkg import struct_upcalls  # type: ignore[import-not-found]  # noqa: E402  (from SITE)

closed: list[Arena] = []
close = Arena.close


def traced_close(self: Arena) -> None:
    closed.append(self)
    close(self)


with mock.patch.object(Arena, "close", traced_close):
    if sys.argv[3] == "handle":
        linker = Linker.native_linker()
        linker.downcall_handle(linker.default_lookup().find("abs"), FunctionDescriptor.of(JAVA_INT, JAVA_INT))
    else:
        Arena.of_confined().close()
assert Arena.close is close
closed.clear()
seen = struct_upcalls.check_arguments(lambda name: SymbolLookup.loader_lookup().find(name))
assert not any(segment.scope.is_alive() for segment in seen), "the upcall's arena is still open"
assert closed == [], f"the upcall closed its arena with a replaced Arena.close ({len(closed)} calls)"
print("arena cells checked")
