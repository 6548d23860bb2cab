"""Symbol lookup, library loading, and the operations that are not supported yet."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from support import ROOT, SUPPORTED_PYTHONS, require_python

import ffm_runtime as ffm
from ffm_runtime import JAVA_INT, FunctionDescriptor, Linker, SymbolLookup, _targets


def test_loader_lookup_finds_process_symbols() -> None:
    lookup = SymbolLookup.loader_lookup()
    strlen = lookup.find("strlen")
    assert isinstance(strlen, ffm.MemorySegment) and strlen.address and strlen.byte_size == 0
    assert lookup.find("no_such_symbol_hopefully") is None
    assert lookup.find("") is None
    with pytest.raises(TypeError, match="symbol name must be a str"):
        lookup.find(b"strlen")  # type: ignore[arg-type]


def test_load_library_by_path(native_lib: Path) -> None:
    assert ffm.load_library(str(native_lib)) == str(native_lib)
    assert SymbolLookup.loader_lookup().find("mix") is not None


def test_bare_name_searches_the_calling_package_first(
    tmp_path: Path, native_lib: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    package = tmp_path / "pkg_with_lib"
    package.mkdir()
    shutil.copy(native_lib, package / "libbundled.so")
    (package / "__init__.py").write_text(
        textwrap.dedent("""
        import ffm_runtime
        LOADED = ffm_runtime.load_library("bundled")
        FOUND = ffm_runtime.SymbolLookup.loader_lookup().find("spill")
    """)
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    import pkg_with_lib  # type: ignore[import-not-found]

    assert str(package / "libbundled.so") == pkg_with_lib.LOADED
    assert pkg_with_lib.FOUND is not None
    del sys.modules["pkg_with_lib"]


def test_bare_name_falls_back_to_the_system() -> None:
    assert "libm" in ffm.load_library("m")
    assert SymbolLookup.loader_lookup().find("cos") is not None


def test_missing_library() -> None:
    with pytest.raises(ffm.LibraryLoadError, match="cannot load library 'no-such-lib-xyz'"):
        ffm.load_library("no-such-lib-xyz")
    with pytest.raises(ffm.LibraryLoadError, match="cannot load library"):
        ffm.load_library("/nonexistent/libx.so")
    with pytest.raises(TypeError, match="takes a non-empty str"):
        ffm.load_library("")


def test_or_else() -> None:
    empty = SymbolLookup(lambda name: None)
    combined = empty.or_else(SymbolLookup.loader_lookup())
    assert combined.find("strlen") == SymbolLookup.loader_lookup().find("strlen")


def test_not_supported_yet() -> None:
    with pytest.raises(ffm.UnsupportedOperationError, match="library_lookup is not supported yet"):
        SymbolLookup.library_lookup("c")
    with pytest.raises(ffm.UnsupportedOperationError, match="default_lookup\\(\\) is not supported"):
        Linker.native_linker().default_lookup()
    with pytest.raises(ffm.UpcallNotSupportedError, match="Upcalls are not yet supported"):
        Linker.native_linker().upcall_stub(None, FunctionDescriptor.of_void(), ffm.Arena.global_arena())
    assert issubclass(ffm.UpcallNotSupportedError, NotImplementedError)


def test_other_platforms_fail_at_link_time(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_targets, "host_target", lambda: "riscv64-linux")
    with pytest.raises(ffm.UnsupportedPlatformError, match="not supported on platform: riscv64-linux"):
        Linker.native_linker().downcall_handle(FunctionDescriptor.of(JAVA_INT))


def test_canonical_layouts() -> None:
    layouts = Linker.native_linker().canonical_layouts()
    assert layouts["int"] is JAVA_INT and layouts["void*"] is ffm.ADDRESS
    assert layouts["long"].byte_size == 8


@pytest.mark.parametrize("version", SUPPORTED_PYTHONS)
def test_import_works_where_there_is_no_posix_loader(version: str) -> None:
    """Stand-in for Windows: ctypes.CDLL(None) fails there; import must not.  On every
    supported CPython (from 3.12 on, shutil, which ctypes.util imports, needs _winapi there)."""
    script = """
import ctypes, platform, sys
real = ctypes.CDLL
def cdll(name, *args, **kwargs):
    if name is None:
        raise TypeError("expected str, bytes or os.PathLike object, not NoneType")
    return real(name, *args, **kwargs)
ctypes.CDLL = cdll
platform.machine = lambda: "AMD64"
sys.platform = "win32"
import ffm_runtime as ffm
assert ffm.SymbolLookup.loader_lookup().find("strlen") is None
try:
    ffm.Linker.native_linker().downcall_handle(ffm.FunctionDescriptor.of(ffm.JAVA_INT))
except ffm.UnsupportedPlatformError as exc:
    print(exc)
"""
    result = subprocess.run(
        [str(require_python(version)), "-c", script],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert result.returncode == 0, result.stderr
    assert "not supported on platform: x86_64-win32" in result.stdout


def test_import_does_not_load_library_search_modules() -> None:
    """ctypes.util (and the shutil and subprocess it imports) loads only when a library is
    searched by name."""
    script = """
import sys
import ffm_runtime
print(sorted({"ctypes.util", "shutil", "subprocess"} & set(sys.modules)))
ffm_runtime.load_library("m")
print(sorted({"ctypes.util", "shutil", "subprocess"} & set(sys.modules)))
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert result.stdout.splitlines() == ["[]", "['ctypes.util', 'shutil', 'subprocess']"]


def test_bare_name_for_a_module_run_with_dash_m(tmp_path: Path, native_lib: Path) -> None:
    """`python -m pkg.sub.tool`: the tool's own folder is searched, in the name of unit pkg."""
    folder = tmp_path / "pkg_lib_tool" / "sub"
    folder.mkdir(parents=True)
    (folder.parent / "__init__.py").write_text("")
    (folder / "__init__.py").write_text("")
    shutil.copy(native_lib, folder / "libbundled.so")
    (folder / "tool.py").write_text("import ffm_runtime\nprint(ffm_runtime.load_library('bundled'))\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("FFM_")}
    result = subprocess.run(
        [sys.executable, "-m", "pkg_lib_tool.sub.tool"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=False,
        env={**env, "FFM_ENABLE_NATIVE_ACCESS": "pkg_lib_tool"},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(folder / "libbundled.so")
