"""Shared fixtures: the C test library, and the test package's wheel built by the real hook."""

from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support import TESTS, build_wheel, compile_c, unpack_wheel

# The test modules are "unnamed" units (no wheel of theirs enables them), like scripts:
# enable them the way a user enables a script. Tests of the policy itself run subprocesses
# with an environment of their own.
os.environ["FFM_ENABLE_NATIVE_ACCESS"] = "ALL-UNNAMED"

# Builds (the hook's, in the wheels the tests build) cache their compiled stubs here, not in
# the user's cache; tests of the cache itself use folders of their own.
_BUILD_CACHE = tempfile.mkdtemp(prefix="ffm-test-build-cache-")
atexit.register(shutil.rmtree, _BUILD_CACHE, ignore_errors=True)
os.environ["FFM_BUILD_CACHE"] = _BUILD_CACHE


@pytest.fixture(scope="session")
def native_lib(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Path of the compiled C test library."""
    out = tmp_path_factory.mktemp("native")
    return compile_c(TESTS / "native" / "ffm_test_lib.c", out / "libffm_test.so")


@pytest.fixture(scope="session")
def lookup(native_lib: Path) -> Any:
    """The loader lookup, with the C test library loaded."""
    import ffm_runtime as ffm  # (once FFM_ENABLE_NATIVE_ACCESS is set, above)

    ffm.load_library(str(native_lib))
    return ffm.SymbolLookup.loader_lookup()


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


def _example_site(tmp_path_factory: pytest.TempPathFactory, project: str) -> Iterator[Path]:
    """An example binding's wheel built once by the real hook and unpacked into a folder on
    sys.path."""
    from support import ROOT, require_example_lib

    require_example_lib(project)
    out = tmp_path_factory.mktemp(f"{project}-dist")
    source = tmp_path_factory.mktemp(f"{project}-src") / project
    shutil.copytree(ROOT / project, source, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    build_wheel(source, out)
    (wheel,) = out.glob(f"{project}-*.whl")
    site = tmp_path_factory.mktemp(f"{project}-site")
    unpack_wheel(wheel, site)
    sys.path.insert(0, str(site))
    try:
        yield site
    finally:
        sys.path.remove(str(site))


@pytest.fixture(scope="session")
def bz2_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """example_bz2 (libbz2), installed from its wheel."""
    yield from _example_site(tmp_path_factory, "example_bz2")


@pytest.fixture(scope="session")
def yaml_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """example_yaml (libyaml's parser), installed from its wheel."""
    yield from _example_site(tmp_path_factory, "example_yaml")


@pytest.fixture(scope="session")
def expat_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """example_expat (libexpat's SAX parser, upcalls), installed from its wheel."""
    yield from _example_site(tmp_path_factory, "example_expat")
