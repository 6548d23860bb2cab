"""Stub images: native code linked when the wheel is built, placed in memory at run time.

The build hook compiles stubs to ELF relocatable objects and links each into an image
(:mod:`._link`): its sections laid out, every relocation that only depends on where the
code and data lie relative to each other applied, the GOT and the trampolines for
functions of the interpreter added.  What is left for run time is small and simple: the
image's bytes copied into fresh memory, the address of each imported name written into
its 8-byte slot, the load address added to each 8-byte "relative" word, and the code part
sealed read+execute.  No section, symbol table or relocation of the object is read at run
time, which is what makes the first downcall handle of a process cheap.

Layout of an image file (all integers little-endian)::

    header   MAGIC, VERSION (u16), machine (u16, the ELF machine), code_size, data_offset,
             total_size, content_size, symbols, sections, imports, relatives, names_size
             (u32 each)
    content  content_size bytes: the image from offset 0, the whole code part and what follows
             up to the last byte not zero (the rest, to total_size, is zero)
    symbols  per symbol: name offset, name length, offset in the image (u32 each)
    sections per section of the object: the same (for diagnostics and tests)
    imports  per import: offset in the image, name offset, name length (u32), addend (i64)
    relatives  per word: offset in the image (u32)
    names    names_size bytes of ASCII, the names the tables point into

``[0, code_size)`` is sealed read+execute; ``[data_offset, total_size)`` stays read+write
(``data_offset`` is a multiple of :data:`LINK_PAGE`, the largest page size of a supported
system, so code and writable data never share a page; it is where the code part ends,
rounded up to that boundary when there is writable data).  :func:`decode` checks every
count, offset and length against the file and the image before anything is used, and that
no two words filled in at load time share a byte: a malformed image is an
:class:`ImageError`, never a write outside its memory.  Placing it (:func:`._loader.place`)
refuses a symbol named twice and a relative word naming a place outside the image.
"""

from __future__ import annotations

import struct

from ._records import Record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Final

__all__ = ["LINK_PAGE", "MAGIC", "MAX_IMAGE_SIZE", "VERSION", "Image", "ImageError", "decode", "encode"]

MAGIC: Final = b"\x7fFFMSTUB"
VERSION: Final = 1
#: the writable part starts on a multiple of this (64 KiB pages: AArch64 Linux can have them)
LINK_PAGE: Final = 1 << 16
#: upper bound for everything one image maps (stubs take a few KiB per call shape)
MAX_IMAGE_SIZE: Final = 256 << 20

_HEADER = struct.Struct("<8sHHIIIIIIIII")
_SYMBOL = struct.Struct("<III")
_IMPORT = struct.Struct("<IIIq")
_RELATIVE = struct.Struct("<I")
_NAME_CHARACTERS: Final = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.$")


class ImageError(ValueError):
    """The bytes are not a well-formed stub image for this machine."""


class Image(Record):
    """A linked stub object, placed at address 0."""

    __slots__ = (
        "code_size",
        "content",
        "data_offset",
        "imports",
        "machine",
        "relatives",
        "sections",
        "symbols",
        "total_size",
    )

    def __init__(  # noqa: PLR0913, PLR0917  (a record: one argument per field)
        self,
        machine: int,
        content: bytes,
        code_size: int,
        data_offset: int,
        total_size: int,
        symbols: tuple[tuple[str, int], ...],
        imports: tuple[tuple[int, str, int], ...],
        relatives: tuple[int, ...],
        sections: tuple[tuple[str, int], ...] = (),
    ) -> None:
        #: the ELF machine the code is for
        self.machine: Final = machine
        #: the image's first bytes (the rest, to ``total_size``, is zero)
        self.content: Final = content
        #: ``[0, code_size)`` is sealed read+execute
        self.code_size: Final = code_size
        #: where the writable part starts (a multiple of :data:`LINK_PAGE`, or ``total_size``)
        self.data_offset: Final = data_offset
        self.total_size: Final = total_size
        #: (global name, offset)
        self.symbols: Final = symbols
        #: (offset, name, addend): the 8 bytes at ``offset`` get the address of ``name`` + ``addend``
        self.imports: Final = imports
        #: offsets of 8-byte words to which the load address is added
        self.relatives: Final = relatives
        #: (section name, offset), the object's sections as laid out
        self.sections: Final = sections


def encode(image: Image) -> bytes:
    """The file of ``image`` (checked as :func:`decode` checks it)."""
    names = bytearray()
    spans: dict[str, tuple[int, int]] = {}

    def span(name: str) -> tuple[int, int]:
        found = spans.get(name)
        if found is None:
            if not name.isascii():
                raise ImageError(f"name {name!r} has characters a symbol cannot have")
            encoded = name.encode("ascii")
            found = spans[name] = (len(names), len(encoded))
            names.extend(encoded)
        return found

    symbols = b"".join(_SYMBOL.pack(*span(name), offset) for name, offset in image.symbols)
    sections = b"".join(_SYMBOL.pack(*span(name), offset) for name, offset in image.sections)
    imports = b"".join(_IMPORT.pack(offset, *span(name), addend) for offset, name, addend in image.imports)
    relatives = b"".join(_RELATIVE.pack(offset) for offset in image.relatives)
    header = _HEADER.pack(
        MAGIC,
        VERSION,
        image.machine,
        image.code_size,
        image.data_offset,
        image.total_size,
        len(image.content),
        len(image.symbols),
        len(image.sections),
        len(image.imports),
        len(image.relatives),
        len(names),
    )
    data = header + image.content + symbols + sections + imports + relatives + bytes(names)
    decode(data, image.machine)
    return data


