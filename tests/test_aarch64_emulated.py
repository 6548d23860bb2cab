"""AArch64 stubs executed, not just relocated: wheels cross-built on this machine with
``targets = ["aarch64-linux"]`` run in an aarch64 CPython under qemu-user, against C code
compiled by ``aarch64-linux-gnu-gcc`` and against the aarch64 libc.

The environment comes from ``tests/aarch64/setup.sh .aarch64`` (``make aarch64-env``, run
by ``make test``; it needs root for apt-get).  Where it could not be made, these tests are
skipped, unless ``FFM_REQUIRE_AARCH64`` is set (CI sets it): then they fail.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from support import build_wheel, compile_c, unpack_wheel
from test_conformance import SEED, build

sys.path.insert(0, str(Path(__file__).parent / "conformance"))
from generator import sample, signatures

ROOT = Path(__file__).resolve().parent.parent
PYTHON = Path(os.environ.get("FFM_AARCH64_PYTHON", ROOT / ".aarch64" / "bin" / "python3.11-aarch64"))
CC = "aarch64-linux-gnu-gcc"
SCRIPTS = ROOT / "tests" / "scripts"


@pytest.fixture(scope="module")
def emulator() -> Path:
    missing = [str(p) for p in (PYTHON,) if not p.exists()]
    missing += [CC] if shutil.which(CC) is None else []
    if missing:
        reason = (
            f"no AArch64 emulation environment ({', '.join(missing)} missing): run 'make aarch64-env' as root"
        )
        if os.environ.get("FFM_REQUIRE_AARCH64"):
            pytest.fail(reason)
        pytest.skip(reason)
    return PYTHON


def run_emulated(python: Path, *args: str, path: list[Path]) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(map(str, [*path, ROOT])),
        "FFM_ENABLE_NATIVE_ACCESS": "ALL-UNNAMED",
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    return subprocess.run(
        [str(python), *args], capture_output=True, text=True, env=env, check=False, timeout=900
    )


def test_the_interpreter_is_aarch64_and_accelerated(emulator: Path) -> None:
    """The aarch64 accelerator object (built into ffm_runtime) loads and reads, writes and
    refuses like the Python methods."""
    result = run_emulated(emulator, str(SCRIPTS / "aarch64_accelerators.py"), path=[])
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "aarch64 accelerated"


def test_conformance_under_emulation(emulator: Path, tmp_path: Path) -> None:
    """A sample of the generated signatures (HFAs, <=16-byte composites, large structs by
    reference, sret, stack spilling) echoes its arguments through AArch64 stubs, which are
    in several objects (parts)."""
    sigs = sample(signatures(), 300) + sample(signatures(stack=True), 60)
    library = build(tmp_path, sigs, targets=("aarch64-linux",), cc=CC)
    manifest = json.loads((tmp_path / "site" / "ffm_conformance" / "_ffm" / "manifest.json").read_text())
    assert len(manifest["objects"]) > 3
    assert {o["target"] for o in manifest["objects"]} == {"aarch64-linux"}
    names = tmp_path / "names.json"
    names.write_text(json.dumps([s.name for s in sigs]))
    result = run_emulated(
        emulator,
        str(ROOT / "tests" / "conformance" / "run.py"),
        str(library),
        str(names),
        str(SEED),
        path=[tmp_path / "site"],
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == f"checked {len(sigs)} on aarch64"


def test_example_project_under_emulation(emulator: Path, tmp_path: Path) -> None:
    """The example project's wheel, cross-built for aarch64: libm, div (struct result),
    snprintf (variadic doubles), strtol (errno capture) against the aarch64 libc."""
    project = tmp_path / "example_project"
    shutil.copytree(
        ROOT / "example_project", project, ignore=shutil.ignore_patterns("__pycache__", "build", "dist")
    )
    config = project / "pyproject.toml"
    config.write_text(config.read_text() + 'targets = ["aarch64-linux"]\n')
    build_wheel(project, tmp_path / "dist")
    (wheel,) = (tmp_path / "dist").glob("*.whl")
    assert "manylinux_2_17_aarch64" in wheel.name and "x86_64" not in wheel.name
    unpack_wheel(wheel, tmp_path / "site")
    result = run_emulated(emulator, "-m", "example_project", path=[tmp_path / "site"])
    assert result.returncode == 0, result.stdout + result.stderr
    rows = [line for line in result.stdout.splitlines() if line.rstrip().endswith(("yes", "NO"))]
    assert len(rows) >= 9, result.stdout
    assert all(row.rstrip().endswith("yes") for row in rows), result.stdout


AT_LIMIT_FEATURE = """
from ffm_runtime import JAVA_INT, JAVA_LONG, FunctionDescriptor, MemoryLayout
from ffm_runtime._descriptor import MAX_BY_VALUE_BYTE_SIZE
from hatch_ffm import RuntimeForeignAccess

