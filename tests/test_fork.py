"""``os.fork()`` while another thread holds a lock of the runtime, or is loading a stub object
or reading a manifest, with the registry's lock held: the child links, loads and calls on its
own.

The order is forced, not hoped for: the other thread takes the lock (or enters the loader)
and waits on an event that is set only after the fork. A child that hangs is killed after a
deadline and reported as ``hung``."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from support import ROOT, SUPPORTED_PYTHONS, require_python

#: every lock of the runtime, as "module:expression"
LOCKS = [
    "ffm_runtime._registry:registry._lock",
    "ffm_runtime._handles:_lock",
    "ffm_runtime._bootstrap:_lock",
    "ffm_runtime._lookup:_lock",
    "ffm_runtime._access:_lock",
    "ffm_runtime._execmem:_libc_lock",
]

SCRIPT = r'''
import importlib, os, signal, sys, threading, time, traceback, warnings
import ffm_runtime as ffm
from ffm_runtime import JAVA_INT, JAVA_LONG, FunctionDescriptor, Linker
from ffm_runtime import _registry
from ffm_runtime._access import enabled_while

DEADLINE = 30.0  # seconds a child may take before it counts as hung

def link_abs():
    return Linker.native_linker().downcall_handle(
        ffm.SymbolLookup.loader_lookup().find("abs"), FunctionDescriptor.of(JAVA_INT, JAVA_INT))

def work():
    """The child: every path that takes a lock of the runtime."""
    assert link_abs()(-7) == 7                  # registry (and its load), handles, native
    ffm.load_library("m")                       # lookup
    assert ffm.SymbolLookup.loader_lookup().find("cos") is not None
    with enabled_while(("somepackage",)):       # access
        pass
    labs = Linker.native_linker().downcall_handle(  # another shape: the registry again
        ffm.SymbolLookup.loader_lookup().find("labs"), FunctionDescriptor.of(JAVA_LONG, JAVA_LONG))
    assert labs(-9) == 9

def fork_and_wait():
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

def lock_held(spec):
    """Another thread holds the lock while this thread forks."""
    module, expression = spec.split(":")
    lock = eval(expression, vars(importlib.import_module(module)))
    taken, release = threading.Event(), threading.Event()

    def hold():
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

def loading():
    """Another thread is inside the loader (the registry's lock held) while this one forks:
    the child must not see the half-loaded object and must load it itself."""
    real_load = _registry.load_object
    inside, release = threading.Event(), threading.Event()
    blocked = []

    def load_object(*args, **kwargs):
        if not blocked:  # the first load only: the parent's linking thread
            blocked.append(True)
            inside.set()
            release.wait()
        return real_load(*args, **kwargs)

    _registry.load_object = load_object
    results = []
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

def scanning():
    """Another thread is reading a manifest (the registry's lock held) while this one forks:
    the child must not take the manifest for read and must read it itself."""
    from ffm_runtime._manifest import Manifest
    real_parse = Manifest.from_json.__func__
    inside, release = threading.Event(), threading.Event()
    blocked = []

    def from_json(cls, *args, **kwargs):
        if not blocked:
            blocked.append(True)
            inside.set()
            release.wait()
        return real_parse(cls, *args, **kwargs)

    Manifest.from_json = classmethod(from_json)
    linker = threading.Thread(target=link_abs)
    linker.start()
    if not inside.wait(DEADLINE):
        raise SystemExit("the other thread never got there (already done in this process?)")
    try:
        return fork_and_wait()
    finally:
        release.set()
        linker.join()

SCENARIOS = {"loading": loading, "scanning": scanning}
for scenario in sys.argv[1:]:
    outcome = SCENARIOS[scenario]() if scenario in SCENARIOS else lock_held(scenario)
    print(scenario, outcome, flush=True)
'''


def run_scenarios(python: str, stub_site: Path, *scenarios: str) -> tuple[dict[str, str], str]:
    """Each scenario's outcome, and what the children printed (their tracebacks)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FFM_")}
    env.update(PYTHONPATH=f"{ROOT}{os.pathsep}{stub_site}", FFM_ENABLE_NATIVE_ACCESS="__main__")
    result = subprocess.run(
        [python, "-W", "error", "-c", SCRIPT, *scenarios],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    outcomes = dict(line.split(" ", 1) for line in result.stdout.splitlines())
    assert list(outcomes) == list(scenarios), result.stdout + result.stderr
    return outcomes, result.stderr


@pytest.mark.parametrize("scenario", [*LOCKS, "loading", "scanning"])
def test_child_of_a_fork_links_on_its_own(stub_site: Path, scenario: str) -> None:
    outcomes, children = run_scenarios(sys.executable, stub_site, scenario)
    assert outcomes[scenario] == "ok", (
        f"the child of a fork {outcomes[scenario]} while {scenario} was busy\n{children}"
    )


RUNNING = f"{sys.version_info.major}.{sys.version_info.minor}"


@pytest.mark.parametrize("version", [v for v in SUPPORTED_PYTHONS if v != RUNNING])
def test_every_interpreter(stub_site: Path, version: str) -> None:
    """The same on the other CPythons (3.12 warns about forking with threads, 3.13 more)."""
    python = str(require_python(version))
    # a process reads its manifests and loads an object once: one process for each of those
    for scenarios in (LOCKS, ["loading"], ["scanning"]):
        outcomes, children = run_scenarios(python, stub_site, *scenarios)
        assert set(outcomes.values()) == {"ok"}, f"{outcomes}\n{children}"


def test_every_lock_of_the_runtime_is_fork_safe() -> None:
    """No module makes a lock of its own: all come from ffm_runtime._locks, which the child of
    a fork replaces; and the list above names every one the runtime makes at import."""
    made_here = re.compile(
        r"threading\.(R?Lock|Condition|Semaphore|BoundedSemaphore)\(|"
        r"_thread\.allocate_lock\("
    )
    offenders = [
        str(path.relative_to(ROOT))
        for package in ("ffm_runtime", "hatch_ffm")
        for path in sorted((ROOT / package).glob("*.py"))
        if path.name != "_locks.py" and made_here.search(path.read_text())
    ]
    assert offenders == []
    code = (
        "import importlib, ffm_runtime; from ffm_runtime import _locks\n"
        f"named = [eval(e, vars(importlib.import_module(m))) for m, e in "
        f"(s.split(':') for s in {LOCKS!r})]\n"
        "print(sorted(map(id, _locks._locks)) == sorted(map(id, named)))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert result.stdout.strip() == "True", result.stdout + result.stderr


SAME_THREAD = r'''
import os, signal, sys, time, traceback, warnings
import faulthandler
import importlib
import ffm_runtime as ffm
from ffm_runtime import JAVA_INT, JAVA_LONG, FunctionDescriptor, Linker
from ffm_runtime._access import enabled_while

faulthandler.dump_traceback_later(20, exit=True)  # a deadlock fails the run instead of hanging
MODE = sys.argv[1]
SPEC = sys.argv[2]
module, expression = SPEC.split(":")
LOCK = eval(expression, vars(importlib.import_module(module)))

def work():
    find = ffm.SymbolLookup.loader_lookup().find
    linker = Linker.native_linker()
    assert linker.downcall_handle(find("abs"), FunctionDescriptor.of(JAVA_INT, JAVA_INT))(-7) == 7
    ffm.load_library("m")
    assert ffm.SymbolLookup.loader_lookup().find("cos") is not None
    with enabled_while(("somepackage",)):
        pass
    labs = linker.downcall_handle(find("labs"), FunctionDescriptor.of(JAVA_LONG, JAVA_LONG))
    assert labs(-9) == 9

def held(lock):
    inner = lock._lock
    return inner._is_owned() if hasattr(inner, "_is_owned") else inner.locked()

outcomes, child = {}, []

def act(spec):
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

def hook(frame, event, arg):
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
'''


@pytest.mark.parametrize("mode", ["reenter", "fork"])
@pytest.mark.parametrize("lock", LOCKS)
def test_the_thread_holding_a_lock_links_again(stub_site: Path, lock: str, mode: str) -> None:
    """A signal handler or finalizer that runs while its own thread holds a lock of the
    runtime can link and call (mode ``reenter``) or fork (mode ``fork``): the lock is
    re-entrant, and the child of such a fork keeps the lock its thread holds, so that
    finishing the interrupted work releases what it took."""
    assert run_same_thread(sys.executable, stub_site, mode, lock) == "ok"


def run_same_thread(python: str, stub_site: Path, mode: str, lock: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FFM_")}
    env.update(PYTHONPATH=f"{ROOT}{os.pathsep}{stub_site}", FFM_ENABLE_NATIVE_ACCESS="__main__")
    result = subprocess.run(
        [python, "-W", "error", "-c", SAME_THREAD, mode, lock],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout.strip() + result.stderr


@pytest.mark.parametrize("version", [v for v in SUPPORTED_PYTHONS if v != RUNNING])
def test_the_thread_holding_a_lock_links_again_on_every_interpreter(stub_site: Path, version: str) -> None:
    python = str(require_python(version))
    outcomes = {
        (lock, mode): run_same_thread(python, stub_site, mode, lock)
        for lock in LOCKS
        for mode in ("reenter", "fork")
    }
    assert set(outcomes.values()) == {"ok"}, outcomes
