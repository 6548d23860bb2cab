"""The calling side of the conformance suite: descriptors for generated signatures, random
arguments, and the echo check.  Imports only ffm_runtime and the generator, so it also runs
in an emulated interpreter (see ``run.py``)."""

from __future__ import annotations

import random
import struct
from pathlib import Path
from typing import Any

from generator import SIZES, Signature, struct_offsets

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

LAYOUTS = {"I": JAVA_INT, "F": JAVA_FLOAT, "D": JAVA_DOUBLE, "P": ADDRESS}
STACK_PREFIX = [JAVA_LONG] * 8 + [JAVA_DOUBLE] * 8


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
        return [
            result.get(ADDRESS, o).address if f == "P" else result.get(LAYOUTS[f], o)
            for o, f in zip(offsets, sig.fields, strict=True)
        ]

    def check(self, sig: Signature) -> None:
        handle = Linker.native_linker().downcall_handle(self.lookup.find(sig.name), descriptor_of(sig))
        with Arena.of_confined() as arena:
            pairs = [self.argument(arena, sig, p) for p in sig.params]
            args = [a for a, _ in pairs]
            if sig.stack:
                args = (
                    [self.rng.randrange(-(2**63), 2**63) for _ in range(8)]
                    + [self.rng.uniform(-1e9, 1e9) for _ in range(8)]
                    + args
                )
            if sig.returns and sig.params[0] == "S":
                args.insert(0, arena)
            result = handle(*args)
            if not sig.returns:
                assert result is None, sig.name
            else:
                assert self.observed(sig, result) == pairs[0][1], sig.name
