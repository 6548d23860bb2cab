"""AArch64: AAPCS64 lowering, cross-compiled stubs, and the loader's AArch64 relocations,
checked by decoding every relocated instruction of an object loaded on this (x86_64) host.
(The code is mapped and relocated for real, but not run: there is no AArch64 CPU here.)"""

from __future__ import annotations

import ctypes
import struct
import sys
from pathlib import Path

import pytest

from ffm_runtime import (
    ADDRESS,
    JAVA_BYTE,
    JAVA_DOUBLE,
    JAVA_FLOAT,
    JAVA_INT,
    JAVA_LONG,
    FunctionDescriptor,
    Linker,
    MemoryLayout,
    _elf,
    _reloc_aarch64,
    registration_key,
)
from ffm_runtime._bootstrap import resolve_import
from ffm_runtime._image import decode
from ffm_runtime._loader import load_object
from hatch_ffm._aapcs64 import classify, hfa
from hatch_ffm._compile import compile_object, verify_ir
from hatch_ffm._ir import build_stub_module
from hatch_ffm._lowering import Passing, Returning, Role, lower
from hatch_ffm._sysv import DOUBLE, FLOAT

TRIPLE = "aarch64-unknown-linux-gnu"
S3 = MemoryLayout.struct_layout(JAVA_BYTE, JAVA_BYTE, JAVA_BYTE)
S12 = MemoryLayout.struct_layout(JAVA_INT, JAVA_INT, JAVA_INT)
HFA3 = MemoryLayout.struct_layout(JAVA_FLOAT, JAVA_FLOAT, JAVA_FLOAT)
HFA_D4 = MemoryLayout.struct_layout(MemoryLayout.sequence_layout(4, JAVA_DOUBLE))
BIG = MemoryLayout.struct_layout(JAVA_LONG, JAVA_LONG, JAVA_LONG)
MIXED = MemoryLayout.struct_layout(JAVA_FLOAT, JAVA_INT)

SHAPES = [
    (FunctionDescriptor.of(S3, S3), ()),
    (FunctionDescriptor.of(S12, S12, HFA3), ()),
    (FunctionDescriptor.of(HFA_D4, HFA_D4, JAVA_DOUBLE), ()),
    (FunctionDescriptor.of(BIG, BIG, JAVA_INT), ()),
    (FunctionDescriptor.of(MIXED, MIXED), (Linker.Option.critical(),)),
    (FunctionDescriptor.of(ADDRESS, JAVA_INT, JAVA_INT), (Linker.Option.first_variadic_arg(1),)),
    (FunctionDescriptor.of_void(JAVA_INT), (Linker.Option.capture_call_state("errno"),)),
    (FunctionDescriptor.of(JAVA_LONG, ADDRESS), ()),
    (FunctionDescriptor.of(JAVA_FLOAT, JAVA_FLOAT, JAVA_BYTE, JAVA_DOUBLE), ()),
]


class TestLowering:
    def test_homogeneous_floating_point_aggregates(self) -> None:
        assert hfa(HFA3) == (FLOAT, 3)
        assert hfa(HFA_D4) == (DOUBLE, 4)
        assert hfa(MIXED) is None
        assert (
            hfa(MemoryLayout.struct_layout(JAVA_FLOAT, JAVA_FLOAT, JAVA_FLOAT, JAVA_FLOAT, JAVA_FLOAT))
            is None
        )
        assert [str(p.type) for p in classify(HFA3) or ()] == ["[3 x float]"]

    def test_small_and_large_composites(self) -> None:
        assert [str(p.type) for p in classify(S3) or ()] == ["i24"]
        assert [str(p.type) for p in classify(S12) or ()] == ["[2 x i64]"]
        assert classify(BIG) is None

    def test_passing_and_results(self) -> None:
        key = registration_key(FunctionDescriptor.of(BIG, BIG, S12))
        sig = lower(key, FunctionDescriptor.of(BIG, BIG, S12), (), "aarch64-linux")
        assert sig.result.passing is Returning.SRET
        assert sig.params[0].role is Role.ALLOCATOR
        assert [p.passing for p in sig.params] == [Passing.OBJECT, Passing.BYREF, Passing.PIECES]
        x86 = lower(key, FunctionDescriptor.of(BIG, BIG, S12), (), "x86_64-linux")
        assert [p.passing for p in x86.params] == [Passing.OBJECT, Passing.BYVAL, Passing.PIECES]


@pytest.fixture(scope="module")
def aarch64_object() -> bytes:
    sigs = [lower(registration_key(d, o), d, o, "aarch64-linux") for d, o in SHAPES]
    text = str(build_stub_module(sigs, TRIPLE))
    verify_ir(text)
    return compile_object(text, TRIPLE)


def test_object_is_aarch64(aarch64_object: bytes) -> None:
    obj = _elf.parse(aarch64_object)
    assert obj.machine == _elf.EM_AARCH64
    types = {r.type for rels in obj.relocations.values() for r in rels}
    assert {
        _reloc_aarch64.R_AARCH64_CALL26,
        _reloc_aarch64.R_AARCH64_ADR_GOT_PAGE,
        _reloc_aarch64.R_AARCH64_LD64_GOT_LO12_NC,
    } <= types


def sign_extend(value: int, bits: int) -> int:
    return value - (1 << bits) if value & (1 << (bits - 1)) else value


