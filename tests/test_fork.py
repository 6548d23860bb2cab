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

SCRIPTS = Path(__file__).parent / "scripts"

#: every lock of the runtime, as "module:expression"
LOCKS = [
    "ffm_runtime._registry:registry._lock",
    "ffm_runtime._handles:_lock",
    "ffm_runtime._bootstrap:lock",
    "ffm_runtime._lookup:_lock",
    "ffm_runtime._access:_lock",
    "ffm_runtime._execmem:_libc_lock",
    "ffm_runtime._upcalls:_lock",
]


def run_scenarios(python: str, stub_site: Path, *scenarios: str) -> tuple[dict[str, str], str]:
    """Each scenario's outcome, and what the children printed (their tracebacks)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FFM_")}
    env.update(PYTHONPATH=f"{ROOT}{os.pathsep}{stub_site}", FFM_ENABLE_NATIVE_ACCESS="__main__")
    result = subprocess.run(
        [python, "-W", "error", str(SCRIPTS / "fork_scenarios.py"), *scenarios],
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
        "print(sorted(map(id, _locks.all_locks())) == sorted(map(id, named)))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert result.stdout.strip() == "True", result.stdout + result.stderr


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
        [python, "-W", "error", str(SCRIPTS / "lock_reentry.py"), mode, lock],
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
