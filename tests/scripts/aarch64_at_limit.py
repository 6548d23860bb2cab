"""A struct of MAX_BY_VALUE_BYTE_SIZE bytes echoed through an aarch64 stub, on the main
thread and on a 128 KiB thread stack: prints "at the limit: ok".  ``argv[1]``: the
cross-compiled native test library.  Run by tests/test_aarch64_emulated.py in an emulated
aarch64 CPython, with the test's package ``ffm_at_limit`` on the path."""

from __future__ import annotations

import sys
import threading

# the package the test builds into a temporary site
from ffm_at_limit.features import AT_LIMIT_ECHO  # type: ignore[import-not-found]

import ffm_runtime as f

f.load_library(sys.argv[1])
echo = f.Linker.native_linker().downcall_handle(
    f.SymbolLookup.loader_lookup().find("at_limit_echo"), AT_LIMIT_ECHO
)
words = list(range(1, 513))
expected = [*words[:7], -8, *words[8:-1], words[-1] + 7]
outcomes: list[tuple[list[int], list[int]]] = []


def call() -> None:
    with f.Arena.of_confined() as arena:
        argument = arena.allocate_from(f.JAVA_LONG, words)
        result = echo(arena, argument, 7)
        outcomes.append((result.to_array(f.JAVA_LONG).tolist(), argument.to_array(f.JAVA_LONG).tolist()))


call()
threading.stack_size(128 * 1024)
thread = threading.Thread(target=call)
thread.start()
thread.join()
assert outcomes == [(expected, words)] * 2, outcomes
print("at the limit: ok")
