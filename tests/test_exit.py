"""Interpreter exit: native code reads nothing the exit frees, and a reachable arena's memory
is never freed.

The scripts run with ``PYTHONMALLOC=debug``: memory freed too early is overwritten at once,
so a read of it crashes (or shows) on every run and every CPython, not only sometimes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

SCRIPTS = Path(__file__).parent / "scripts"
ROOT = Path(__file__).parent.parent


def run_script(name: str, site: Path | None = None) -> subprocess.CompletedProcess[str]:
    path = [str(ROOT)] + ([str(site)] if site is not None else [])
    return subprocess.run(
        [sys.executable, str(SCRIPTS / name)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
        env={
            **os.environ,
            "PYTHONMALLOC": "debug",
            "PYTHONPATH": os.pathsep.join(path),
            "FFM_ENABLE_NATIVE_ACCESS": "__main__",
        },
    )


def test_a_late_finalizer_uses_accelerators_and_handles(stub_site: Path) -> None:
    """A finalizer that runs after the runtime's modules were cleared (it hangs off
    ``sys.excepthook``) calls accelerated methods and a downcall handle: the cells, offsets
    and method definitions they read live as long as the process."""
    result = run_script("late_finalizer.py", stub_site)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.splitlines() == ["late finalizer: 7 5 True"], result.stderr[-2000:]


def test_an_automatic_arena_outlives_the_exit_handlers() -> None:
    """An ``atexit`` handler that runs after the runtime's own exit work still finds a
    reachable automatic arena alive, with its bytes."""
    result = run_script("atexit_auto_arena.py")
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.splitlines() == ["atexit: alive=True intact=True True"], result.stderr[-2000:]
