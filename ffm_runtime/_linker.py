"""The native linker: creates downcall handles (Java's ``Linker``)."""

from __future__ import annotations

from ._access import ensure_native_access
from ._arena import _GLOBAL_ARENA
from ._descriptor import FunctionDescriptor, Option, check_options, registration_key
from ._layouts import (
    ADDRESS,
    JAVA_BOOLEAN,
    JAVA_BYTE,
    JAVA_DOUBLE,
    JAVA_FLOAT,
    JAVA_INT,
    JAVA_LONG,
    JAVA_SHORT,
    MemoryLayout,
)
from ._lookup import SymbolLookup, default_lookup
from ._memory import GLOBAL_SCOPE, MemorySegment

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Final

__all__ = ["Linker"]

_CANONICAL_LAYOUTS: Final[dict[str, MemoryLayout]] = {
    "bool": JAVA_BOOLEAN,
    "char": JAVA_BYTE,
    "short": JAVA_SHORT,
    "int": JAVA_INT,
    "float": JAVA_FLOAT,
    "long": JAVA_LONG,
    "long long": JAVA_LONG,
    "double": JAVA_DOUBLE,
    "void*": ADDRESS,
    "size_t": JAVA_LONG,
    "wchar_t": JAVA_INT,
}


class Linker:
    """Links Python to native functions through stubs compiled when the wheel was built."""

    Option = Option

    _instance: Linker | None = None

    @staticmethod
    def native_linker() -> Linker:
        """The linker for the platform's C ABI (Java's ``Linker.nativeLinker()``)."""
        if Linker._instance is None:
            Linker._instance = Linker()
        return Linker._instance

    def downcall_handle(self, *args: Any) -> Any:
        """Create a downcall handle (a restricted operation).

        ``downcall_handle(address, descriptor, *options)`` returns a handle bound to
        ``address`` (a :class:`MemorySegment`, usually from ``SymbolLookup.find``);
        ``downcall_handle(descriptor, *options)`` returns one that takes the target
        segment as its first argument.  Raises
        :class:`MissingForeignRegistrationError` if no installed wheel registered
        the call shape.
        """
        if not args:
            raise TypeError("downcall_handle() needs a descriptor (optionally after an address)")
        ensure_native_access("Linker.downcall_handle")
        address: int | None = None
        scope: Any = None
        if isinstance(args[0], MemorySegment):
            segment, *rest = args
            segment.scope._check()
            if segment.scope is not GLOBAL_SCOPE and segment.scope is not _GLOBAL_ARENA:
                # a symbol of a library an arena unloads: the stub checks the arena on every
                # call (as Java checks a downcall's target segment), and keeps a shared one
                # acquired while the call runs, so the library is never unloaded under it
                scope = segment.scope
            address = segment.address
            if address == 0:
                raise ValueError(f"Symbol is NULL: {segment!r}")
            args = tuple(rest)
            if not args:
                raise TypeError("downcall_handle(address, descriptor, *options) needs a descriptor")
        descriptor, *options = args
        if not isinstance(descriptor, FunctionDescriptor):
            raise TypeError(
                f"expected a FunctionDescriptor, got {type(descriptor).__name__} (the address, if "
                "given, must be a MemorySegment)"
            )
        checked = check_options(descriptor, options)
        key = registration_key(descriptor, checked)
        from ._handles import make_handle
        from ._targets import check_supported

        target = check_supported()

        return make_handle(key, descriptor, checked, target, address, scope)

    def upcall_stub(self, target: Any, descriptor: Any, arena: Any, *options: Any) -> MemorySegment:
        """A C function pointer that calls ``target`` (a restricted operation).

        Returns a zero-length segment whose address is a C function of the shape
        ``descriptor``; it calls ``target`` with the arguments as Python values and gives
        C its result, until ``arena`` is closed.  An exception ``target`` raises cannot be
        thrown into C: it is reported through ``sys.unraisablehook`` and C gets 0.  Raises
        :class:`MissingForeignRegistrationError` if no installed wheel registered the
        shape (``RuntimeForeignAccess.register_for_upcall``), and
        :class:`UpcallPoolExhaustedError` when all its trampolines are in use.
        """
        ensure_native_access("Linker.upcall_stub")
        from ._upcalls import upcall_stub

        return upcall_stub(target, descriptor, arena, options)

    def default_lookup(self) -> SymbolLookup:
        """Symbols of the C library, the math library and ``libdl``, as the JDK's default
        lookup on Linux (Java's ``Linker.defaultLookup()``; not a restricted operation)."""
        return default_lookup()

    def canonical_layouts(self) -> dict[str, MemoryLayout]:
        """C type names mapped to layouts for this platform (Linux, LP64)."""
        return dict(_CANONICAL_LAYOUTS)
