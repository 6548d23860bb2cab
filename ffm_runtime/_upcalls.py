"""Upcall stubs: C function pointers that call Python (Java's ``Linker.upcallStub``).

A wheel's stub object holds, per upcall shape it registered, a pool of trampolines compiled
at build time and as many slots in its writable data (``hatch_ffm/_ir/_upcalls.py``).
:func:`upcall_stub` takes a free slot of the first pool of the shape that has one, stores the
``(target, record)`` tuple there (its address: the tuple is kept alive here) and hands out the
slot's trampoline as a zero-length segment of the arena; closing the arena clears the slot
and makes it free again.  No code is written at run time: a slot is data.

Slots are written with the GIL held, and the entry reads its slot after taking the GIL, so
an entry sees either the tuple (and holds a reference to it for the call) or NULL (a call
through a freed slot: reported, C gets 0).
"""

from __future__ import annotations

import ctypes

from ._arena import Arena
from ._descriptor import FunctionDescriptor, check_upcall, upcall_key
from ._errors import (
    MissingForeignRegistrationError,
    ScopeClosedError,
    StubLoadError,
    UpcallPoolExhaustedError,
    WrongThreadError,
)
from ._handles import _raise_for, _raise_for_segment
from ._layouts import GroupLayout
from ._locks import ForkSafeLock
from ._memory import MemorySegment

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections import deque
    from typing import Any, NoReturn

__all__ = ["UpcallRecord", "critical_upcall", "upcall_error", "upcall_stub"]

#: the hook option that sets the pool size, and its default (``hatch_ffm._config``)
POOL_OPTION = "upcall-pool-size"
DEFAULT_POOL_SIZE = 256

_lock = ForkSafeLock()
#: upcall key -> its descriptor (names stripped), for error messages
_descriptors: dict[str, FunctionDescriptor] = {}


class UpcallRecord:
    """What an upcall's unraisable reports name (``sys.unraisablehook``'s ``object``)."""

    __slots__ = ("address", "key", "target")

    def __init__(self, key: str, target: object, address: int) -> None:
        self.key = key
        self.target = target
        self.address = address

    def __repr__(self) -> str:
        shape = self.key.removeprefix("upcall ")
        return f"<upcall stub {shape} at {self.address:#x} calling {self.target!r}>"


class _Pool:
    """The trampolines of one upcall shape in one loaded stub object."""

    __slots__ = ("free", "key", "live", "manifest", "slots", "trampolines")

    def __init__(
        self, key: str, manifest: str, slots: int, trampolines: tuple[int, ...], free: deque[int]
    ) -> None:
        self.key = key
        self.manifest = manifest
        self.slots = slots  #: address of the slot array
        self.trampolines = trampolines
        #: free slot indices, the one freed longest ago first: a pointer C kept past its arena
        #: keeps finding an empty slot (reported, C gets 0) for as long as possible, rather
        #: than calling the next upcall stub's target
        self.free = free
        #: slot index -> the tuple its slot points to (kept alive here)
        self.live: dict[int, tuple[object, UpcallRecord]] = {}

    def take(self, target: object) -> int | None:
        """A trampoline whose slot now calls ``target``, or ``None`` when all are in use."""
        with _lock:
            if not self.free:
                return None
            index = self.free.popleft()
            address = self.trampolines[index]
            entry = (target, UpcallRecord(self.key, target, address))
            self.live[index] = entry
            ctypes.c_void_p.from_address(self.slots + 8 * index).value = id(entry)
        return index

    def give_back(self, index: int) -> None:
        """Clear slot ``index`` (a call through it now reports and returns 0) and free it."""
        with _lock:
            ctypes.c_void_p.from_address(self.slots + 8 * index).value = None
            entry = self.live.pop(index, None)
            self.free.append(index)
        del entry  # (dropped outside the lock: the target's finalizer may run)


#: (manifest path, key) -> its pool, once loaded
_pools: dict[tuple[str, str], _Pool] = {}


def _pools_of(key: str, platform: str) -> list[_Pool]:
    """The pools of ``key`` of every manifest providing it (loading their objects)."""
    from collections import deque

    from ._registry import registry

    pools: list[_Pool] = []
    failures: list[StubLoadError] = []
    for source in registry.find(key):
        pool = _pools.get((source.path, key))
        if pool is None:
            try:
                loaded, path = registry.loaded(source, platform, key)
            except StubLoadError as exc:
                failures.append(exc)
                continue
            spec = source.manifest.upcalls[key]
            # the symbols' names: hatch_ffm/_ir/_upcalls.py
            slots = loaded.symbols.get(spec.symbol + "_slots")
            trampolines = [loaded.symbols.get(f"{spec.symbol}_t{i}") for i in range(spec.slots)]
            if slots is None or None in trampolines:
                failures.append(
                    StubLoadError(
                        f"stub object {path} lacks the upcall pool of {key} its manifest lists", path
                    )
                )
                continue
            # (a damaged image: trampolines that are not code, slots that are not writable)
            if not all(loaded.in_code(t) for t in trampolines) or not loaded.in_writable(  # type: ignore[arg-type]
                slots, 8 * spec.slots
            ):
                failures.append(
                    StubLoadError(
                        f"stub object {path} is damaged: the upcall pool of {key} is not where code "
                        f"and writable data are; reinstall the package or rebuild its wheel",
                        path,
                    )
                )
                continue
            with _lock:
                pool = _pools.setdefault(
                    (source.path, key),
                    _Pool(
                        key,
                        source.path,
                        slots,
                        tuple(t for t in trampolines if t is not None),
                        deque(range(spec.slots)),
                    ),
                )
        pools.append(pool)
    if not pools and failures:
        raise failures[0]
    return pools


