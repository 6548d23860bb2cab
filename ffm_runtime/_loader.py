"""Load a stub object into memory: lay out sections, resolve, relocate, seal.

Policy on top of the parser (:mod:`._elf`), the relocation appliers
(:mod:`._reloc_x86_64`) and the memory mapper (:mod:`._execmem`).  The code
region is written while read+write and sealed read+execute before anything in
it can run; writable data sections, if an object has any, live on separate pages.
"""

from __future__ import annotations

from . import _elf, _execmem, _reloc_aarch64, _reloc_x86_64
from ._errors import StubLoadError
from ._records import Record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from types import ModuleType
    from typing import Final

__all__ = ["LoadedObject", "load_object"]

_ARCHES: dict[int, ModuleType] = {_elf.EM_X86_64: _reloc_x86_64, _elf.EM_AARCH64: _reloc_aarch64}
_SKIPPED_SECTIONS = frozenset({".eh_frame", ".note.GNU-stack", ".comment"})
_GOT_ENTRY = 8
#: Upper bound for everything one object maps (stubs take a few KiB per call shape).
MAX_IMAGE_SIZE = 256 << 20


class LoadedObject(Record):
    """An object mapped into this process; ``symbols`` maps global names to addresses."""

    __slots__ = ("region", "sections", "symbols")

    def __init__(self, symbols: dict[str, int], region: _execmem.Region, sections: dict[str, int]) -> None:
        self.symbols: Final = symbols
        self.region: Final = region
        #: address of every loaded section, by name (for tests and diagnostics)
        self.sections: Final = sections

    @property
    def method(self) -> str:
        """How the code was made executable: ``mprotect`` or ``memfd`` (the fallback)."""
        return self.region.method


def _align(value: int, alignment: int) -> int:
    return (value + alignment - 1) // alignment * alignment


def load_object(
    data: bytes, resolve: Callable[[str], int | None], path: str, machine: int = _elf.EM_X86_64
) -> LoadedObject:
    """Load ``data`` (an ELF relocatable object) and return its global symbols.

    ``resolve`` maps an undefined symbol name to its address, or ``None`` when the
    name is not allowed or not found.  Any problem is a :class:`StubLoadError`.
    """
    try:
        return _load(data, resolve, path, machine)
    except (_elf.ElfError, _reloc_x86_64.RelocationError, _reloc_aarch64.RelocationError) as exc:
        raise StubLoadError(f"cannot load stub object {path}: {exc}", path) from exc


