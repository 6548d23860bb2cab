"""Helpers of the tests (no fixtures: those are in conftest.py): where the tree is, the supported
CPythons and how to find them, compiling C, building and unpacking wheels.  Imported as
``support`` (``pythonpath = ["tests"]``), also by tests/pythons/suite.py and benchmarks/report.py."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
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


#: The example bindings beside example_project: project folder -> (header, shared library).
EXAMPLE_LIBS = {
    "example_bz2": ("bzlib.h", "libbz2.so.1.0"),
    "example_yaml": ("yaml.h", "libyaml-0.so.2"),
    "example_expat": ("expat.h", "libexpat.so.1"),
}


def require_example_lib(project: str) -> None:
    """Skip the test where the C library of example ``project`` or its -dev header is missing;
    fail instead when ``FFM_REQUIRE_EXAMPLE_LIBS`` is set (CI sets it)."""
    import ctypes

    header, library = EXAMPLE_LIBS[project]
    missing = []
    probe = subprocess.run(
        [os.environ.get("CC", "cc"), "-E", "-x", "c", "-", "-o", os.devnull],
        input=f"#include <{header}>\n",
        capture_output=True,
        text=True,
        check=False,
    )
    if probe.returncode != 0:
        missing.append(header)
    try:
        ctypes.CDLL(library)
    except OSError:
        missing.append(library)
    if missing:
        reason = (
            f"{project} needs {' and '.join(missing)}: run 'make example-libs' as root "
            "(tests/examples/setup-libs.sh)"
        )
        if os.environ.get("FFM_REQUIRE_EXAMPLE_LIBS"):
            pytest.fail(reason)
        pytest.skip(reason)


def c_layout(header: str, type_name: str, fields: list[str], tmp: Path) -> tuple[int, dict[str, int]]:
    """``sizeof(type_name)`` and ``offsetof(type_name, field)`` of each field (a C member
    designator such as ``data.scalar.length``), as the system C compiler lays them out with
    ``header``."""
    lines = [f"#include <{header}>", "#include <stddef.h>", "#include <stdio.h>", "int main(void) {"]
    lines.append(f'    printf("%zu\\n", sizeof({type_name}));')
    lines += [f'    printf("%zu\\n", offsetof({type_name}, {field}));' for field in fields]
    lines += ["    return 0;", "}"]
    source = tmp / f"layout_{type_name}.c"
    source.write_text("\n".join(lines) + "\n")
    program = tmp / f"layout_{type_name}"
    subprocess.run([os.environ.get("CC", "cc"), "-o", str(program), str(source)], check=True)
    size, *offsets = (
        int(line)
        for line in subprocess.run([str(program)], capture_output=True, text=True, check=True).stdout.split()
    )
    return size, dict(zip(fields, offsets, strict=True))


def c_values(header: str, expressions: list[str], tmp: Path) -> dict[str, int]:
    """The value of each integer constant expression (``sizeof(XML_Char)``, an enum member),
    as the system C compiler computes it with ``header``."""
    lines = [f"#include <{header}>", "#include <stdio.h>", "int main(void) {"]
    lines += [f'    printf("%lld\\n", (long long)({expression}));' for expression in expressions]
    lines += ["    return 0;", "}"]
    source = tmp / "values.c"
    source.write_text("\n".join(lines) + "\n")
    program = tmp / "values"
    subprocess.run([os.environ.get("CC", "cc"), "-o", str(program), str(source)], check=True)
    output = subprocess.run([str(program)], capture_output=True, text=True, check=True).stdout.split()
    return dict(zip(expressions, (int(value) for value in output), strict=True))


def malloc_in_use() -> int:
    """Bytes the C library's malloc has handed out and not taken back (glibc's ``mallinfo2``:
    heap chunks in use plus mmapped blocks), for tests that a native object is freed."""
    import ctypes

    class Mallinfo2(ctypes.Structure):
        _fields_ = [
            (name, ctypes.c_size_t)
            for name in [
                "arena",
                "ordblks",
                "smblks",
                "hblks",
                "hblkhd",
                "usmblks",
                "fsmblks",
                "uordblks",
                "fordblks",
                "keepcost",
            ]
        ]

    mallinfo2 = ctypes.CDLL(None).mallinfo2
    mallinfo2.restype = Mallinfo2
    info = mallinfo2()
    return int(info.uordblks + info.hblkhd)
