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

PYTHONS = TESTS / "pythons"


def _supported_pythons() -> dict[str, str]:
    """version -> where it comes from ("pyenv" or "debian"), from tests/pythons/versions.txt."""
    versions = {}
    for number, line in enumerate((PYTHONS / "versions.txt").read_text().splitlines(), 1):
        if line.strip() and not line.startswith("#"):
            version, source = line.split()
            if source not in ("pyenv", "debian"):
                raise ValueError(
                    f"tests/pythons/versions.txt:{number}: unknown source {source!r} "
                    "(expected pyenv or debian)"
                )
            versions[version] = source
    return versions


#: Every supported CPython version, oldest first, and where the tests find it.
SUPPORTED_PYTHONS = _supported_pythons()


def _pyenv_root() -> Path:
    if shutil.which("pyenv"):
        return Path(
            subprocess.run(["pyenv", "root"], capture_output=True, text=True, check=True).stdout.strip()
        )
    return Path(os.environ.get("PYENV_ROOT") or os.path.expanduser("~/.pyenv"))


def python_path(version: str) -> Path | None:
    """The interpreter of supported CPython ``version`` (e.g. "3.14"), or None if missing."""
    if SUPPORTED_PYTHONS[version] == "debian":
        path = ROOT / ".pythons" / "bin" / f"python{version}"
        return path if path.exists() else None
    candidates = sorted(
        _pyenv_root().glob(f"versions/{version}.*/bin/python{version}"),
        key=lambda p: [int(part) if part.isdigit() else -1 for part in p.parents[1].name.split(".")],
    )
    return candidates[-1] if candidates else None


def require_python(version: str) -> Path:
    """:func:`python_path`, or skip the test where that interpreter is missing; fail instead
    when ``FFM_REQUIRE_PYTHONS`` is set (CI sets it)."""
    path = python_path(version)
    if path is None:
        where = (
            "run 'make pythons-env' (tests/pythons/setup.sh .pythons)"
            if SUPPORTED_PYTHONS[version] == "debian"
            else f"install it through pyenv (under {_pyenv_root()})"
        )
        reason = f"CPython {version} is missing: {where}"
        if os.environ.get("FFM_REQUIRE_PYTHONS"):
            pytest.fail(reason)
        pytest.skip(reason)
    return path


# The test modules are "unnamed" units (no wheel of theirs enables them), like scripts:
# enable them the way a user enables a script. Tests of the policy itself run subprocesses
# with an environment of their own.
os.environ["FFM_ENABLE_NATIVE_ACCESS"] = "ALL-UNNAMED"


def compile_c(source: Path, output: Path, *flags: str, cc: str | None = None) -> Path:
    """Compile ``source`` into a shared library with ``cc`` (default: the system C compiler)."""
    cc = cc or os.environ.get("CC", "cc")
    subprocess.run([cc, "-O1", "-shared", "-fPIC", *flags, "-o", str(output), str(source)], check=True)
    return output


def build_wheel(
    project: Path, out_dir: Path, *, check: bool = True, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Build ``project``'s wheel with pip and the hook installed in this environment."""
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-build-isolation",
            "--no-deps",
            "-v",
            "-w",
            str(out_dir),
            str(project),
        ],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        check=False,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"wheel build failed:\n{result.stdout}\n{result.stderr}")
    return result


def unpack_wheel(wheel: Path, site: Path) -> None:
    """Install a wheel the simple way: unzip it into a folder that goes on sys.path."""
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(site)


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
def stub_site(tmp_path_factory: pytest.TempPathFactory, testpkg_wheel: tuple[Path, str]) -> Iterator[Path]:
    """A folder on sys.path holding the installed test package (and so its stubs)."""
    site = tmp_path_factory.mktemp("site")
    unpack_wheel(testpkg_wheel[0], site)
    sys.path.insert(0, str(site))
    try:
        yield site
    finally:
        sys.path.remove(str(site))
