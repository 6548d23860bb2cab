"""Start-up: ``import ffm_runtime`` loads nothing native and imports no more of the
standard library than its API needs; what it leaves (the bootstrap's cells and offsets, the
accelerators, the manifests) happens before first use.  Each check runs in a fresh
interpreter (tests/scripts/startup_checks.py); no timings are asserted (see
tests/scripts/startup_figures.py for those)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).parent / "scripts"


@pytest.mark.parametrize("order", ["handle-first", "accelerators-first", "replaced"])
def test_import_loads_nothing_and_first_use_sets_everything_up(stub_site: Path, order: str) -> None:
    result = subprocess.run(
        [sys.executable, str(SCRIPTS / "startup_checks.py"), str(stub_site), order],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "FFM_ENABLE_NATIVE_ACCESS": "__main__"},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "startup checks passed"


def test_targets_name_the_elf_machines_of_the_loader() -> None:
    from ffm_runtime import _elf
    from ffm_runtime._targets import TARGETS, CallingConvention

    assert TARGETS["x86_64-linux"].elf_machine == _elf.EM_X86_64
    assert TARGETS["aarch64-linux"].elf_machine == _elf.EM_AARCH64
    assert TARGETS["x86_64-linux"].calling_convention is CallingConvention.SYSV
    assert TARGETS["aarch64-linux"].calling_convention is CallingConvention.AAPCS64


def test_builtin_text_signatures_match_inspect() -> None:
    """The accelerators' signatures, made from code objects, read as inspect reads the
    Python methods'."""
    import inspect

    from ffm_runtime import _accel, _contract

    for (class_name, name), original in zip(_contract.ACCELERATORS, _accel._originals, strict=True):
        static = (class_name, name) in _contract.STATIC_ACCELERATORS
        python = original.__func__ if static else original
        parameters = list(inspect.signature(python).parameters.values())[0 if static else 1 :]
        plain = [str(p.replace(annotation=inspect.Parameter.empty)) for p in parameters]
        expected = f"{name}({', '.join(plain if static else ['$self', *plain])})\n--\n\n"
        assert _accel._text_signature(name, python, static) == expected


@pytest.mark.parametrize(("first", "pure"), [("arena", ""), ("handle", "1"), ("handle", "")])
def test_upcalls_open_and_close_arenas_with_the_runtimes_methods(
    stub_site: Path, native_lib: Path, first: str, pure: str
) -> None:
    """``Arena.close`` replaced (``mock.patch``) while the bootstrap or the accelerators set
    themselves up, then put back: struct upcalls do not keep calling the replacement."""
    result = subprocess.run(
        [sys.executable, str(SCRIPTS / "arena_cells.py"), str(stub_site), str(native_lib), first],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "FFM_ENABLE_NATIVE_ACCESS": "ALL-UNNAMED", "FFM_PURE_PYTHON": pure},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "arena cells checked"
