"""A stub manifest replaced by a FIFO once the scan has seen a regular file there (as another
process could): prints a downcall's result, then the warnings.  ``argv[1]``: the manifest.
Run by tests/test_manifests.py."""

from __future__ import annotations

import os
import sys
import warnings

import ffm_runtime as ffm
from ffm_runtime import JAVA_INT, FunctionDescriptor, Linker

victim = sys.argv[1]
real_isfile = os.path.isfile


def isfile(path: str) -> bool:
    # another process replaces the manifest by a FIFO once the scan has seen a file there
    found = real_isfile(path)
    if path == victim and found:
        os.unlink(path)
        os.mkfifo(path)
    return found


os.path.isfile = isfile  # type: ignore[assignment]
sys.path.append(os.path.dirname(os.path.dirname(os.path.dirname(victim))))
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    handle = Linker.native_linker().downcall_handle(
        ffm.SymbolLookup.loader_lookup().find("abs"), FunctionDescriptor.of(JAVA_INT, JAVA_INT)
    )
print(handle(-3))
for warning in caught:
    print(warning.category.__name__, warning.message)
