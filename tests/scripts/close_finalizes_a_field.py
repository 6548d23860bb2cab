"""An arena whose ``_alive`` or whose guard's owner was replaced by an object with a
finalizer, closed: the finalizer runs when close drops the old value, and takes the
arena's slab away.  close must not pool the slab it read before (freed by then: under
``PYTHONMALLOC=debug`` the process dies).  Prints, per field, the slabs the pool gained.
Run by tests/test_accel.py, with and without ``FFM_PURE_PYTHON``."""

from __future__ import annotations

import threading

from ffm_runtime import Arena, _arena


def tampered(field: str) -> Arena:
    arena = Arena.of_confined()
    arena.allocate(8)  # it has a slab now

    def take_the_slab() -> None:
        object.__setattr__(arena, "_slab", None)  # its tuple is freed
        del [(1, 2, 3) for _ in range(5000)][:]  # ... and not kept as a tuple

    class Alive:
        def __bool__(self) -> bool:
            return True

        def __del__(self) -> None:
            take_the_slab()

    class Owner(int):
        def __del__(self) -> None:
            take_the_slab()

    if field == "_alive":
        arena._alive = Alive()  # type: ignore[assignment]
    else:
        arena._confinement[0] = Owner(threading.get_ident())  # type: ignore[index]
    return arena


for field in ("_alive", "owner"):
    arena = tampered(field)
    before = len(_arena._pool)
    arena.close()
    print(field, len(_arena._pool) - before, all(type(slab) is tuple for slab in _arena._pool))
