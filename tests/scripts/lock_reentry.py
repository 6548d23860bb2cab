"""At the first call made while this thread holds a lock of the runtime (``argv[2]``:
"module:expression"), links and calls again (``argv[1]`` "reenter") or forks, the child
linking and calling and then finishing what was interrupted ("fork").  Prints ok, hung,
failed or "never held".  Run by tests/test_fork.py, on every supported CPython."""

from __future__ import annotations

import faulthandler
import importlib
import os
import signal
import sys
import time
import traceback
import warnings
from types import FrameType
from typing import Any

import ffm_runtime as ffm
from ffm_runtime import ADDRESS, JAVA_INT, JAVA_LONG, Arena, FunctionDescriptor, Linker, MemorySegment
from ffm_runtime._access import enabled_while

faulthandler.dump_traceback_later(20, exit=True)  # a deadlock fails the run instead of hanging
MODE = sys.argv[1]
SPEC = sys.argv[2]
module, expression = SPEC.split(":")
LOCK = eval(expression, vars(importlib.import_module(module)))


def work() -> None:
    find = ffm.SymbolLookup.loader_lookup().find
    linker = Linker.native_linker()
    assert linker.downcall_handle(find("abs"), FunctionDescriptor.of(JAVA_INT, JAVA_INT))(-7) == 7
    ffm.load_library("m")
    assert ffm.SymbolLookup.loader_lookup().find("cos") is not None
    with enabled_while(("somepackage",)):
        pass
    labs = linker.downcall_handle(find("labs"), FunctionDescriptor.of(JAVA_LONG, JAVA_LONG))
    assert labs(-9) == 9
    qsort = linker.downcall_handle(
        find("qsort"), FunctionDescriptor.of_void(ADDRESS, JAVA_LONG, JAVA_LONG, ADDRESS)
    )
    with Arena.of_confined() as arena:  # an upcall stub: the pools' lock
        array = arena.allocate_from(JAVA_INT, [3, 1, 2])
        qsort(
            array, 3, 4, linker.upcall_stub(compare, FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS), arena)
        )
        assert [array.get_at_index(JAVA_INT, i) for i in range(3)] == [1, 2, 3]


def compare(a: MemorySegment, b: MemorySegment) -> int:
    x: int = a.reinterpret(4).get(JAVA_INT, 0)
    y: int = b.reinterpret(4).get(JAVA_INT, 0)
    return (x > y) - (x < y)


def held(lock: Any) -> bool:
    inner = lock._lock
    return bool(inner._is_owned()) if hasattr(inner, "_is_owned") else inner.locked()


outcomes: dict[str, str] = {}
child: list[str] = []


def act(spec: str) -> None:
    """What a signal handler or finalizer running here might do: link and call (MODE
    'reenter'), or fork, the child linking and calling, then finishing what was
    interrupted (MODE 'fork')."""
    if MODE == "reenter":
        work()
        outcomes[spec] = "ok"
        return
    sys.stdout.flush()
    with warnings.catch_warnings():
        # faulthandler's watchdog is a thread: 3.12+ warn about forking with threads
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:
        child.append(spec)
        work()
        return
    end = time.monotonic() + 30
    while True:
        finished, status = os.waitpid(pid, os.WNOHANG)
        if finished:
            outcomes[spec] = "ok" if os.waitstatus_to_exitcode(status) == 0 else "failed"
            return
        if time.monotonic() > end:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            outcomes[spec] = "hung"
            return
        time.sleep(0.02)


def hook(frame: FrameType, event: str, arg: object) -> None:
    """At the first call made while this thread holds the lock (a point where a signal
    handler or a finalizer can run)."""
    if event in ("call", "c_call") and held(LOCK):
        sys.setprofile(None)
        act(SPEC)


sys.setprofile(hook)
try:
    work()
    sys.setprofile(None)
except BaseException:
    sys.setprofile(None)
    traceback.print_exc()
    sys.stderr.flush()
    if child:
        os._exit(1)
    raise
if child:
    os._exit(0)
print(outcomes.get(SPEC, "never held"), flush=True)
