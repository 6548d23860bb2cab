"""Symbol lookup, library loading, and the operations that are not supported yet."""

from __future__ import annotations

import gc
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from support import ROOT, SUPPORTED_PYTHONS, compile_c, require_python

import ffm_runtime as ffm
from ffm_runtime import (
    ADDRESS,
    JAVA_DOUBLE,
    JAVA_INT,
    JAVA_LONG,
    Arena,
    FunctionDescriptor,
    Linker,
    SymbolLookup,
    _targets,
)


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


def test_a_struct_upcall_shape_no_wheel_registered() -> None:
    struct = ffm.MemoryLayout.struct_layout(ffm.JAVA_INT, ffm.JAVA_INT)
    with pytest.raises(
        ffm.MissingForeignRegistrationError,
        match=r"RuntimeForeignAccess\.register_for_upcall\(FunctionDescriptor\.of_void\("
        r"MemoryLayout\.struct_layout\(JAVA_INT, JAVA_INT\), "
        r"MemoryLayout\.struct_layout\(JAVA_INT, JAVA_INT\)\)\)",
    ):
        Linker.native_linker().upcall_stub(
            lambda s, t: None, FunctionDescriptor.of_void(struct, struct), ffm.Arena.global_arena()
        )
    # no longer raised (every upcall shape is supported), still there for code catching it
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
assert ffm.Linker.native_linker().default_lookup().find("strlen") is None
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


# -- library_lookup, default_lookup, versioned sonames ----------------------------------------


@pytest.fixture
def private_lib(tmp_path: Path) -> Path:
    """A library no other code of this process loads (its own file name), one symbol."""
    source = tmp_path / "private.c"
    source.write_text("int private_answer(void) { return 42; }\n")
    return compile_c(source, tmp_path / f"libffm_private_{tmp_path.name}.so")


def mapped(path: Path) -> bool:
    return str(path) in Path("/proc/self/maps").read_text()


def test_library_lookup_unloads_when_the_arena_closes(private_lib: Path) -> None:
    arena = Arena.of_confined()
    lookup = SymbolLookup.library_lookup(str(private_lib), arena)
    assert mapped(private_lib)
    symbol = lookup.find("private_answer")
    assert symbol is not None and symbol.address and symbol.byte_size == 0
    assert symbol.scope is arena
    assert lookup.find("no_such_symbol_hopefully") is None
    arena.close()
    assert not mapped(private_lib)
    with pytest.raises(ffm.ScopeClosedError, match="Already closed"):
        lookup.find("private_answer")
    with pytest.raises(ffm.ScopeClosedError, match="Already closed"):
        Linker.native_linker().downcall_handle(symbol, FunctionDescriptor.of(JAVA_INT))


@pytest.mark.parametrize("kind", ["shared", "confined"])
def test_close_while_find_reads_the_library_is_refused(private_lib: Path, kind: str) -> None:
    """``find`` keeps the arena open while ``dlsym`` reads the library's handle: a close
    from code run at that moment (another thread's, for a shared arena; a signal handler or
    finalizer of this thread, here a profile function) is refused, instead of unloading the
    library under ``dlsym`` (a read of the freed handle: a crash with MALLOC_PERTURB_)."""
    script = f"""
import sys
import ffm_runtime as ffm
arena = ffm.Arena.of_{kind}()
lookup = ffm.SymbolLookup.library_lookup({str(private_lib)!r}, arena)
def close_at_dlsym(frame, event, arg):
    if event == "call" and frame.f_code.co_name == "dlsym":
        sys.setprofile(None)
        try:
            arena.close()
            print("closed")
        except ffm.ScopeInUseError as exc:
            print(exc)
sys.setprofile(close_at_dlsym)
print(lookup.find("private_answer") is not None)
sys.setprofile(None)
arena.close()
print({str(private_lib)!r} in open("/proc/self/maps").read())
"""
    env = {**os.environ, "MALLOC_PERTURB_": "165", "FFM_ENABLE_NATIVE_ACCESS": "ALL-UNNAMED"}
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, check=False
    )
    assert result.returncode == 0, result.stderr
    refusal, found, mapped_after = result.stdout.splitlines()
    assert (
        refusal.startswith("Cannot close <Arena")
        if kind == "confined"
        else refusal.startswith("Session is acquired by 1 client")
    ), refusal
    assert (found, mapped_after) == ("True", "False")


def test_library_lookup_of_an_automatic_arena(private_lib: Path) -> None:
    lookup = SymbolLookup.library_lookup(private_lib, Arena.of_auto())  # a Path: os.PathLike
    symbol = lookup.find("private_answer")
    assert symbol is not None
    del lookup
    gc.collect()
    assert mapped(private_lib)  # the segment keeps the arena, and so the library
    del symbol
    gc.collect()
    assert not mapped(private_lib)


def test_library_lookup_in_the_global_arena(private_lib: Path) -> None:
    lookup = SymbolLookup.library_lookup(str(private_lib), Arena.global_arena())
    assert lookup.find("private_answer") is not None
    assert mapped(private_lib)


