"""Conformance, after the JDK's TestDowncall/TestDowncallStack: generated C functions for
thousands of signatures (0-3 parameters of int, float, double, pointer and structs of 1-3
such fields), compiled by cc, registered through a Feature, built into a wheel by the hook,
and called through their handles with random arguments; each echoes parameter 0."""

from __future__ import annotations

import json
import os
import random
import shutil
import struct
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import build_wheel, compile_c, unpack_wheel

import ffm_runtime as ffm
from ffm_runtime import (
    ADDRESS,
    JAVA_DOUBLE,
    JAVA_FLOAT,
    JAVA_INT,
    JAVA_LONG,
    Arena,
    FunctionDescriptor,
    Linker,
    MemoryLayout,
    MemorySegment,
)

sys.path.insert(0, str(Path(__file__).parent / "conformance"))
from generator import SIZES, Signature, c_file, sample, signatures, struct_offsets

SEED = int(os.environ.get("FFM_FUZZ_SEED", "20261125"))
LAYOUTS = {"I": JAVA_INT, "F": JAVA_FLOAT, "D": JAVA_DOUBLE, "P": ADDRESS}
STACK_PREFIX = [JAVA_LONG] * 8 + [JAVA_DOUBLE] * 8

FEATURE = '''
import json
from pathlib import Path

from ffm_runtime import *
from hatch_ffm import RuntimeForeignAccess


class Conformance:
    def during_setup(self, access):
        names = {name: value for name, value in globals().items() if name.isupper()
                 or name in ("FunctionDescriptor", "MemoryLayout")}
        for text in json.loads(Path(__file__).with_name("signatures.json").read_text()):
            RuntimeForeignAccess.register_for_downcall(eval(text, names))
'''


def layout_of(sig: Signature, param: str) -> MemoryLayout:
    if param != "S":
        return LAYOUTS[param]
    offsets, size, _ = struct_offsets(sig.fields)
    members: list[MemoryLayout] = []
    position = 0
    for offset, field in zip(offsets, sig.fields, strict=True):
        if offset > position:
            members.append(MemoryLayout.padding_layout(offset - position))
        members.append(LAYOUTS[field].with_name(f"p{len(members)}"))
        position = offset + SIZES[field]
    if size > position:
        members.append(MemoryLayout.padding_layout(size - position))
    return MemoryLayout.struct_layout(*members)


def descriptor_of(sig: Signature) -> FunctionDescriptor:
    params = [layout_of(sig, p) for p in sig.params]
    if sig.stack:
        params = STACK_PREFIX + params
    result = layout_of(sig, sig.params[0]) if sig.returns else None
    return FunctionDescriptor(result, params)


def build(tmp: Path, sigs: list[Signature]) -> Path:
    """Compile the C side, build the wheel with the hook, install it; return the library."""
    library = compile_c(_write(tmp / "conformance.c", c_file(sigs)), tmp / "libconformance.so")
    project = tmp / "ffm_conformance"
    package = project / "ffm_conformance"
    package.mkdir(parents=True)
    (project / "pyproject.toml").write_text(textwrap.dedent("""
        [build-system]
        requires = ["hatchling", "hatch-ffm[build]"]
        build-backend = "hatchling.build"
        [project]
        name = "ffm-conformance"
        version = "1.0"
        dependencies = ["hatch-ffm"]
        [tool.hatch.build.targets.wheel.hooks.ffm]
        features = ["ffm_conformance.features:Conformance"]
    """))
    (package / "__init__.py").write_text("")
    (package / "features.py").write_text(FEATURE)
    (package / "signatures.json").write_text(json.dumps(
        sorted({repr(descriptor_of(s)) for s in sigs})))
    build_wheel(project, tmp / "dist")
    site = tmp / "site"
    (wheel,) = (tmp / "dist").glob("*.whl")
    unpack_wheel(wheel, site)
    return library


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def random_value(rng: random.Random, field: str) -> Any:
    if field == "I":
        return rng.randrange(-(2**31), 2**31)
    if field == "F":
        return struct.unpack("<f", struct.pack("<f", rng.uniform(-1e6, 1e6)))[0]
    if field == "D":
        return rng.uniform(-1e12, 1e12)
    return rng.getrandbits(64)