def _name(names: str, start: int, length: int, what: str) -> str:
    if length == 0 or start + length > len(names):
        raise ImageError(f"{what} name at {start} (length {length}) is outside the name table")
    name = names[start : start + length]
    if not _NAME_CHARACTERS.issuperset(name):
        raise ImageError(f"{what} name {name!r} has characters a symbol cannot have")
    return name


def decode(data: bytes, machine: int) -> Image:  # noqa: PLR0912  (one check per field)
    """Parse and check an image file for ``machine``; anything wrong is an :class:`ImageError`."""
    if len(data) < _HEADER.size:
        raise ImageError(f"{len(data)} bytes are too few for a stub image")
    (
        magic,
        version,
        found_machine,
        code_size,
        data_offset,
        total_size,
        content_size,
        symbol_count,
        section_count,
        import_count,
        relative_count,
        names_size,
    ) = _HEADER.unpack_from(data)
    if magic != MAGIC:
        raise ImageError("not a stub image (bad magic)")
    if version != VERSION:
        raise ImageError(f"stub image version {version}; this runtime reads version {VERSION}")
    if found_machine != machine:
        raise ImageError(f"stub image for ELF machine {found_machine}, not {machine}")
    if total_size > MAX_IMAGE_SIZE:
        raise ImageError(f"the image would map {total_size} bytes, more than {MAX_IMAGE_SIZE}")
    if not code_size <= content_size <= total_size or not code_size <= data_offset <= total_size:
        raise ImageError(
            f"inconsistent sizes: code {code_size}, data from {data_offset}, content "
            f"{content_size}, total {total_size}"
        )
    if data_offset < total_size and data_offset % LINK_PAGE:
        raise ImageError(f"the writable part starts at {data_offset:#x}, not on a {LINK_PAGE:#x} boundary")
    if data_offset not in (code_size, -(-code_size // LINK_PAGE) * LINK_PAGE):
        # (what is neither code nor on the writable pages would be mapped read+write but
        # hold what the code part should)
        raise ImageError(
            f"the writable part starts at {data_offset:#x}, not where the code part ends "
            f"({code_size:#x}, or the next {LINK_PAGE:#x} boundary)"
        )
    tables = _HEADER.size + content_size
    expected = (
        tables
        + (symbol_count + section_count) * _SYMBOL.size
        + import_count * _IMPORT.size
        + relative_count * _RELATIVE.size
        + names_size
    )
    if len(data) != expected:
        raise ImageError(f"the image file has {len(data)} bytes; its header describes {expected}")
    try:
        names = data[expected - names_size :].decode("ascii")
    except UnicodeDecodeError as exc:
        raise ImageError("the name table is not ASCII") from exc

    symbols = []
    end = tables + symbol_count * _SYMBOL.size
    for start, length, offset in _SYMBOL.iter_unpack(data[tables:end]):
        if offset > total_size:
            raise ImageError(f"symbol at {offset:#x} is outside the image")
        symbols.append((_name(names, start, length, "symbol"), offset))
    sections = []
    tables, end = end, end + section_count * _SYMBOL.size
    for start, length, offset in _SYMBOL.iter_unpack(data[tables:end]):
        if offset > total_size:
            raise ImageError(f"section at {offset:#x} is outside the image")
        sections.append((_name(names, start, length, "section"), offset))
    imports = []
    tables, end = end, end + import_count * _IMPORT.size
    for offset, start, length, addend in _IMPORT.iter_unpack(data[tables:end]):
        if offset + 8 > total_size:
            raise ImageError(f"import at {offset:#x} writes outside the image")
        imports.append((offset, _name(names, start, length, "import"), addend))
    relatives = []
    tables, end = end, end + relative_count * _RELATIVE.size
    for (offset,) in _RELATIVE.iter_unpack(data[tables:end]):
        if offset + 8 > total_size:
            raise ImageError(f"relative word at {offset:#x} is outside the image")
        relatives.append(offset)
    # each word is filled in once: by an import or by adding the load address
    words = sorted([*relatives, *(offset for offset, _name, _addend in imports)])
    for i in range(1, len(words)):
        before, after = words[i - 1], words[i]
        if after - before < 8:  # noqa: PLR2004  (8-byte words)
            raise ImageError(
                f"the words filled in at {before:#x} and {after:#x} overlap (imports and relative "
                f"words are 8 bytes each)"
            )
    return Image(
        machine,
        data[_HEADER.size : _HEADER.size + content_size],
        code_size,
        data_offset,
        total_size,
        tuple(symbols),
        tuple(imports),
        tuple(relatives),
        tuple(sections),
    )