def test_library_lookup_by_soname_and_relative_path(
    private_lib: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with Arena.of_confined() as arena:
        libm = SymbolLookup.library_lookup("libm.so.6", arena)  # through the system loader
        assert libm.find("cos") == SymbolLookup.loader_lookup().find("cos")
        monkeypatch.chdir(private_lib.parent)
        relative = SymbolLookup.library_lookup(Path(private_lib.name), arena)  # made absolute
        assert relative.find("private_answer") is not None


def test_library_lookup_errors(private_lib: Path) -> None:
    arena = Arena.global_arena()
    with pytest.raises(
        ffm.LibraryLoadError,
        match=r"cannot load library 'libno-such-lib-xyz\.so\.1': .*cannot open shared object file",
    ):
        SymbolLookup.library_lookup("libno-such-lib-xyz.so.1", arena)
    assert issubclass(ffm.LibraryLoadError, OSError)
    with pytest.raises(ffm.LibraryLoadError, match="cannot load library '': not a library name"):
        SymbolLookup.library_lookup("", arena)
    with pytest.raises(TypeError, match=r"library_lookup\(\) needs an Arena, not NoneType"):
        SymbolLookup.library_lookup("libm.so.6", None)
    with pytest.raises(TypeError, match=r"takes a library name \(str\) or path \(os\.PathLike\), not int"):
        SymbolLookup.library_lookup(3, arena)  # type: ignore[arg-type]
    closed = Arena.of_confined()
    closed.close()
    with pytest.raises(ffm.ScopeClosedError, match="Already closed"):
        SymbolLookup.library_lookup(str(private_lib), closed)
    assert not mapped(private_lib)


@pytest.mark.usefixtures("stub_site")
def test_default_lookup_calls_libc_and_libm() -> None:
    linker = Linker.native_linker()
    lookup = linker.default_lookup()
    assert lookup is linker.default_lookup()
    assert lookup.find("no_such_symbol_hopefully") is None
    strlen_symbol, cos_symbol = lookup.find("strlen"), lookup.find("cos")
    assert strlen_symbol is not None and cos_symbol is not None
    strlen = linker.downcall_handle(strlen_symbol, FunctionDescriptor.of(JAVA_LONG, ADDRESS))
    cos = linker.downcall_handle(cos_symbol, FunctionDescriptor.of(JAVA_DOUBLE, JAVA_DOUBLE))
    with Arena.of_confined() as arena:
        assert strlen(arena.allocate_from("default lookup")) == 14
    assert cos(0.0) == 1.0
    assert lookup.find("dlopen") is not None


def test_restricted_library_lookup_but_not_default_lookup(private_lib: Path) -> None:
    script = f"""
import ffm_runtime as ffm
print(ffm.Linker.native_linker().default_lookup().find("strlen") is not None)
try:
    ffm.SymbolLookup.library_lookup({str(private_lib)!r}, ffm.Arena.global_arena())
except ffm.IllegalCallerError as exc:
    print(exc)
print({str(private_lib)!r} in open("/proc/self/maps").read())
"""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FFM_")}
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, env=env
    )
    lines = result.stdout.splitlines()
    assert lines[0] == "True"
    assert lines[1].startswith(
        "Illegal native access from the __main__ script (module __main__) calling "
        "the restricted SymbolLookup.library_lookup"
    )
    assert lines[2] == "False"


def test_load_library_of_a_versioned_soname(tmp_path: Path, native_lib: Path) -> None:
    """A file name without "/" goes to the system loader (LD_LIBRARY_PATH), not the current
    directory; a copy in the calling package's folder comes first."""
    libs = tmp_path / "libs"
    libs.mkdir()
    shutil.copy(native_lib, libs / "libffmver.so.1")
    package = tmp_path / "pkg_versioned"
    package.mkdir()
    shutil.copy(native_lib, package / "libffmown.so.2")
    (package / "__init__.py").write_text(
        "import ffm_runtime\n"
        "print(ffm_runtime.load_library('libffmver.so.1'))\n"
        "print(ffm_runtime.load_library('libffmown.so.2'))\n"
        "print(ffm_runtime.load_library('libm.so.6'))\n"
        "print(ffm_runtime.SymbolLookup.loader_lookup().find('mix') is not None)\n"
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("FFM_")}
    env.update(
        FFM_ENABLE_NATIVE_ACCESS="pkg_versioned",
        LD_LIBRARY_PATH=str(libs),
        PYTHONPATH=os.pathsep.join([str(tmp_path), str(ROOT)]),
    )
    result = subprocess.run(
        [sys.executable, "-c", "import pkg_versioned"],
        capture_output=True,
        text=True,
        check=False,
        cwd=elsewhere,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "libffmver.so.1",
        str(package / "libffmown.so.2"),
        "libm.so.6",
        "True",
    ]


def test_load_library_of_a_missing_soname() -> None:
    with pytest.raises(
        ffm.LibraryLoadError,
        match=r"cannot load library 'libno-such-lib-xyz\.so\.1': .*cannot open shared object file",
    ):
        ffm.load_library("libno-such-lib-xyz.so.1")


def test_dir_lists_only_the_api() -> None:
    assert "annotations" not in dir(ffm)
    assert set(ffm.__all__) <= set(dir(ffm))


def test_a_handle_to_a_symbol_of_an_unloaded_library_refuses_calls(tmp_path: Path, stub_site: Path) -> None:
    """A handle bound to a symbol a library lookup found is checked on every call: after its
    arena closed (and the library was unloaded) a call raises instead of jumping into unmapped
    code."""
    from ffm_runtime import ADDRESS, JAVA_LONG, Arena, ScopeClosedError

    source = tmp_path / "mylen.c"
    source.write_text("#include <string.h>\nlong my_len(const char *s) { return (long)strlen(s); }\n")
    library = compile_c(source, tmp_path / "libmylen.so")
    arena = Arena.of_confined()
    symbol = SymbolLookup.library_lookup(str(library), arena).find("my_len")
    assert symbol is not None
    handle = Linker.native_linker().downcall_handle(symbol, FunctionDescriptor.of(JAVA_LONG, ADDRESS))
    with Arena.of_confined() as text_arena:
        text = text_arena.allocate_from("hello")
        assert handle(text) == 5
        arena.close()
        with pytest.raises(ScopeClosedError, match="Already closed"):
            handle(text)
