"""Place a stub image in memory: copy, fill in addresses, seal.

An image (:mod:`._image`) is code already linked at address 0; what is left is the
load address of its relative words and the addresses of the names it imports (from
``resolve``).  The code part is written while read+write and sealed read+execute before
anything in it can run (:mod:`._execmem`); its writable part stays on separate pages.
Objects of manifest format 2 are ELF relocatable objects: :func:`load_object` links them
first (:mod:`._link`), as the build hook does for newer wheels.
"""

from __future__ import annotations

from . import _execmem
from ._errors import StubLoadError
from ._image import Image, ImageError, decode
from ._records import Record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Final

__all__ = ["LoadedObject", "load_image", "load_object", "place"]

_MASK = (1 << 64) - 1


class LoadedObject(Record):
    """An image mapped into this process; ``symbols`` maps global names to addresses."""

    __slots__ = ("code_size", "region", "sections", "symbols")

    def __init__(
        self, symbols: dict[str, int], region: _execmem.Region, sections: dict[str, int], code_size: int
    ) -> None:
        self.symbols: Final = symbols
        self.region: Final = region
        #: address of every loaded section, by name (for tests and diagnostics)
        self.sections: Final = sections
        #: ``[region.address, region.address + code_size)`` is sealed read+execute
        self.code_size: Final = code_size

    def in_code(self, address: int) -> bool:
        """Whether ``address`` is in the part sealed read+execute (where a function can be)."""
        return 0 <= address - self.region.address < self.code_size

    def in_writable(self, address: int, size: int) -> bool:
        """Whether ``[address, address + size)`` is in the part left read+write."""
        start = address - self.region.address
        return self.code_size <= start and start + size <= self.region.size and size >= 0

    @property
    def method(self) -> str:
        """How the code was made executable: ``mprotect`` or ``memfd`` (the fallback)."""
        return self.region.method


def load_image(data: bytes, resolve: Callable[[str], int | None], path: str, machine: int) -> LoadedObject:
    """Check ``data`` (a stub image file for ``machine``) and place it; any problem is a
    :class:`StubLoadError` naming ``path``.

    ``resolve`` maps an imported name to its address, or ``None`` when the name is not
    allowed or not found."""
    try:
        image = decode(data, machine)
    except ImageError as exc:
        raise StubLoadError(f"cannot load stub image {path}: {exc}", path) from exc
    return place(image, resolve, path)


def load_object(
    data: bytes, resolve: Callable[[str], int | None], path: str, machine: int = 62
) -> LoadedObject:
    """Link ``data`` (an ELF relocatable object; ``machine`` defaults to x86_64) and place
    it; any problem is a :class:`StubLoadError` naming ``path``."""
    from . import _elf, _link, _reloc_aarch64, _reloc_x86_64

    try:
        image = _link.link(data, machine)
    except (
        _elf.ElfError,
        _link.LinkError,
        _reloc_x86_64.RelocationError,
        _reloc_aarch64.RelocationError,
    ) as exc:
        raise StubLoadError(f"cannot load stub object {path}: {exc}", path) from exc
    return place(image, resolve, path)


def place(image: Image, resolve: Callable[[str], int | None], path: str) -> LoadedObject:
    """Map ``image`` at a fresh address: fill in its imports and relative words, seal its
    code read+execute; return its global symbols."""
    addresses: dict[str, int] = {}
    for _offset, name, _addend in image.imports:
        if name not in addresses:
            address = resolve(name)
            if address is None:
                raise StubLoadError(
                    f"cannot load stub image {path}: undefined symbol {name!r} is not allowed in "
                    f"stubs or not found",
                    path,
                )
            addresses[name] = address
    if image.data_offset < image.total_size and image.data_offset % _execmem.PAGE_SIZE:
        raise StubLoadError(
            f"cannot load stub image {path}: its writable part starts at {image.data_offset:#x}, "
            f"inside a page of {_execmem.PAGE_SIZE:#x} bytes that holds code",
            path,
        )
    region = _execmem.allocate(image.total_size)
    try:
        base = region.address
        end = len(image.content)
        for offset in image.relatives:
            end = max(end, offset + 8)
        for offset, _name, _addend in image.imports:
            end = max(end, offset + 8)
        buffer = bytearray(end)
        buffer[: len(image.content)] = image.content
        for offset in image.relatives:
            value = int.from_bytes(buffer[offset : offset + 8], "little")
            if value > image.total_size:
                raise StubLoadError(
                    f"cannot load stub image {path}: the relative word at {offset:#x} names "
                    f"{value:#x}, outside the image ({image.total_size:#x} bytes)",
                    path,
                )
            buffer[offset : offset + 8] = (value + base).to_bytes(8, "little")
        for offset, name, addend in image.imports:
            buffer[offset : offset + 8] = ((addresses[name] + addend) & _MASK).to_bytes(8, "little")
        region.write(0, buffer)
        region.seal(image.code_size)
    except BaseException:
        region.release()
        raise
    symbols = {name: base + offset for name, offset in image.symbols}
    if len(symbols) != len(image.symbols):
        region.release()
        raise StubLoadError(f"cannot load stub image {path}: it has two symbols named {_twice(image)}", path)
    return LoadedObject(
        symbols, region, {name: base + offset for name, offset in image.sections}, image.code_size
    )


def _twice(image: Image) -> str:
    """A symbol name ``image`` has twice."""
    seen: set[str] = set()
    for name, _offset in image.symbols:
        if name in seen:
            return name
        seen.add(name)
    return ""
