"""A strict reader for ELF64 little-endian relocatable objects (``ET_REL``).

Parsing only: every offset, size and index is checked against the file before
it is used, and anything out of range raises :class:`ElfError`.  What to map
and how to relocate is decided elsewhere (:mod:`ffm_runtime._loader`).
"""

from __future__ import annotations

import struct

from ._records import Record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Final

__all__ = [
    "EM_AARCH64",
    "EM_X86_64",
    "ElfError",
    "ElfObject",
    "Relocation",
    "Section",
    "Symbol",
    "parse",
]

EM_X86_64: Final = 62
EM_AARCH64: Final = 183

SHT_NULL: Final = 0
SHT_PROGBITS: Final = 1
SHT_SYMTAB: Final = 2
SHT_STRTAB: Final = 3
SHT_RELA: Final = 4
SHT_NOBITS: Final = 8
SHT_REL: Final = 9

SHF_WRITE: Final = 0x1
SHF_ALLOC: Final = 0x2
SHF_EXECINSTR: Final = 0x4

SHN_UNDEF: Final = 0
SHN_LORESERVE: Final = 0xFF00
SHN_ABS: Final = 0xFFF1
SHN_COMMON: Final = 0xFFF2
SHN_XINDEX: Final = 0xFFFF

STB_LOCAL: Final = 0
STB_GLOBAL: Final = 1
STB_WEAK: Final = 2
STT_SECTION: Final = 3

_EHDR = struct.Struct("<16sHHIQQQIHHHHHH")
_SHDR = struct.Struct("<IIQQQQIIQQ")
_SYM = struct.Struct("<IBBHQQ")
_RELA = struct.Struct("<QQq")

#: Upper bound for any one section (stubs are a few KiB; this only stops absurd sizes).
MAX_SECTION_SIZE: Final = 64 << 20
MAX_ALIGNMENT: Final = 1 << 16


class ElfError(ValueError):
    """The bytes are not a well-formed ELF relocatable object of the supported kind."""


class Section(Record):
    __slots__ = (
        "alignment",
        "entry_size",
        "flags",
        "index",
        "info",
        "link",
        "name",
        "offset",
        "size",
        "type",
    )

    def __init__(  # noqa: PLR0913, PLR0917  (a record: one argument per field)
        self,
        index: int,
        name: str,
        type: int,
        flags: int,
        offset: int,
        size: int,
        link: int,
        info: int,
        alignment: int,
        entry_size: int,
    ) -> None:
        self.index: Final = index
        self.name: Final = name
        self.type: Final = type
        self.flags: Final = flags
        self.offset: Final = offset
        self.size: Final = size
        self.link: Final = link
        self.info: Final = info
        self.alignment: Final = alignment
        self.entry_size: Final = entry_size

    @property
    def is_alloc(self) -> bool:
        return bool(self.flags & SHF_ALLOC)


class Symbol(Record):
    __slots__ = ("binding", "index", "name", "section", "size", "type", "value")

    def __init__(  # noqa: PLR0913, PLR0917  (a record: one argument per field)
        self, index: int, name: str, binding: int, type: int, section: int, value: int, size: int
    ) -> None:
        self.index: Final = index
        self.name: Final = name
        self.binding: Final = binding
        self.type: Final = type
        self.section: Final = section
        self.value: Final = value
        self.size: Final = size

    @property
    def is_undefined(self) -> bool:
        return self.section == SHN_UNDEF


class Relocation(Record):
    __slots__ = ("addend", "offset", "symbol", "type")

    def __init__(self, offset: int, type: int, symbol: int, addend: int) -> None:
        self.offset: Final = offset
        self.type: Final = type
        self.symbol: Final = symbol
        self.addend: Final = addend


class ElfObject(Record):
    __slots__ = ("data", "machine", "relocations", "sections", "symbols")

    def __init__(
        self,
        machine: int,
        sections: tuple[Section, ...],
        symbols: tuple[Symbol, ...],
        relocations: dict[int, tuple[Relocation, ...]],
        data: bytes,
    ) -> None:
        self.machine: Final = machine
        self.sections: Final = sections
        self.symbols: Final = symbols
        #: target section index -> relocations applying to it
        self.relocations: Final = relocations
        self.data: Final = data

    def section_bytes(self, section: Section) -> bytes:
        if section.type == SHT_NOBITS:
            return bytes(section.size)
        return self.data[section.offset : section.offset + section.size]


def _c_string(table: bytes, offset: int, what: str) -> str:
    if offset >= len(table) and not (offset == 0 and not table):
        raise ElfError(f"{what}: name offset {offset} outside string table of {len(table)} bytes")
    if not table:
        return ""
    end = table.find(b"\0", offset)
    if end < 0:
        raise ElfError(f"{what}: name at offset {offset} is not NUL-terminated")
    try:
        return table[offset:end].decode("ascii")
    except UnicodeDecodeError as exc:
        raise ElfError(f"{what}: name at offset {offset} is not ASCII") from exc


def _slice(data: bytes, offset: int, size: int, what: str) -> bytes:
    if offset < 0 or size < 0 or offset + size > len(data):
        raise ElfError(f"{what}: bytes {offset}..{offset + size} outside the file of {len(data)} bytes")
    return data[offset : offset + size]


