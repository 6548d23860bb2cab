"""Forks while another thread holds a lock of the runtime (``argv``: "module:expression" of
each lock), or is inside the loader ("loading") or reading a manifest ("scanning"); the child
links, loads and calls on its own.  Prints each scenario and its outcome: ok, hung (killed
after a deadline) or failed.  Run by tests/test_fork.py, on every supported CPython."""

from __future__ import annotations

import importlib
import os
import signal
import sys
import threading
import time
import traceback
import warnings
from collections.abc import Callable
from typing import Any

import ffm_runtime as ffm
from ffm_runtime import (
    ADDRESS,
    JAVA_INT,
    JAVA_LONG,
    Arena,
    FunctionDescriptor,
    Linker,
    MemorySegment,
    _registry,
)
from ffm_runtime._access import enabled_while

DEADLINE = 30.0  # seconds a child may take before it counts as hung


def link_abs() -> Any:
    return Linker.native_linker().downcall_handle(
        ffm.SymbolLookup.loader_lookup().find("abs"), FunctionDescriptor.of(JAVA_INT, JAVA_INT)
    )


def work() -> None:
    """The child: every path that takes a lock of the runtime."""
    assert link_abs()(-7) == 7  # registry (and its load), handles, native
    ffm.load_library("m")  # lookup
    assert ffm.SymbolLookup.loader_lookup().find("cos") is not None
    with enabled_while(("somepackage",)):  # access
        pass
    labs = Linker.native_linker().downcall_handle(  # another shape: the registry again
        ffm.SymbolLookup.loader_lookup().find("labs"), FunctionDescriptor.of(JAVA_LONG, JAVA_LONG)
    )
    assert labs(-9) == 9
    linker = Linker.native_linker()
    qsort = linker.downcall_handle(
        ffm.SymbolLookup.loader_lookup().find("qsort"),
        FunctionDescriptor.of_void(ADDRESS, JAVA_LONG, JAVA_LONG, ADDRESS),
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


def fork_and_wait() -> str:
    """Fork; the child runs work(); returns 'ok', 'hung' or 'failed'."""
    sys.stdout.flush()
    sys.stderr.flush()
    with warnings.catch_warnings():
        # CPython 3.12+ warns that forking a process with threads "may lead to deadlocks in
        # the child": the very situation under test (the only warning os.fork() issues; not
        # matched by its words, which may change).
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:
        code = 1
        try:
            work()
            code = 0
        except BaseException:
            traceback.print_exc()
            sys.stderr.flush()
        finally:
            os._exit(code)
    end = time.monotonic() + DEADLINE
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return "ok" if os.waitstatus_to_exitcode(status) == 0 else "failed"
        if time.monotonic() > end:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return "hung"
        time.sleep(0.02)


def lock_held(spec: str) -> str:
    """Another thread holds the lock while this thread forks."""
    module, expression = spec.split(":")
    lock = eval(expression, vars(importlib.import_module(module)))
    taken, release = threading.Event(), threading.Event()

    def hold() -> None:
        with lock:
            taken.set()
            release.wait()

    holder = threading.Thread(target=hold)
    holder.start()
    if not taken.wait(DEADLINE):
        raise SystemExit("the other thread never took the lock")
    try:
        return fork_and_wait()
    finally:
        release.set()
        holder.join()


def loading() -> str:
    """Another thread is inside the loader (the registry's lock held) while this one forks:
    the child must not see the half-loaded object and must load it itself."""
    # the registry's own name for the loader (imported there), replaced below on purpose
    real_load = _registry.load_image  # type: ignore[attr-defined]
    inside, release = threading.Event(), threading.Event()
    blocked: list[bool] = []

    def load_image(*args: Any, **kwargs: Any) -> Any:
        if not blocked:  # the first load only: the parent's linking thread
            blocked.append(True)
            inside.set()
            release.wait()
        return real_load(*args, **kwargs)

    _registry.load_image = load_image  # type: ignore[attr-defined]
    results: list[int] = []
    linker = threading.Thread(target=lambda: results.append(link_abs()(-5)))
    linker.start()
    if not inside.wait(DEADLINE):
        raise SystemExit("the other thread never got there (already done in this process?)")
    try:
        outcome = fork_and_wait()
    finally:
        release.set()
        linker.join()
    assert results == [5], results  # the parent's thread finished its load
    return outcome


def scanning() -> str:
    """Another thread is reading a manifest (the registry's lock held) while this one forks:
    the child must not take the manifest for read and must read it itself."""
    from ffm_runtime._manifest import Manifest

    # the classmethod's function, replaced below on purpose
    real_parse: Callable[..., Manifest] = Manifest.from_json.__func__  # type: ignore[attr-defined]
    inside, release = threading.Event(), threading.Event()
    blocked: list[bool] = []

    def from_json(cls: type[Manifest], *args: Any, **kwargs: Any) -> Manifest:
        if not blocked:
            blocked.append(True)
            inside.set()
            release.wait()
        return real_parse(cls, *args, **kwargs)

    Manifest.from_json = classmethod(from_json)  # type: ignore[method-assign,assignment]
    linker = threading.Thread(target=link_abs)
    linker.start()
    if not inside.wait(DEADLINE):
        raise SystemExit("the other thread never got there (already done in this process?)")
    try:
        return fork_and_wait()
    finally:
        release.set()
        linker.join()


SCENARIOS: dict[str, Callable[[], str]] = {"loading": loading, "scanning": scanning}
for scenario in sys.argv[1:]:
    outcome = SCENARIOS[scenario]() if scenario in SCENARIOS else lock_held(scenario)
    print(scenario, outcome, flush=True)