def test_every_relocated_instruction_points_where_it_should(aarch64_object: bytes) -> None:
    obj = _elf.parse(aarch64_object)
    loaded = load_object(aarch64_object, resolve_import, "stubs-aarch64.o", _elf.EM_AARCH64)
    base = loaded.region.address
    memory = ctypes.string_at(base, loaded.region.size)

    def word(address: int) -> int:
        return int(struct.unpack_from("<I", memory, address - base)[0])

    def quad(address: int) -> int:
        return int(struct.unpack_from("<Q", memory, address - base)[0])

    def symbol_address(index: int) -> int:
        symbol = obj.symbols[index]
        if symbol.is_undefined:
            address = resolve_import(symbol.name)
            assert address is not None
            return address
        return loaded.sections[obj.sections[symbol.section].name] + symbol.value

    checked = 0
    pages: dict[int, int] = {}
    for target_index, relocations in obj.relocations.items():
        section = obj.sections[target_index]
        if section.name not in loaded.sections:
            continue
        start = loaded.sections[section.name]
        for rel in relocations:
            place = start + rel.offset
            instruction = word(place)
            symbol = obj.symbols[rel.symbol]
            if rel.type == _reloc_aarch64.R_AARCH64_CALL26:
                destination = place + 4 * sign_extend(instruction & 0x03FFFFFF, 26)
                if symbol.is_undefined:  # through a trampoline: ldr x16, #8; br x16; .quad S
                    assert word(destination) == 0x58000050 and word(destination + 4) == 0xD61F0200
                    assert quad(destination + 8) == symbol_address(rel.symbol) + rel.addend
                else:
                    assert destination == symbol_address(rel.symbol) + rel.addend
            elif rel.type in (
                _reloc_aarch64.R_AARCH64_ADR_PREL_PG_HI21,
                _reloc_aarch64.R_AARCH64_ADR_GOT_PAGE,
            ):
                immlo, immhi = (instruction >> 29) & 3, (instruction >> 5) & 0x7FFFF
                page = (place & ~0xFFF) + (sign_extend((immhi << 2) | immlo, 21) << 12)
                pages[instruction & 0x1F] = page  # by destination register
                if rel.type == _reloc_aarch64.R_AARCH64_ADR_PREL_PG_HI21:
                    assert page == (symbol_address(rel.symbol) + rel.addend) & ~0xFFF
            elif rel.type == _reloc_aarch64.R_AARCH64_ADD_ABS_LO12_NC:
                low = (instruction >> 10) & 0xFFF
                assert low == (symbol_address(rel.symbol) + rel.addend) & 0xFFF
                page = pages[(instruction >> 5) & 0x1F]
                assert page + low == symbol_address(rel.symbol) + rel.addend
            elif rel.type == _reloc_aarch64.R_AARCH64_LD64_GOT_LO12_NC:
                entry = pages[(instruction >> 5) & 0x1F] + ((instruction >> 10) & 0xFFF) * 8
                assert quad(entry) == symbol_address(rel.symbol)  # the GOT slot
            else:
                continue
            checked += 1
    assert checked > 100


def test_unknown_aarch64_relocation_is_refused(aarch64_object: bytes) -> None:
    obj = _elf.parse(aarch64_object)
    rela = next(s for s in obj.sections if s.name == ".rela.text")
    data = bytearray(aarch64_object)
    info = struct.unpack_from("<Q", data, rela.offset + 8)[0]
    struct.pack_into("<Q", data, rela.offset + 8, (info & ~0xFFFFFFFF) | 1000)
    from ffm_runtime import StubLoadError

    with pytest.raises(StubLoadError, match="unknown AArch64 relocation type 1000"):
        load_object(bytes(data), resolve_import, "bad.o", _elf.EM_AARCH64)


def test_cross_target_wheel(tmp_path: Path) -> None:
    """One build, stubs for both targets, both platforms in the tag; it runs on this host."""
    import shutil
    import subprocess
    import zipfile

    from support import ROOT, build_wheel

    project = tmp_path / "example_project"
    shutil.copytree(ROOT / "example_project", project)
    pyproject = project / "pyproject.toml"
    pyproject.write_text(
        pyproject.read_text().replace(
            "[tool.hatch.build.targets.wheel.hooks.ffm]",
            '[tool.hatch.build.targets.wheel.hooks.ffm]\ntargets = ["native", "aarch64-linux"]',
        )
    )
    result = build_wheel(project, tmp_path / "dist")
    assert "stub(s) for x86_64-linux, aarch64-linux" in result.stdout + result.stderr
    (wheel,) = (tmp_path / "dist").glob("*.whl")
    assert wheel.name.endswith(
        "-cp310-abi3-manylinux_2_17_x86_64.manylinux2014_x86_64."
        "manylinux_2_17_aarch64.manylinux2014_aarch64.whl"
    )
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        archive.extractall(tmp_path / "site")
    assert {
        "example_project/_ffm/stubs-x86_64-linux.img",
        "example_project/_ffm/stubs-aarch64-linux.img",
    } <= names
    aarch64 = tmp_path / "site" / "example_project" / "_ffm" / "stubs-aarch64-linux.img"
    assert decode(aarch64.read_bytes(), _elf.EM_AARCH64).machine == _elf.EM_AARCH64
    run = subprocess.run(
        [sys.executable, "-m", "example_project"],
        capture_output=True,
        text=True,
        cwd=tmp_path / "site",
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr
