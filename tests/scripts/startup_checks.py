"""What ``import ffm_runtime`` does and does not do, and that what it leaves for later still
happens before first use.  Run by tests/test_startup.py in a fresh interpreter:

    python startup_checks.py SITE ORDER

``SITE``: a folder on which the test package is installed; ``ORDER``: ``handle-first`` (a
downcall handle, then the accelerators), ``accelerators-first`` (the other way round) or
``replaced`` (``Arena.allocate`` replaced before first use) or ``patched``
(``MemorySegment.get`` replaced during the first use, then put back).  Prints "startup checks passed".
"""

from __future__ import annotations

import sys

#: standard-library modules that ``import ffm_runtime`` must not import
NOT_AT_IMPORT = (
    "dataclasses",
    "json",
    "hashlib",
    "_hashlib",
    "pathlib",
    "subprocess",
    "ctypes",
    "ctypes.util",
    "types",
    "platform",
    "inspect",
    "typing",
    "enum",
    "re",
    "collections",
    "contextlib",
    "threading",
    "warnings",
    "weakref",
)
#: runtime modules that only the first handle (or first use of the accelerators) needs
NOT_YET = (
    "ffm_runtime._registry",
    "ffm_runtime._manifest",
    "ffm_runtime._loader",
    "ffm_runtime._elf",
    "ffm_runtime._execmem",
    "ffm_runtime._handles",
    "ffm_runtime._upcalls",
    "ffm_runtime._targets",
)


def mapped_objects() -> list[str]:
    """Lines of /proc/self/maps naming a stub or accelerator object (or the memfd fallback's
    mapping)."""
    with open("/proc/self/maps") as maps:
        return [line for line in maps if line.split()[-1].endswith((".o", ".img")) or "ffm-stubs" in line]


def executable_anonymous() -> int:
    """How many anonymous executable mappings the process has (where stubs are loaded)."""
    with open("/proc/self/maps") as maps:
        return sum(1 for line in maps if line.split()[1][2] == "x" and len(line.split()) < 6)


site, order = sys.argv[1], sys.argv[2]
sys.path.insert(0, site)
executable_before = executable_anonymous()
already = set(sys.modules)

import ffm_runtime  # noqa: E402
from ffm_runtime import (  # noqa: E402
    JAVA_INT,
    Arena,
    FunctionDescriptor,
    Linker,
    MemorySegment,
    _bootstrap,
    _contract,
)

imported = set(sys.modules) - already
bad = sorted(name for name in (*NOT_AT_IMPORT, *NOT_YET) if name in imported)
assert not bad, f"import ffm_runtime imported {bad}"
assert not mapped_objects(), mapped_objects()
assert executable_anonymous() == executable_before, "import ffm_runtime mapped executable memory"
assert not _bootstrap.done(), "the bootstrap ran at import"
assert not _bootstrap._made, "the bootstrap's native tables were made at import"
# the accelerated methods are stand-ins until first use
assert type(MemorySegment.__dict__["get"]).__name__ == "function"
assert MemorySegment.get.__name__ == "get" and MemorySegment.get.__doc__
assert Arena.__dict__["__exit__"] is Arena.__dict__["close"]


import ctypes  # noqa: E402  (after the checks above: import ffm_runtime must not import it)


def cell(name: str) -> int | None:
    return ctypes.c_void_p.from_address(_bootstrap.cell_address(name)).value


def check_accelerated() -> None:
    assert type(MemorySegment.__dict__["get"]).__name__ == "method_descriptor"
    assert type(Arena.__dict__["close"]).__name__ == "method_descriptor"
    assert Arena.__dict__["__exit__"] is Arena.__dict__["close"]
    # the struct upcalls' arena methods: as installed
    assert cell(_contract.CELL_OPEN_CONFINED) == id(Arena.of_confined)
    assert cell(_contract.CELL_CLOSE_ARENA) == id(Arena.close)