def _load(data: bytes, resolve: Callable[[str], int | None], path: str, machine: int) -> LoadedObject:
    obj = _elf.parse(data, machines=(machine,))
    arch = _ARCHES.get(obj.machine)
    if arch is None:
        raise _elf.ElfError(f"no relocation support for machine {obj.machine}")

    loaded = [
        s
        for s in obj.sections
        if s.is_alloc and s.type in (_elf.SHT_PROGBITS, _elf.SHT_NOBITS) and s.name not in _SKIPPED_SECTIONS
    ]
    code = [s for s in loaded if not s.flags & _elf.SHF_WRITE]
    data_sections = [s for s in loaded if s.flags & _elf.SHF_WRITE]
    loaded_ids = {s.index for s in loaded}

    # Which undefined symbols need a GOT slot or a trampoline.
    got_names: list[str] = []
    plt_names: list[str] = []
    externals: dict[str, int] = {}
    for target_index, relocations in obj.relocations.items():
        if target_index not in loaded_ids:
            continue
        for rel in relocations:
            symbol = obj.symbols[rel.symbol]
            if symbol.is_undefined:
                if not symbol.name:
                    raise _elf.ElfError("relocation against an unnamed undefined symbol")
                if symbol.name not in externals:
                    address = resolve(symbol.name)
                    if address is None:
                        raise _elf.ElfError(
                            f"undefined symbol {symbol.name!r} is not allowed in stubs or not found"
                        )
                    externals[symbol.name] = address
                if arch.needs_plt(rel.type) and symbol.name not in plt_names:
                    plt_names.append(symbol.name)
            elif symbol.section != _elf.SHN_ABS and symbol.section not in loaded_ids:
                raise _elf.ElfError(
                    f"relocation against symbol {symbol.name!r} in a section that is not loaded"
                )
            key = symbol.name or f"#{rel.symbol}"
            if arch.needs_got(rel.type) and key not in got_names:
                got_names.append(key)

    # Layout: code sections, trampolines, GOT | page break | writable sections.
    offsets: dict[int, int] = {}
    cursor = 0
    for section in code:
        cursor = _align(cursor, section.alignment)
        offsets[section.index] = cursor
        cursor += section.size
    cursor = _align(cursor, 16)
    plt_base = cursor
    cursor += len(plt_names) * arch.TRAMPOLINE_SIZE
    cursor = _align(cursor, _GOT_ENTRY)
    got_base = cursor
    cursor += len(got_names) * _GOT_ENTRY
    code_size = cursor
    cursor = _align(cursor, _execmem.PAGE_SIZE)
    for section in data_sections:
        cursor = _align(cursor, section.alignment)
        offsets[section.index] = cursor
        cursor += section.size
    total = cursor
    if total > MAX_IMAGE_SIZE:
        raise _elf.ElfError(f"the object would map {total} bytes, more than {MAX_IMAGE_SIZE}")

    region = _execmem.allocate(total)
    try:
        base = region.address
        image = bytearray(_align(max(total, 1), _execmem.PAGE_SIZE))
        for section in loaded:
            start = offsets[section.index]
            image[start : start + section.size] = obj.section_bytes(section)

        def symbol_address(index: int) -> int:
            symbol = obj.symbols[index]
            if symbol.is_undefined:
                return externals[symbol.name]
            if symbol.section == _elf.SHN_ABS:
                return symbol.value
            return base + offsets[symbol.section] + symbol.value

        plt_slots = {name: base + plt_base + i * arch.TRAMPOLINE_SIZE for i, name in enumerate(plt_names)}
        got_slots = {name: base + got_base + i * _GOT_ENTRY for i, name in enumerate(got_names)}
        for i, name in enumerate(plt_names):
            start = plt_base + i * arch.TRAMPOLINE_SIZE
            image[start : start + arch.TRAMPOLINE_SIZE] = arch.trampoline(externals[name])
        got_values: dict[str, int] = {}

        for target_index, relocations in obj.relocations.items():
            if target_index not in loaded_ids:
                continue
            section = obj.sections[target_index]
            section_start = offsets[target_index]
            if section.type == _elf.SHT_NOBITS and relocations:
                raise _elf.ElfError(f"relocations against the empty section {section.name}")
            for rel in relocations:
                symbol = obj.symbols[rel.symbol]
                key = symbol.name or f"#{rel.symbol}"
                address = symbol_address(rel.symbol)
                got_entry = plt_entry = None
                if arch.needs_got(rel.type):
                    got_entry = got_slots[key]
                    got_values[key] = address
                if arch.needs_plt(rel.type):
                    plt_entry = plt_slots.get(symbol.name, address) if symbol.is_undefined else address
                arch.apply(
                    image,
                    section_start + rel.offset,
                    section_start + section.size,
                    rel.type,
                    address,
                    rel.addend,
                    base + section_start + rel.offset,
                    got_entry,
                    plt_entry,
                )
        for name, value in got_values.items():
            slot = got_slots[name] - base
            image[slot : slot + _GOT_ENTRY] = value.to_bytes(_GOT_ENTRY, "little")

        region.write(0, image[:total] if total else b"")
        region.seal(code_size)
    except BaseException:
        region.release()
        raise

    symbols = {
        s.name: base + offsets[s.section] + s.value
        for s in obj.symbols
        if s.binding in (_elf.STB_GLOBAL, _elf.STB_WEAK)
        and not s.is_undefined
        and s.section in offsets
        and s.name
    }
    sections = {s.name: base + offsets[s.index] for s in loaded}
    return LoadedObject(symbols, region, sections)