def missing_upcall(key: str, descriptor: FunctionDescriptor) -> MissingForeignRegistrationError:
    """The error for an upcall shape that no installed wheel registered."""
    from ._registry import registry

    unreadable = registry.unreadable()
    note = "".join(f"\n    {bad.error}" for bad in unreadable)
    if note:
        note = (
            f"\nThese stub manifests cannot be read; if one of them was meant to provide "
            f"this upcall shape, reinstall its package:{note}\n"
        )
    return MissingForeignRegistrationError(
        f"Cannot perform upcall with descriptor {key.removeprefix('upcall ')}: no installed wheel "
        "registered this upcall shape. To allow it, add this line to during_setup(access) of a "
        "Feature listed in [tool.hatch.build.targets.wheel.hooks.ffm] features, then rebuild and "
        f"reinstall the wheel:\n\n    RuntimeForeignAccess.register_for_upcall({descriptor.stripped()!r})\n"
        f"{note}",
        key,
        tuple(bad.path for bad in unreadable),
    )


def _check_target(target: object, descriptor: FunctionDescriptor) -> None:
    """The target must be callable with the descriptor's arguments (Java: "Wrong method
    handle type"), where its signature can be known."""
    if not callable(target):
        raise TypeError(f"upcall_stub() needs a callable target, not {type(target).__name__}")
    import inspect

    count = len(descriptor.argument_layouts)
    try:
        signature = inspect.signature(target)
    except (TypeError, ValueError):  # a builtin without a signature: it tells when called
        return
    try:
        signature.bind(*range(count))
    except TypeError as exc:
        raise TypeError(
            f"Wrong target: the upcall {descriptor} calls it with {count} positional "
            f"argument{'' if count == 1 else 's'}, and {target!r} cannot take them ({exc})"
        ) from None


def upcall_stub(
    target: object, descriptor: object, arena: object, options: tuple[object, ...]
) -> MemorySegment:
    """See :meth:`Linker.upcall_stub` (the native-access check is done)."""
    from ._targets import check_supported

    checked = check_upcall(descriptor, options)
    if not isinstance(arena, Arena):
        raise TypeError(f"upcall_stub() needs an Arena for the stub's lifetime, not {type(arena).__name__}")
    _check_target(target, checked)
    arena._check()
    key = upcall_key(checked)
    platform = check_supported()
    pools = _pools_of(key, platform)
    if not pools:
        raise missing_upcall(key, checked)
    with _lock:
        _descriptors.setdefault(key, checked.stripped())
    for pool in pools:
        index = pool.take(target)
        if index is not None:
            break
    else:
        sizes = ", ".join(f"{len(p.trampolines)} in {p.manifest}" for p in pools)
        raise UpcallPoolExhaustedError(
            f"Cannot make another upcall stub for {key}: every trampoline of its pool is in use "
            f"({sizes}). Close the arenas of the upcall stubs no longer needed, or raise the hook "
            f"option `{POOL_OPTION}` (default {DEFAULT_POOL_SIZE}) of "
            "[tool.hatch.build.targets.wheel.hooks.ffm] in the package that registers this "
            "shape, and rebuild its wheel",
            key,
        )
    try:
        arena._add_cleanup(lambda: pool.give_back(index))
    except BaseException:
        pool.give_back(index)
        raise
    return MemorySegment._make(pool.trampolines[index], 0, arena.scope)


def upcall_error(key: str, *result: Any) -> NoReturn:
    """Raise the error an upcall reports (called by the upcall entries only): for a call
    through a freed slot (no ``result``), or for a ``result`` of the wrong kind."""
    shape = key.removeprefix("upcall ")
    if not result:
        raise ScopeClosedError(
            f"upcall {shape} was called through the function pointer of an upcall stub whose "
            "arena is closed (the C code kept it longer than the arena); C got 0"
        )
    descriptor = _descriptors.get(key)
    layout = None if descriptor is None else descriptor.return_layout
    if layout is None:
        raise TypeError(f"result of upcall {shape}: invalid value {result[0]!r}; C got 0")
    if isinstance(layout, GroupLayout):  # copied with the GIL held: a heap segment will do
        where = f"result of upcall {shape} (C got a zeroed struct)"
        _raise_for_segment(result[0], where, f"struct {layout}", layout.byte_size, heap=True)
    _raise_for(layout, result[0], f"result of upcall {shape} (C got 0)")


def critical_upcall(key: str) -> NoReturn:
    """Raise the error of the critical downcall ``key`` whose function called back into
    Python (called by critical stubs only, after the call: the upcall was refused)."""
    raise WrongThreadError(
        f"the function of the critical downcall {key} called back into Python through an "
        "upcall stub: a critical function must not call back (Linker.Option.critical, as in "
        "Java); the upcall did not run and C got 0 from it. Link the function without "
        "Linker.Option.critical()"
    )