#: what the first downcall handle (and the accelerators) must not import: the stubs are
#: images (no ELF reader or relocations), the manifest is read without json and re
NOT_AT_FIRST_HANDLE = (
    *NOT_AT_IMPORT,
    "array",
    "math",
    "operator",
    "mmap",
    "bisect",
    "ffm_runtime._elf",
    "ffm_runtime._link",
    "ffm_runtime._reloc_x86_64",
    "ffm_runtime._reloc_aarch64",
)


def handle() -> None:
    before = set(sys.modules)
    linker = Linker.native_linker()
    labs = linker.downcall_handle(
        linker.default_lookup().find("abs"), FunctionDescriptor.of(JAVA_INT, JAVA_INT)
    )
    assert labs(-7) == 7
    bad = sorted(name for name in NOT_AT_FIRST_HANDLE if name in set(sys.modules) - before)
    assert not bad, f"the first handle imported {bad}"
    assert _bootstrap.done()
    assert all(cell(name) for name in _contract.RUNTIME_CELLS)
    assert mapped_objects() or executable_anonymous() > executable_before
    heavy = sorted(name for name in ("dataclasses", "inspect") if name in sys.modules)
    assert not heavy, f"the first handle imported {heavy}"


if order == "handle-first":
    handle()
    assert "ffm_runtime._registry" in sys.modules
    assert type(MemorySegment.__dict__["get"]).__name__ == "function"  # not installed yet
    with Arena.of_confined() as arena:  # the first use installs them
        segment = arena.allocate(8)
        segment.set(JAVA_INT, 0, 5)
        assert segment.get(JAVA_INT, 0) == 5
    check_accelerated()
    assert ffm_runtime.accelerated()
    # no array before the first array: of_array stores the type when one arrives
    assert "array" not in sys.modules
    import array

    assert cell(_contract.CELL_ARRAY_TYPE) != id(array.array)
    numbers = array.array("i", [1, -2, 3])
    assert MemorySegment.of_array(numbers).get(JAVA_INT, 4) == -2  # the Python path
    assert cell(_contract.CELL_ARRAY_TYPE) == id(array.array)
    view = MemorySegment.of_array(numbers)  # native from now on
    view.set(JAVA_INT, 8, 30)
    assert numbers[2] == 30
elif order == "accelerators-first":
    with Arena.of_confined() as arena:
        segment = arena.allocate(8)
        segment.set(JAVA_INT, 4, -3)
        assert segment.get(JAVA_INT, 4) == -3
    assert _bootstrap.done()  # before the accelerators' object was loaded
    check_accelerated()
    assert "ffm_runtime._registry" not in sys.modules  # no manifest read for the accelerators
    handle()
    check_accelerated()
elif order == "replaced":
    calls: list[tuple[object, ...]] = []
    original = Arena.allocate

    def allocate(self: Arena, *args: object) -> MemorySegment:
        calls.append(args)
        return original(self, *args)  # type: ignore[arg-type]

    Arena.allocate = allocate  # type: ignore[assignment,method-assign]
    with Arena.of_confined() as arena:  # installs the accelerators, but not over allocate
        arena.allocate(8)
    assert Arena.allocate is allocate and calls == [(8,)]
    assert type(MemorySegment.__dict__["get"]).__name__ == "method_descriptor"
    assert ffm_runtime.accelerated()
elif order == "patched":  # replaced for a while (unittest.mock), first use meanwhile, put back
    from unittest import mock

    with mock.patch.object(MemorySegment, "get", autospec=True, side_effect=MemorySegment.get) as get:
        with Arena.of_confined() as arena:  # installs the accelerators, but not over the mock
            segment = arena.allocate(8)
            assert segment.get(JAVA_INT, 0) == 0
        assert get.call_count == 1
    assert type(MemorySegment.__dict__["get"]).__name__ == "function"  # the stand-in is back
    with Arena.of_confined() as arena:  # its first call puts the accelerator in its place
        segment = arena.allocate(8)
        segment.set(JAVA_INT, 0, 4)
        assert segment.get(JAVA_INT, 0) == 4
    check_accelerated()
else:
    raise SystemExit(f"unknown order {order!r}")
print("startup checks passed")
