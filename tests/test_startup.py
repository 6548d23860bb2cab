"""Start-up: ``import ffm_runtime`` loads nothing native and imports no more of the
standard library than its API needs; what it leaves (the bootstrap's cells and offsets, the
accelerators, the manifests) happens before first use.  Each check runs in a fresh
interpreter (tests/scripts/startup_checks.py); no timings are asserted (see
tests/scripts/startup_figures.py for those)."""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).parent / "scripts"


@pytest.mark.parametrize("order", ["handle-first", "accelerators-first", "replaced", "patched"])
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


#: a copy of ffm_runtime's accelerators, altered, and what the first arena then says
DAMAGED_ACCELERATORS = {
    "manifest not JSON": r"ffm_runtime: .*manifest\.json is damaged \(.*\); not using the accelerators: "
    r"reinstall hatch-ffm",
    "manifest without objects": r"ffm_runtime: .*manifest\.json is damaged \(.*\); not using the "
    r"accelerators: reinstall hatch-ffm",
    "object missing": r"ffm_runtime: cannot read .*accel-x86_64-linux\.img \(.*No such file.*\); not using "
    r"the accelerators: reinstall hatch-ffm",
    "another object": r"ffm_runtime: cannot use .*accel-x86_64-linux\.img: it has no symbol "
    r"ffm_acc_arena_allocate \(not the accelerators of this ffm_runtime\); not using the accelerators: "
    r"reinstall hatch-ffm",
    "manifest of another format": r"ffm_runtime: .*manifest\.json has format 1, not 2 \(another "
    r"hatch-ffm's\); not using the accelerators: reinstall hatch-ffm",
    "no object for this machine": None,
    "no manifest": None,
}

ACCELERATORS_SCRIPT = """
import sys, warnings
from ffm_runtime import JAVA_INT, Arena, _accel
import ffm_runtime
_accel.OBJECTS_DIR = sys.argv[1]
for attempt in range(2):
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        with Arena.of_confined() as arena:
            segment = arena.allocate(8)
            segment.set(JAVA_INT, 0, 3)
            assert segment.get(JAVA_INT, 0) == 3
    for warning in said:
        print(f"{warning.category.__name__}: {warning.message}")
assert not ffm_runtime.accelerated()
print("python methods")
"""


@pytest.mark.parametrize("damage", sorted(DAMAGED_ACCELERATORS))
def test_damaged_accelerators_are_reported_once_and_not_used(
    tmp_path: Path, stub_site: Path, damage: str
) -> None:
    import json
    import shutil

    from ffm_runtime import _accel

    if not os.path.exists(os.path.join(_accel.OBJECTS_DIR, _accel.MANIFEST)):
        pytest.skip("ffm_runtime's accelerators are not built here")
    objects = tmp_path / "_objects"
    shutil.copytree(_accel.OBJECTS_DIR, objects)
    manifest_path = objects / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    ours = manifest["objects"]["x86_64-linux"]
    if damage == "manifest not JSON":
        manifest_path.write_text("{")
    elif damage == "manifest without objects":
        manifest_path.write_text('{"format": 2, "objects": ["x86_64-linux"]}')
    elif damage == "manifest of another format":
        manifest_path.write_text(json.dumps({**manifest, "format": 1}))
    elif damage == "object missing":
        (objects / ours["file"]).unlink()
    elif damage == "another object":  # (a wheel's stubs, listed with their own SHA-256)
        stub = next((stub_site / "ffm_testpkg" / "_ffm").glob("stubs-x86_64-linux*.img")).read_bytes()
        (objects / ours["file"]).write_bytes(stub)
        ours["sha256"] = hashlib.sha256(stub).hexdigest()
        manifest_path.write_text(json.dumps(manifest))
    elif damage == "no object for this machine":
        del manifest["objects"]["x86_64-linux"]
        manifest_path.write_text(json.dumps(manifest))
    else:
        manifest_path.unlink()
    result = subprocess.run(
        [sys.executable, "-c", ACCELERATORS_SCRIPT, str(objects)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    *said, last = result.stdout.strip().splitlines()
    assert last == "python methods"
    expected = DAMAGED_ACCELERATORS[damage]
    if expected is None:
        assert said == []
    else:
        assert len(said) == 1, said
        assert re.fullmatch(f"RuntimeWarning: {expected}", said[0]), said[0]


def test_a_projects_own_array_module_is_not_taken_for_the_standard_librarys(
    stub_site: Path, tmp_path: Path
) -> None:
    """A script beside its own ``array.py`` (which ``import array`` then finds): the first
    handle works, and the array-type cell that native ``of_array`` trusts gets only the real
    ``array.array``, never a class of that name."""
    (tmp_path / "array.py").write_text(
        '"""The project\'s own module named array."""\n\n\nclass array(bytearray):\n    pass\n'
    )
    (tmp_path / "main.py").write_text(
        textwrap.dedent(f"""
        import ctypes
        import sys

        sys.path.insert(1, {str(stub_site)!r})
        import array  # the project's own

        from ffm_runtime import JAVA_INT, FunctionDescriptor, Linker, MemorySegment
        from ffm_runtime import _bootstrap, _contract

        def cell():
            address = _bootstrap.cell_address(_contract.CELL_ARRAY_TYPE)
            return ctypes.c_void_p.from_address(address).value

        linker = Linker.native_linker()
        labs = linker.downcall_handle(
            linker.default_lookup().find("abs"), FunctionDescriptor.of(JAVA_INT, JAVA_INT)
        )
        assert labs(-7) == 7
        mine = array.array(b"abcd")
        assert MemorySegment.of_array(mine).byte_size == 4
        assert cell() != id(array.array), "a project's class in the cell"
        del sys.modules["array"]
        sys.path.remove(sys.path[0])
        import array as standard

        assert standard.array is not array.array
        numbers = standard.array("i", [1, -2, 3])
        assert MemorySegment.of_array(numbers).get(JAVA_INT, 4) == -2
        assert cell() == id(standard.array)
        print("ok")
        """)
    )
    result = subprocess.run(
        [sys.executable, str(tmp_path / "main.py")],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "FFM_ENABLE_NATIVE_ACCESS": "__main__"},
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == "ok"


def test_hashing_looks_for_the_interpreters_sha256_once() -> None:
    """A stub's symbol and every image's check hash with the interpreter's own SHA-256; an
    import that fails is not remembered, so trying ``_sha2`` (3.12+) on 3.10/3.11 at each
    hash searched all of ``sys.path`` each time (10,000 symbols: seconds of a build)."""
    script = """
import sys
searched = []
class Spy:
    @staticmethod
    def find_spec(name, path=None, target=None):
        if name in ("_sha2", "_sha256", "hashlib"):
            searched.append(name)
        return None
sys.meta_path.insert(0, Spy)
from ffm_runtime._digest import sha256_hex
from ffm_runtime._manifest import stub_symbol
for n in range(50):
    sha256_hex(b"x" * n)
    stub_symbol(f"(i{n})v")
print(len(searched))
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert int(result.stdout) <= 2, result.stdout  # _sha2, then _sha256 (3.10, 3.11), once
