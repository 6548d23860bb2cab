"""A restricted method called with no Python caller: from a thread started from C, then from
an ``atexit`` callback.  Prints where and what each call raised (through
``sys.unraisablehook``).  Run by tests/test_native_access.py."""

from __future__ import annotations

import _thread
import atexit
import sys
import threading

import ffm_runtime as ffm

where, done = "thread", threading.Event()


def report(unraisable: sys.UnraisableHookArgs) -> None:
    print(where, type(unraisable.exc_value).__name__, unraisable.exc_value, flush=True)
    done.set()


sys.unraisablehook = report
# reinterpret(-1) passes the native-access check, if it passes, and then raises ValueError
_thread.start_new_thread(ffm.MemorySegment.NULL.reinterpret, (-1,))
done.wait()
where = "atexit"
atexit.register(ffm.MemorySegment.NULL.reinterpret, -1)