AT_LIMIT = MemoryLayout.struct_layout(
    MemoryLayout.sequence_layout(MAX_BY_VALUE_BYTE_SIZE // 8, JAVA_LONG))
AT_LIMIT_ECHO = FunctionDescriptor.of(AT_LIMIT, AT_LIMIT, JAVA_INT)

class AtLimit:
    def during_setup(self, access):
        RuntimeForeignAccess.register_for_downcall(AT_LIMIT_ECHO)
"""


def test_struct_at_the_by_value_limit_under_emulation(emulator: Path, tmp_path: Path) -> None:
    """A struct of MAX_BY_VALUE_BYTE_SIZE bytes (passed by reference to a copy the stub makes
    on its stack, returned through x8) goes both ways, also on a 128 KiB thread stack."""
    # not native_lib: the same C source, cross-compiled for the emulated aarch64 interpreter
    library = compile_c(ROOT / "tests" / "native" / "ffm_test_lib.c", tmp_path / "libffm_test.so", cc=CC)
    project = tmp_path / "ffm_at_limit"
    (project / "ffm_at_limit").mkdir(parents=True)
    (project / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["hatchling"]\nbuild-backend = "hatchling.build"\n'
        '[project]\nname = "ffm-at-limit"\nversion = "1.0"\ndependencies = ["hatch-ffm"]\n'
        "[tool.hatch.build.targets.wheel.hooks.ffm]\n"
        'features = ["ffm_at_limit.features:AtLimit"]\ntargets = ["aarch64-linux"]\n'
    )
    (project / "ffm_at_limit" / "__init__.py").write_text("")
    (project / "ffm_at_limit" / "features.py").write_text(AT_LIMIT_FEATURE)
    build_wheel(project, tmp_path / "dist")
    (wheel,) = (tmp_path / "dist").glob("*.whl")
    unpack_wheel(wheel, tmp_path / "site")
    result = run_emulated(
        emulator, str(SCRIPTS / "aarch64_at_limit.py"), str(library), path=[tmp_path / "site"]
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == "at the limit: ok"


SHARED_FEATURE = """
from ffm_runtime import (
    ADDRESS, JAVA_BOOLEAN, JAVA_BYTE, JAVA_CHAR, JAVA_DOUBLE, JAVA_FLOAT, JAVA_INT, JAVA_LONG,
    JAVA_SHORT, FunctionDescriptor, Linker,
)
from hatch_ffm import RuntimeForeignAccess

U8, U16, U32, U64 = (layout.unsigned() for layout in (JAVA_BYTE, JAVA_SHORT, JAVA_INT, JAVA_LONG))

class Shared:
    def during_setup(self, access):
        for descriptor in (
            FunctionDescriptor.of(JAVA_LONG, JAVA_INT, ADDRESS, JAVA_LONG),
            FunctionDescriptor.of_void(ADDRESS, JAVA_INT),
            FunctionDescriptor.of(JAVA_LONG, ADDRESS),
            *[FunctionDescriptor.of(layout, layout) for layout in (U8, U16, U32, U64)],
            FunctionDescriptor.of(U8, U32),
            FunctionDescriptor.of(U16, U32),
            FunctionDescriptor.of(U64, U8, U16, U32, U64),
        ):
            RuntimeForeignAccess.register_for_downcall(descriptor)
        # upcalls (tests/scripts/aarch64_upcalls.py): the C functions, then their callbacks
        spill = FunctionDescriptor.of(JAVA_DOUBLE, *[JAVA_LONG] * 10, *[JAVA_DOUBLE] * 10)
        mix = (JAVA_BOOLEAN, JAVA_BYTE, JAVA_CHAR, JAVA_SHORT, JAVA_INT, JAVA_LONG, JAVA_FLOAT,
               JAVA_DOUBLE, ADDRESS)
        for descriptor in (
            FunctionDescriptor.of_void(ADDRESS, JAVA_LONG, JAVA_LONG, ADDRESS),
            FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT, JAVA_INT),
            FunctionDescriptor.of(JAVA_DOUBLE, ADDRESS, ADDRESS),
            FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT),
            FunctionDescriptor.of(JAVA_DOUBLE, ADDRESS),
        ):
            RuntimeForeignAccess.register_for_downcall(descriptor)
        RuntimeForeignAccess.register_for_downcall(
            FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT, JAVA_INT), Linker.Option.critical()
        )
        for descriptor in (
            FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS),
            FunctionDescriptor.of(JAVA_INT, JAVA_INT, JAVA_INT),
            FunctionDescriptor.of(JAVA_DOUBLE, *mix),
            FunctionDescriptor.of(JAVA_SHORT, JAVA_INT),
            spill,
        ):
            RuntimeForeignAccess.register_for_upcall(descriptor)
        # structs and unions by value, unsigned values, bsearch (struct_upcalls.py, copied)
        from .struct_upcalls import STRUCT_UPCALLS
        for downcall, upcalls in STRUCT_UPCALLS.values():
            RuntimeForeignAccess.register_for_downcall(downcall)
            for upcall in upcalls:
                RuntimeForeignAccess.register_for_upcall(upcall)
