"""Entries of the private slab pool that are not slab tuples of ints: prints, per entry,
whether ``Arena.of_confined`` (native) started without a slab and left the entry in the pool.
Run by tests/test_native_objects.py."""

from __future__ import annotations

import ffm_runtime as ffm
from ffm_runtime import Arena, _arena

assert ffm.accelerated()
for bad in [(0, "x", memoryview(b"")), (0, 2**70, memoryview(b"")), (0,), "not a tuple"]:
    _arena._pool.append(bad)  # type: ignore[arg-type]
    try:
        arena = Arena.of_confined()
    except SystemError:
        print("SystemError", flush=True)
        continue
    finally:
        left = _arena._pool[-1] is bad
        _arena._pool[:] = [entry for entry in _arena._pool if entry is not bad]
    print(arena._slab is None, left, flush=True)
    arena.close()
