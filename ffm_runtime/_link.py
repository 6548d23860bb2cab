"""Link an ELF relocatable object into a stub image (:mod:`._image`), placed at address 0.

The build hook runs this on every object it compiles, so that loading needs no ELF at
all; the runtime runs it only for wheels of manifest format 2, which carry objects.

The layout is the loader's: code sections, then a trampoline per function called
directly (``CALL26``/``PLT32``), then the GOT, all read+execute once loaded; the writable
sections after a :data:`._image.LINK_PAGE` boundary.  A relocation whose value depends only
on distances inside the image (PC-relative, GOT- and page-relative: pages are 4 KiB
aligned wherever the image is placed) is applied here.  What depends on where things are
is left to run time, in two lists: *imports* (a GOT slot, a trampoline's target or an
absolute word naming a function or object of the interpreter) and *relatives* (an
absolute word naming a place in the image).  Relocations that would need more (a 32-bit
absolute address, a PC-relative reach to a name outside the image) are refused: LLVM
does not emit them for the small-code-model, position-independent objects hatch-ffm
compiles.
"""

from __future__ import annotations

from . import _elf, _reloc_aarch64, _reloc_x86_64
from ._image import LINK_PAGE, MAX_IMAGE_SIZE, Image

TYPE_CHECKING = False
if TYPE_CHECKING:
    from types import ModuleType

__all__ = ["LinkError", "link"]

_ARCHES: dict[int, ModuleType] = {_elf.EM_X86_64: _reloc_x86_64, _elf.EM_AARCH64: _reloc_aarch64}
_SKIPPED_SECTIONS = frozenset({".eh_frame", ".note.GNU-stack", ".comment"})
_GOT_ENTRY = 8


class LinkError(ValueError):
    """The object cannot be linked into an image."""


def _align(value: int, alignment: int) -> int:
    return (value + alignment - 1) // alignment * alignment


def link(data: bytes, machine: int) -> Image:  # noqa: PLR0912, PLR0915  (the loader's steps, in order)
    """The image of ``data``, an ELF relocatable object for ``machine``.

    Raises :class:`_elf.ElfError` for a malformed object, the architecture's
    ``RelocationError`` for a relocation that does not fit, :class:`LinkError` for one
    that cannot be linked ahead of time."""
    obj = _elf.parse(data, machines=(machine,))
    arch = _ARCHES.get(obj.machine)
    if arch is None:
        raise LinkError(f"no relocation support for machine {obj.machine}")

    loaded = [
        s
        for s in obj.sections
        if s.is_alloc and s.type in (_elf.SHT_PROGBITS, _elf.SHT_NOBITS) and s.name not in _SKIPPED_SECTIONS
    ]
    code = [s for s in loaded if not s.flags & _elf.SHF_WRITE]
    data_sections = [s for s in loaded if s.flags & _elf.SHF_WRITE]
    loaded_ids = {s.index for s in loaded}

    # Which symbols need a GOT slot, which undefined ones a trampoline.
    got_names: list[str] = []
    plt_names: list[str] = []
    for target_index, relocations in obj.relocations.items():
        if target_index not in loaded_ids:
            continue
        for rel in relocations:
            symbol = obj.symbols[rel.symbol]
            if symbol.is_undefined:
                if not symbol.name:
                    raise _elf.ElfError("relocation against an unnamed undefined symbol")
                if arch.needs_plt(rel.type) and symbol.name not in plt_names:
                    plt_names.append(symbol.name)
            elif symbol.section != _elf.SHN_ABS and symbol.section not in loaded_ids:
                raise _elf.ElfError(
                    f"relocation against symbol {symbol.name!r} in a section that is not loaded"
                )
            key = symbol.name or f"#{rel.symbol}"
            if arch.needs_got(rel.type) and key not in got_names:
                got_names.append(key)

    # Layout: code sections, trampolines, GOT | LINK_PAGE boundary | writable sections.
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
    if data_sections:
        cursor = _align(cursor, LINK_PAGE)
    data_offset = cursor
    for section in data_sections:
        cursor = _align(cursor, section.alignment)
        offsets[section.index] = cursor
        cursor += section.size
    total = cursor
    if total > MAX_IMAGE_SIZE:
        raise _elf.ElfError(f"the object would map {total} bytes, more than {MAX_IMAGE_SIZE}")

    image = bytearray(total)
    content_end = code_size
    for section in loaded:
        start = offsets[section.index]
        if section.type != _elf.SHT_NOBITS:
            image[start : start + section.size] = obj.section_bytes(section)
            content_end = max(content_end, start + section.size)

    imports: list[tuple[int, str, int]] = []
    relatives: list[int] = []
    plt_slots = {name: plt_base + i * arch.TRAMPOLINE_SIZE for i, name in enumerate(plt_names)}
    got_slots = {name: got_base + i * _GOT_ENTRY for i, name in enumerate(got_names)}
    for i, name in enumerate(plt_names):
        start = plt_base + i * arch.TRAMPOLINE_SIZE
        image[start : start + arch.TRAMPOLINE_SIZE] = arch.trampoline(0)
        imports.append((start + arch.TRAMPOLINE_TARGET, name, 0))
    got_done: set[str] = set()

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
            place = section_start + rel.offset
            kind = arch.kind(rel.type)
            external = symbol.is_undefined
            absolute = symbol.section == _elf.SHN_ABS
            address = 0 if external or absolute else offsets[symbol.section] + symbol.value
            if absolute:
                address = symbol.value
            got_entry = plt_entry = None
            if kind == "got":
                got_entry = got_slots[key]
                if key not in got_done:
                    got_done.add(key)
                    if external:
                        imports.append((got_entry, symbol.name, 0))
                    else:
                        image[got_entry : got_entry + 8] = address.to_bytes(8, "little")
                        if not absolute:
                            relatives.append(got_entry)
            elif kind == "plt":
                plt_entry = plt_slots[symbol.name] if external else address
                if absolute:
                    raise LinkError(f"{arch.name(rel.type)} to the absolute symbol {key!r}")
            elif kind == "abs64":
                if place < 0 or place + 8 > section_start + section.size:
                    raise arch.RelocationError(
                        f"{arch.name(rel.type)} at {rel.offset:#x} writes outside its section"
                    )
                if external:
                    imports.append((place, symbol.name, rel.addend))
                    continue
                if not absolute:
                    relatives.append(place)
            elif kind == "pc":
                if external or absolute:
                    raise LinkError(
                        f"{arch.name(rel.type)} against {key!r}, which is not in the object, "
                        f"cannot be linked ahead of time"
                    )
            elif kind == "abs32":
                raise LinkError(
                    f"{arch.name(rel.type)} needs an absolute 32-bit address of {key!r}: the object "
                    f"is not position-independent"
                )
            arch.apply(
                image,
                place,
                section_start + section.size,
                rel.type,
                address,
                rel.addend,
                place,
                got_entry,
                plt_entry,
            )

    symbols = tuple(
        (s.name, offsets[s.section] + s.value)
        for s in obj.symbols
        if s.binding in (_elf.STB_GLOBAL, _elf.STB_WEAK)
        and not s.is_undefined
        and s.section in offsets
        and s.name
    )
    return Image(
        obj.machine,
        bytes(image[:content_end]),
        code_size,
        data_offset,
        total,
        symbols,
        tuple(imports),
        tuple(relatives),
        tuple((s.name, offsets[s.index]) for s in loaded),
    )