"""


@pytest.fixture(scope="module")
def shared_site(emulator: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(the C test library cross-compiled, a site with a cross-built wheel of the shapes the
    shared-arena and unsigned-value scripts link)."""
    tmp_path = tmp_path_factory.mktemp("aarch64-shared")
    library = compile_c(ROOT / "tests" / "native" / "ffm_test_lib.c", tmp_path / "libffm_test.so", cc=CC)
    project = tmp_path / "ffm_shared"
    (project / "ffm_shared").mkdir(parents=True)
    (project / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["hatchling"]\nbuild-backend = "hatchling.build"\n'
        '[project]\nname = "ffm-shared"\nversion = "1.0"\ndependencies = ["hatch-ffm"]\n'
        "[tool.hatch.build.targets.wheel.hooks.ffm]\n"
        'features = ["ffm_shared.features:Shared"]\ntargets = ["aarch64-linux"]\n'
    )
    (project / "ffm_shared" / "__init__.py").write_text("")
    (project / "ffm_shared" / "features.py").write_text(SHARED_FEATURE)
    struct_upcalls = ROOT / "tests" / "fixtures" / "ffm_testpkg" / "ffm_testpkg" / "struct_upcalls.py"
    shutil.copy(struct_upcalls, project / "ffm_shared" / "struct_upcalls.py")
    build_wheel(project, tmp_path / "dist")
    (wheel,) = (tmp_path / "dist").glob("*.whl")
    unpack_wheel(wheel, tmp_path / "site")
    return library, tmp_path / "site"


def test_shared_arena_races_under_emulation(emulator: Path, shared_site: tuple[Path, Path]) -> None:
    """tests/scripts/shared_arena_races.py with aarch64 stubs: blocking downcalls and memory
    access racing close() of a shared arena (fewer racing rounds: emulation is slow)."""
    library, site = shared_site
    result = run_emulated(emulator, str(SCRIPTS / "shared_arena_races.py"), str(library), "3", path=[site])
    assert result.returncode == 0 and "checks passed" in result.stdout, result.stdout + result.stderr


def test_unsigned_values_under_emulation(emulator: Path, shared_site: tuple[Path, Path]) -> None:
    """Unsigned arguments and results with aarch64 stubs, against aarch64 gcc's code."""
    library, site = shared_site
    result = run_emulated(emulator, str(SCRIPTS / "aarch64_unsigned.py"), str(library), path=[site])
    assert result.returncode == 0 and "unsigned: ok" in result.stdout, result.stdout + result.stderr


def test_upcalls_under_emulation(emulator: Path, shared_site: tuple[Path, Path]) -> None:
    """Upcalls with aarch64 trampolines and entries: libc's qsort and bsearch with a Python
    comparator, every value layout, stack arguments, narrow results, a thread Python never
    saw, an exception and a call through a freed slot, structs and unions by value both ways
    (HFAs in SIMD registers, larger structs by reference and through x8, structs on the
    stack) and unsigned values, against aarch64 gcc's code."""
    library, site = shared_site
    result = run_emulated(emulator, str(SCRIPTS / "aarch64_upcalls.py"), str(library), path=[site])
    assert result.returncode == 0 and "upcalls: ok" in result.stdout, result.stdout + result.stderr


@pytest.mark.parametrize("script", ["reinterpret_check_reentered.py", "close_finalizes_a_field.py"])
def test_native_paths_hold_what_python_code_may_free(
    emulator: Path, script: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Python code run in the middle of a native reinterpret check or close (see the scripts)
    frees nothing the native code still reads: under PYTHONMALLOC=debug a read of freed memory
    kills the process."""
    monkeypatch.setenv("PYTHONMALLOC", "debug")
    result = run_emulated(emulator, str(SCRIPTS / script), path=[])
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() in (
        ["reinterpret", "32", "compared"],
        ["_alive", "0", "True", "owner", "0", "True"],
    )


@pytest.mark.parametrize("pure_python", ["", "1"], ids=["native", "python"])
def test_get_string_before_an_unmapped_page_under_emulation(
    emulator: Path, pure_python: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The native get_string (the aarch64 libc's memchr) and the Python one stop at the
    terminator just before a PROT_NONE page, through a segment that claims far more."""
    monkeypatch.setenv("FFM_PURE_PYTHON", pure_python)
    result = run_emulated(emulator, str(SCRIPTS / "string_at_page_end.py"), path=[])
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [
        *("utf-8", "ok", "latin-1", "ok", "utf-16le", "ok", "utf-32le", "ok"),
        *("two-pages", "ok"),
    ]