class Caller:
    def __init__(self, library: Path, seed: int) -> None:
        ffm.load_library(str(library))
        self.lookup = ffm.SymbolLookup.loader_lookup()
        self.rng = random.Random(seed)

    def argument(self, arena: Arena, sig: Signature, param: str) -> tuple[Any, Any]:
        """(the argument, what the echo must equal)."""
        if param in LAYOUTS:
            value = random_value(self.rng, param)
            if param == "P":
                return MemorySegment.of_address(value), value
            return value, value
        layout = layout_of(sig, param)
        segment = arena.allocate(layout)
        offsets, _, _ = struct_offsets(sig.fields)
        values = []
        for offset, field in zip(offsets, sig.fields, strict=True):
            value = random_value(self.rng, field)
            values.append(value)
            if field == "P":
                segment.set(ADDRESS, offset, MemorySegment.of_address(value))
            else:
                segment.set(LAYOUTS[field], offset, value)
        return segment, values

    @staticmethod
    def observed(sig: Signature, result: Any) -> Any:
        param = sig.params[0]
        if param == "P":
            return result.address
        if param != "S":
            return result
        offsets, _, _ = struct_offsets(sig.fields)
        return [result.get(ADDRESS, o).address if f == "P" else result.get(LAYOUTS[f], o)
                for o, f in zip(offsets, sig.fields, strict=True)]

    def check(self, sig: Signature) -> None:
        handle = Linker.native_linker().downcall_handle(self.lookup.find(sig.name),
                                                        descriptor_of(sig))
        with Arena.of_confined() as arena:
            pairs = [self.argument(arena, sig, p) for p in sig.params]
            args = [a for a, _ in pairs]
            if sig.stack:
                args = [self.rng.randrange(-(2**63), 2**63) for _ in range(8)] + [
                    self.rng.uniform(-1e9, 1e9) for _ in range(8)] + args
            if sig.returns and sig.params[0] == "S":
                args.insert(0, arena)
            result = handle(*args)
            if not sig.returns:
                assert result is None, sig.name
            else:
                assert self.observed(sig, result) == pairs[0][1], sig.name


def conformance_sigs(normal: int, stack: int) -> list[Signature]:
    return sample(signatures(), normal) + sample(signatures(stack=True), stack)


@pytest.fixture(scope="module")
def default_suite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, list[Signature]]]:
    tmp = tmp_path_factory.mktemp("conformance")
    sigs = conformance_sigs(2000, 300)
    library = build(tmp, sigs)
    sys.path.insert(0, str(tmp / "site"))
    try:
        yield library, sigs
    finally:
        sys.path.remove(str(tmp / "site"))
        shutil.rmtree(tmp, ignore_errors=True)


def test_generated_signatures(default_suite: tuple[Path, list[Signature]]) -> None:
    library, sigs = default_suite
    print(f"conformance: {len(sigs)} signatures, seed {SEED}")
    assert len([s for s in sigs if not s.stack]) >= 2000
    caller = Caller(library, SEED)
    for sig in sigs:
        caller.check(sig)


def test_signature_counts_match_the_jdk_generator() -> None:
    everything = signatures()
    assert len(everything) == 12_097  # CallGeneratorHelper's count for 3 params, 3 fields
    # 85 parameter lists of int/float/double/pointer, void or echoing: 169 without structs
    assert sum(1 for s in everything if "S" not in s.params) == 169


@pytest.mark.slow
def test_all_generated_signatures(tmp_path: Path) -> None:
    sigs = signatures() + signatures(stack=True)
    library = build(tmp_path, sigs)
    sys.path.insert(0, str(tmp_path / "site"))
    try:
        caller = Caller(library, SEED)
        for sig in sigs:
            caller.check(sig)
    finally:
        sys.path.remove(str(tmp_path / "site"))
