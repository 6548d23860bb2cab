"""The ELF loader: verification, relocation, W^X, refusal of anything malformed."""

from __future__ import annotations

import ctypes
import hashlib
import struct
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from llvmlite import ir

from ffm_runtime import JAVA_INT, FunctionDescriptor, StubLoadError, _elf, registration_key
from ffm_runtime._bootstrap import resolve_import
from ffm_runtime._loader import load_object
from ffm_runtime._manifest import GENERATOR, Manifest, StubObject
from ffm_runtime._registry import StubRegistry
from hatch_ffm._compile import compile_object
from hatch_ffm._ir import build_stub_module, stub_symbol
from hatch_ffm._lowering import lower

TRIPLE = "x86_64-unknown-linux-gnu"
KEY = "(i4)i4"

SCRIPTS = Path(__file__).parent / "scripts"


# Not shared: one (int)int stub in memory; test_fuzz_loader's and test_aarch64's objects hold other shapes.
@pytest.fixture(scope="module")
def stub_object() -> bytes:
    descriptor = FunctionDescriptor.of(JAVA_INT, JAVA_INT)
    sig = lower(registration_key(descriptor), descriptor, ())
    return compile_object(str(build_stub_module([sig], TRIPLE)), TRIPLE)


def write_package(folder: Path, data: bytes, digest: str | None = None) -> Path:
    stubs = folder / "pkg" / "_ffm"
    stubs.mkdir(parents=True)
    (stubs / "stubs-x86_64-linux.o").write_bytes(data)
    manifest = Manifest(
        "pkg",
        GENERATOR,
        (
            StubObject(
                "x86_64-linux", TRIPLE, "stubs-x86_64-linux.o", digest or hashlib.sha256(data).hexdigest()
            ),
        ),
        {KEY: stub_symbol(KEY)},
        format=2,  # (its object is ELF: the runtime links it as it loads it)
    )
    (stubs / "manifest.json").write_text(manifest.to_json())
    return stubs / "manifest.json"


def mapping_permissions(address: int) -> str:
    for line in Path("/proc/self/maps").read_text().splitlines():
        span, perms = line.split()[:2]
        start, end = (int(x, 16) for x in span.split("-"))
        if start <= address < end:
            return perms
    raise AssertionError(f"{address:#x} is not mapped")


def test_loaded_code_is_read_execute_never_writable(stub_object: bytes) -> None:
    loaded = load_object(stub_object, resolve_import, "mem")
    address = loaded.symbols[stub_symbol(KEY) + "_b"]
    assert mapping_permissions(address) == "r-xp"


def test_no_mapping_is_writable_and_executable(tmp_path: Path, stub_object: bytes) -> None:
    """In a process with only the runtime (llvmlite itself maps a W+X page for libffi)."""
    path = tmp_path / "stub.o"
    path.write_bytes(stub_object)
    script = f"""
import re
from ffm_runtime._loader import load_object
from ffm_runtime._bootstrap import resolve_import
loaded = load_object(open({str(path)!r}, "rb").read(), resolve_import, "stub.o")
assert loaded.symbols
bad = [line for line in open("/proc/self/maps") if re.search(r" [r-]wx", line)]
print(bad)
raise SystemExit(1 if bad else 0)
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_data_relocations_and_writable_sections() -> None:
    """A pointer table (R_X86_64_64 into a writable section) points at the function."""
    module = ir.Module()
    module.triple = TRIPLE
    fn = ir.Function(module, ir.FunctionType(ir.IntType(32), []), "answer")
    ir.IRBuilder(fn.append_basic_block()).ret(ir.Constant(ir.IntType(32), 42))
    table = ir.GlobalVariable(module, ir.PointerType(), "table")
    table.initializer = fn
    counter = ir.GlobalVariable(module, ir.IntType(64), "counter")
    counter.initializer = ir.Constant(ir.IntType(64), 7)
    loaded = load_object(compile_object(str(module), TRIPLE), resolve_import, "mem")
    assert ctypes.c_void_p.from_address(loaded.symbols["table"]).value == loaded.symbols["answer"]
    assert ctypes.CFUNCTYPE(ctypes.c_int)(loaded.symbols["answer"])() == 42
    assert mapping_permissions(loaded.symbols["counter"]) == "rw-p"
    assert mapping_permissions(loaded.symbols["answer"]) == "r-xp"


def test_registry_verifies_hash(tmp_path: Path, stub_object: bytes) -> None:
    tampered = bytearray(stub_object)
    tampered[-1] ^= 0xFF
    manifest = write_package(tmp_path, bytes(tampered), hashlib.sha256(stub_object).hexdigest())
    registry = StubRegistry()
    registry.add_manifest(str(manifest))
    with pytest.raises(StubLoadError, match=r"stubs-x86_64-linux\.o does not match its manifest"):
        registry.stub_address(KEY, "x86_64-linux", bound=True)


def test_registry_refuses_missing_target(tmp_path: Path, stub_object: bytes) -> None:
    registry = StubRegistry()
    registry.add_manifest(str(write_package(tmp_path, stub_object)))
    with pytest.raises(StubLoadError, match="has stubs for x86_64-linux but not for aarch64-linux"):
        registry.stub_address(KEY, "aarch64-linux", bound=True)


def test_registry_loads_each_object_once_across_threads(tmp_path: Path, stub_object: bytes) -> None:
    registry = StubRegistry()
    registry.add_manifest(str(write_package(tmp_path, stub_object)))
    addresses: list[int | None] = []
    barrier = threading.Barrier(8)

    def link() -> None:
        barrier.wait()
        addresses.append(registry.stub_address(KEY, "x86_64-linux", bound=True))

    threads = [threading.Thread(target=link) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(addresses)) == 1 and addresses[0]
    assert len(registry._objects) == 1


def first_relocation_offset(data: bytes) -> int:
    obj = _elf.parse(data)
    rela = next(s for s in obj.sections if s.type == _elf.SHT_RELA and s.name == ".rela.text")
    return rela.offset


def test_unknown_relocation_type_is_refused(stub_object: bytes) -> None:
    data = bytearray(stub_object)
    at = first_relocation_offset(stub_object) + 8  # r_info of the first entry
    info = struct.unpack_from("<Q", data, at)[0]
    struct.pack_into("<Q", data, at, (info & ~0xFFFFFFFF) | 99)
    with pytest.raises(StubLoadError, match="unknown x86_64 relocation type 99"):
        load_object(bytes(data), resolve_import, "bad.o")


def test_relocation_symbol_out_of_range_is_refused(stub_object: bytes) -> None:
    data = bytearray(stub_object)
    at = first_relocation_offset(stub_object) + 8
    info = struct.unpack_from("<Q", data, at)[0]
    struct.pack_into("<Q", data, at, (0xFFFF << 32) | (info & 0xFFFFFFFF))
    with pytest.raises(StubLoadError, match="symbol index 65535 out of range"):
        load_object(bytes(data), resolve_import, "bad.o")


def test_imports_outside_the_contract_are_refused() -> None:
    module = ir.Module()
    module.triple = TRIPLE
    system = ir.Function(module, ir.FunctionType(ir.IntType(32), [ir.PointerType()]), "system")
    fn = ir.Function(module, ir.FunctionType(ir.IntType(32), [ir.PointerType()]), "evil")
    builder = ir.IRBuilder(fn.append_basic_block())
    builder.ret(builder.call(system, [fn.args[0]]))
    with pytest.raises(StubLoadError, match="undefined symbol 'system' is not allowed"):
        load_object(compile_object(str(module), TRIPLE), resolve_import, "evil.o")


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d[:10], "too short for an ELF header"),
        (lambda d: b"\x7fELG" + d[4:], "bad magic"),
        (lambda d: d[:4] + b"\x01" + d[5:], "only 64-bit little-endian"),
        (lambda d: d[:16] + b"\x02\x00" + d[18:], "is not ET_REL"),
        (lambda d: d[:18] + b"\x03\x00" + d[20:], "e_machine 3 is not supported"),
        (lambda d: d[:40] + struct.pack("<Q", len(d)) + d[48:], "section header table"),
        (lambda d: d[:62] + struct.pack("<H", 999) + d[64:], "section name table index 999"),
        (lambda d: d[: len(d) // 2], "outside the file"),
    ],
    ids=["short", "magic", "class", "type", "machine", "shoff", "shstrndx", "truncated"],
)
def test_malformed_objects_are_refused(stub_object: bytes, mutate: object, message: str) -> None:
    with pytest.raises(StubLoadError, match=message):
        load_object(mutate(stub_object), resolve_import, "bad.o")  # type: ignore[operator]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            '{"format": 2, "package": "pkg", "generator": "hatch-ffm 0.2.0", "objects": [], '
            '"stubs": {"k": "evil"}}',
            "malformed stub symbol",
        ),
        (
            '{"format": 2, "package": "pkg", "generator": "hatch-ffm 0.2.0", "objects": [{"target": '
            '"x86_64-linux", "triple": "t", "file": "../../etc/passwd", "sha256": "00"}], "stubs": {}}',
            "malformed object entry",
        ),
    ],
    ids=["symbol", "path"],
)
def test_malformed_manifests_are_refused(text: str, message: str) -> None:
    """(Every other way a manifest can be wrong: tests/test_manifests.py.)"""
    with pytest.raises(StubLoadError, match=message):
        Manifest.from_json(text, "manifest.json")


def test_falls_back_to_a_file_backed_mapping(tmp_path: Path, stub_object: bytes) -> None:
    """Where mprotect(PROT_EXEC) is refused (deny_execmem, MemoryDenyWriteExecute)."""
    path = tmp_path / "stub.o"
    path.write_bytes(stub_object)
    script = f"""
import errno, re
from ffm_runtime import _execmem
from ffm_runtime._loader import load_object
from ffm_runtime._bootstrap import resolve_import
_execmem._make_executable = lambda address, length: errno.EACCES  # as under deny_execmem
loaded = load_object(open({str(path)!r}, "rb").read(), resolve_import, "stub.o")
address = min(loaded.symbols.values())
for line in open("/proc/self/maps"):
    span, perms = line.split()[:2]
    start, end = (int(x, 16) for x in span.split("-"))
    if start <= address < end:
        print(loaded.method, perms, line.split()[-2:])
bad = [line for line in open("/proc/self/maps") if re.search(r" [r-]wx", line)]
raise SystemExit(1 if bad else 0)
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("memfd r-xp") and "/memfd:ffm-stubs" in result.stdout


def test_explains_when_no_executable_memory_can_be_had(tmp_path: Path, stub_object: bytes) -> None:
    script = f"""
import errno, os
from ffm_runtime import StubLoadError, _execmem
from ffm_runtime._loader import load_object
from ffm_runtime._bootstrap import resolve_import
_execmem._make_executable = lambda address, length: errno.EACCES
def no_memfd(*args):
    raise OSError(errno.ENOSYS, "memfd_create not available")
os.memfd_create = no_memfd
try:
    load_object({stub_object!r}, resolve_import, "stub.o")
except StubLoadError as exc:
    print(exc)
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=False)
    assert (
        "refuses executable anonymous memory (SELinux deny_execmem or systemd "
        "MemoryDenyWriteExecute?) and memfd_create, the fallback, failed" in result.stdout
    )


def test_oversized_objects_are_refused(stub_object: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    from ffm_runtime import _link

    monkeypatch.setattr(_link, "MAX_IMAGE_SIZE", 64)
    with pytest.raises(StubLoadError, match=r"the object would map \d+ bytes, more than 64"):
        load_object(stub_object, resolve_import, "big.o")


def test_stubs_and_accelerators_run_from_a_file_backed_mapping(stub_site: Path) -> None:
    """Under the memfd fallback the code pages come from a file (writable data, the slots of
    upcall trampolines, stay on their own anonymous pages): downcalls and upcalls work as
    usual."""
    import os

    result = subprocess.run(
        [sys.executable, str(SCRIPTS / "memfd_calls.py"), str(stub_site)],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "FFM_ENABLE_NATIVE_ACCESS": "ALL-UNNAMED"},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.split() == ["True", "['memfd']"], result.stdout + result.stderr
