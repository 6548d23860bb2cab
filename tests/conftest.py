"""Shared fixtures: the C test library, and the test package's wheel built by the real hook."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

TESTS = Path(__file__).parent
ROOT = TESTS.parent

# The test modules are "unnamed" units (no wheel of theirs enables them), like scripts:
# enable them the way a user enables a script. Tests of the policy itself run subprocesses
# with an environment of their own.
os.environ["FFM_ENABLE_NATIVE_ACCESS"] = "ALL-UNNAMED"


def compile_c(source: Path, output: Path, *flags: str, cc: str | None = None) -> Path:
    """Compile ``source`` into a shared library with ``cc`` (default: the system C compiler)."""
    cc = cc or os.environ.get("CC", "cc")
    subprocess.run([cc, "-O1", "-shared", "-fPIC", *flags, "-o", str(output), str(source)],
                   check=True)
    return output


def build_wheel(project: Path, out_dir: Path, *, check: bool = True,
                env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Build ``project``'s wheel with pip and the hook installed in this environment."""
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-build-isolation", "--no-deps", "-v",
         "-w", str(out_dir), str(project)],
        capture_output=True, text=True, env={**os.environ, **(env or {})}, check=False)
    if check and result.returncode != 0:
        raise AssertionError(f"wheel build failed:\n{result.stdout}\n{result.stderr}")
    return result


def unpack_wheel(wheel: Path, site: Path) -> None:
    """Install a wheel the simple way: unzip it into a folder that goes on sys.path."""
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(site)


def pyenv_python(version: str) -> str:
    """The pyenv-installed CPython ``version`` (e.g. "3.10")."""
    root = os.environ.get("PYENV_ROOT") or os.path.expanduser("~/.pyenv")
    if shutil.which("pyenv"):
        root = subprocess.run(["pyenv", "root"], capture_output=True, text=True,
                              check=True).stdout.strip()
    candidates = sorted(Path(root, "versions").glob(f"{version}.*/bin/python{version}"))
    if not candidates:
        pytest.fail(f"CPython {version} is not installed through pyenv under {root}")
    return str(candidates[-1])


@pytest.fixture(scope="session")
def native_lib(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Path of the compiled C test library."""
    out = tmp_path_factory.mktemp("native")
    return compile_c(TESTS / "native" / "ffm_test_lib.c", out / "libffm_test.so")


@pytest.fixture(scope="session")
def structs_lib(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Path of the compiled C struct-layout library."""
    out = tmp_path_factory.mktemp("structs")
    return compile_c(TESTS / "native" / "structs.c", out / "libffm_structs.so")


@pytest.fixture(scope="session")
def testpkg_wheel(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """The test package's wheel, built by the real hook; returns (wheel, build log)."""
    out = tmp_path_factory.mktemp("testpkg-dist")
    project = tmp_path_factory.mktemp("testpkg-src") / "ffm_testpkg"
    shutil.copytree(TESTS / "fixtures" / "ffm_testpkg", project)
    result = build_wheel(project, out)
    (wheel,) = out.glob("ffm_testpkg-*.whl")
    return wheel, result.stdout + result.stderr


@pytest.fixture(scope="session")
def stub_site(tmp_path_factory: pytest.TempPathFactory,
              testpkg_wheel: tuple[Path, str]) -> Iterator[Path]:
    """A folder on sys.path holding the installed test package (and so its stubs)."""
    site = tmp_path_factory.mktemp("site")
    unpack_wheel(testpkg_wheel[0], site)
    sys.path.insert(0, str(site))
    try:
        yield site
    finally:
        sys.path.remove(str(site))
