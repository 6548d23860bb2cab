"""A thread whose target is a restricted method, so that its caller is the standard library's
threading.  Prints what the call raised.  Run by tests/test_native_access.py."""

from __future__ import annotations

import threading

import ffm_runtime as ffm

errors: list[BaseException | None] = []
thread = threading.Thread(target=ffm.MemorySegment.NULL.reinterpret, args=(-1,))
threading.excepthook = lambda hook: errors.append(hook.exc_value)
thread.start()
thread.join()
print(type(errors[0]).__name__, errors[0])
