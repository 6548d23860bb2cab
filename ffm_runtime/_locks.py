"""The runtime's locks, made new in the child after ``os.fork()``.

A lock that another thread holds when a thread forks stays held forever in the
child, where that thread does not exist: the child's first use of the lock would
wait for ever.  Every lock of the runtime is a :class:`ForkSafeLock` made here;
in the child, right after a fork, each one that another thread held is replaced
by a new, unlocked lock (``os.register_at_fork(after_in_child=...)``).  A lock
the forking thread itself holds (it forked in a signal handler or a finalizer
that ran inside the runtime) stays as it is: that thread goes on in the child and
releases it when it leaves the interrupted block.

Every lock is re-entrant, for the same reason: a signal handler or a finalizer
runs in the thread it interrupts, possibly while that thread holds a lock of the
runtime, and may itself link a handle or load a library.  So every block that
holds a lock must also survive being entered again from within itself, which the
rule below gives.

That is only sound if what a lock guards is never seen half-changed.  The rule
for every module with a lock: change state so that a fork at any point leaves
either the old state or the new one, never a mixture; in practice, build new
state aside and publish it with one assignment (a fork happens while the forking
thread holds the GIL, so no other thread is inside an assignment).  A stub object
that another thread was loading when the process forked is therefore not known to
the child; the child loads it again itself when it needs it.
"""

from __future__ import annotations

import os
from _thread import RLock
from _weakref import ref

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = ["ForkSafeLock", "all_locks"]


class ForkSafeLock:
    """A ``threading.RLock`` that a forked child gets back unlocked, unless the forking
    thread held it."""

    __slots__ = ("__weakref__", "_lock")

    def __init__(self) -> None:
        self._lock: Any = RLock()
        key = id(self)
        _locks[key] = ref(self, lambda reference: _forget(key, reference))

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        return bool(self._lock.acquire(blocking, timeout))

    def release(self) -> None:
        self._lock.release()

    def __enter__(self) -> bool:
        return bool(self._lock.acquire())

    def __exit__(self, *exc_info: object) -> None:
        self._lock.release()

    def __repr__(self) -> str:
        return f"<ForkSafeLock {self._lock!r}>"

    def _reset(self) -> None:
        """In the child of a fork: a new lock, unless the thread that forked holds this one
        (it is the child's only thread, and it will release the lock itself)."""
        if not self._lock._is_owned():
            self._lock = RLock()


#: every lock made, so that the child of a fork can replace them
#: (by id, to a weak reference: the weakref module is not imported for a WeakSet)
_locks: dict[int, ref[ForkSafeLock]] = {}


def _forget(key: int, reference: ref[ForkSafeLock]) -> None:
    """A lock is gone (unless a new lock took its id since)."""
    if _locks.get(key) is reference:
        del _locks[key]


def all_locks() -> list[ForkSafeLock]:
    """Every lock made and not yet gone."""
    return [lock for lock in (reference() for reference in list(_locks.values())) if lock is not None]


def _after_fork_in_child() -> None:
    """Runs in the child only, while it has a single thread."""
    for lock in all_locks():
        lock._reset()


if hasattr(os, "register_at_fork"):  # POSIX; elsewhere there is no fork to survive
    os.register_at_fork(after_in_child=_after_fork_in_child)