def parse(data: bytes, machines: tuple[int, ...] = (EM_X86_64, EM_AARCH64)) -> ElfObject:
    """Parse and validate ``data``; raise :class:`ElfError` on any inconsistency."""
    if len(data) < _EHDR.size:
        raise ElfError(f"file of {len(data)} bytes is too short for an ELF header")
    (
        ident,
        e_type,
        e_machine,
        e_version,
        _entry,
        _phoff,
        e_shoff,
        _flags,
        e_ehsize,
        _phentsize,
        e_phnum,
        e_shentsize,
        e_shnum,
        e_shstrndx,
    ) = _EHDR.unpack_from(data)
    if ident[:4] != b"\x7fELF":
        raise ElfError("not an ELF file (bad magic)")
    if ident[4] != 2 or ident[5] != 1 or ident[6] != 1:
        raise ElfError("only 64-bit little-endian ELF version 1 is supported")
    if e_type != 1:
        raise ElfError(f"e_type {e_type} is not ET_REL (a relocatable object)")
    if e_machine not in machines:
        raise ElfError(f"e_machine {e_machine} is not supported")
    if e_version != 1 or e_ehsize != _EHDR.size or e_shentsize != _SHDR.size:
        raise ElfError("unexpected ELF header sizes or version")
    if e_phnum != 0:
        raise ElfError("a relocatable object must not have program headers")
    if e_shnum == 0 or e_shnum >= SHN_LORESERVE:
        raise ElfError(f"unsupported section count {e_shnum}")
    if e_shstrndx >= e_shnum:
        raise ElfError(f"section name table index {e_shstrndx} out of range")
    table = _slice(data, e_shoff, e_shnum * _SHDR.size, "section header table")

    raw = [_SHDR.unpack_from(table, i * _SHDR.size) for i in range(e_shnum)]
    for index, (_n, sh_type, _f, _a, offset, size, _l, _i, align, _e) in enumerate(raw):
        if sh_type not in (SHT_NOBITS, SHT_NULL):
            _slice(data, offset, size, f"section {index}")
        if size > MAX_SECTION_SIZE:
            raise ElfError(f"section {index} size {size} is too large")
        if align > MAX_ALIGNMENT or (align and align & (align - 1)):
            raise ElfError(f"section {index} alignment {align} is invalid")
    names = _slice(data, raw[e_shstrndx][4], raw[e_shstrndx][5], "section name table")
    if raw[e_shstrndx][1] != SHT_STRTAB:
        raise ElfError("section name table is not a string table")
    sections = tuple(
        Section(
            i, _c_string(names, r[0], f"section {i}"), r[1], r[2], r[4], r[5], r[6], r[7], max(r[8], 1), r[9]
        )
        for i, r in enumerate(raw)
    )

    symtabs = [s for s in sections if s.type == SHT_SYMTAB]
    if len(symtabs) != 1:
        raise ElfError(f"expected one symbol table, found {len(symtabs)}")
    symtab = symtabs[0]
    if symtab.entry_size != _SYM.size or symtab.size % _SYM.size:
        raise ElfError("symbol table entry size is wrong")
    if symtab.link >= len(sections) or sections[symtab.link].type != SHT_STRTAB:
        raise ElfError("symbol table does not link to a string table")
    strtab = data[sections[symtab.link].offset :][: sections[symtab.link].size]
    symbols = []
    for i in range(symtab.size // _SYM.size):
        st_name, st_info, _other, st_shndx, st_value, st_size = _SYM.unpack_from(
            data, symtab.offset + i * _SYM.size
        )
        if st_shndx in {SHN_COMMON, SHN_XINDEX}:
            raise ElfError(f"symbol {i}: common or extended-index symbols are not supported")
        if st_shndx != SHN_ABS and st_shndx >= len(sections):
            raise ElfError(f"symbol {i}: section index {st_shndx} out of range")
        if st_shndx not in (SHN_UNDEF, SHN_ABS):
            target = sections[st_shndx]
            if st_value > target.size or st_size > target.size - st_value:
                raise ElfError(f"symbol {i}: value {st_value}+{st_size} outside its section")
        symbols.append(
            Symbol(
                i,
                _c_string(strtab, st_name, f"symbol {i}"),
                st_info >> 4,
                st_info & 0xF,
                st_shndx,
                st_value,
                st_size,
            )
        )

    relocations: dict[int, tuple[Relocation, ...]] = {}
    for section in sections:
        if section.type == SHT_REL:
            raise ElfError(f"section {section.name}: REL relocations are not supported")
        if section.type != SHT_RELA:
            continue
        if section.link != symtab.index:
            raise ElfError(f"section {section.name}: relocations must use the symbol table")
        if section.info == 0 or section.info >= len(sections) or section.info == section.index:
            raise ElfError(f"section {section.name}: target section {section.info} is invalid")
        if section.entry_size != _RELA.size or section.size % _RELA.size:
            raise ElfError(f"section {section.name}: relocation entry size is wrong")
        if section.info in relocations:
            raise ElfError(f"section {section.info} has two relocation sections")
        target = sections[section.info]
        entries = []
        for i in range(section.size // _RELA.size):
            r_offset, r_info, r_addend = _RELA.unpack_from(data, section.offset + i * _RELA.size)
            sym_index, r_type = r_info >> 32, r_info & 0xFFFFFFFF
            if sym_index >= len(symbols):
                raise ElfError(f"{section.name}[{i}]: symbol index {sym_index} out of range")
            if r_offset >= max(target.size, 1) or r_offset > target.size:
                raise ElfError(f"{section.name}[{i}]: offset {r_offset} outside {target.name}")
            entries.append(Relocation(r_offset, r_type, sym_index, r_addend))
        relocations[section.info] = tuple(entries)
    return ElfObject(e_machine, sections, tuple(symbols), relocations, bytes(data))
