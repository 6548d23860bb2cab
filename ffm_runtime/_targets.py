"""The targets stubs are built for and loaded on: one table, read by build and run time.

A target is ``<arch>-<os>`` (``x86_64-linux``); everything that depends on it — the LLVM
triple, the ELF machine its objects carry, the C calling convention for aggregates, the
wheel platform tags, the names ``platform.machine()`` gives it — is a field of its
:class:`Target` here, and nowhere else.  (Read at the first downcall handle: plain classes,
no ``dataclasses``, ``enum`` or ``platform`` to import.)
"""

from __future__ import annotations

import os
import sys

from ._errors import UnsupportedPlatformError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from types import MappingProxyType
    from typing import ClassVar, Final
else:
    MappingProxyType = type(type.__dict__)  # (types.MappingProxyType, without importing types)

__all__ = ["TARGETS", "CallingConvention", "Target", "check_supported", "host_target"]


class CallingConvention:
    """How the target's C ABI passes structs and unions by value: one of the two instances
    :attr:`SYSV` and :attr:`AAPCS64` (compared by identity)."""

    __slots__ = ("value",)
    SYSV: ClassVar[CallingConvention]
    AAPCS64: ClassVar[CallingConvention]

    def __init__(self, value: str) -> None:
        self.value: Final = value

    def __repr__(self) -> str:
        return f"<CallingConvention {self.value}>"


CallingConvention.SYSV = CallingConvention("x86_64 System V")
CallingConvention.AAPCS64 = CallingConvention("AArch64 AAPCS64")

#: ``e_machine`` of x86_64 and AArch64 objects (as ``_elf`` names them)
_EM_X86_64: Final = 62
_EM_AARCH64: Final = 183


class Target:
    """One platform stubs can be built for and the loader can relocate for."""

    __slots__ = (
        "calling_convention",
        "elf_machine",
        "machine_names",
        "name",
        "triple",
        "wheel_platforms",
    )

    def __init__(  # noqa: PLR0913, PLR0917  (a record: one argument per field)
        self,
        name: str,
        triple: str,
        elf_machine: int,
        calling_convention: CallingConvention,
        wheel_platforms: tuple[str, ...],
        machine_names: tuple[str, ...],
    ) -> None:
        self.name: Final = name  #: ``<arch>-<os>``, as in options and manifests
        self.triple: Final = triple  #: the LLVM target triple
        self.elf_machine: Final = elf_machine  #: ``e_machine`` of its objects
        self.calling_convention: Final = calling_convention
        #: the platform tags of a wheel carrying its stubs
        self.wheel_platforms: Final = wheel_platforms
        #: what ``platform.machine()`` says on it (lower case)
        self.machine_names: Final = machine_names

    def __repr__(self) -> str:
        return f"Target({self.name!r})"


# The platform tags: stubs import nothing from glibc but what _contract lists (errno,
# memcpy, memset), so the oldest manylinux policy that pip knows everywhere is honest.
TARGETS: Final[Mapping[str, Target]] = MappingProxyType(
    {
        target.name: target
        for target in (
            Target(
                "x86_64-linux",
                "x86_64-unknown-linux-gnu",
                _EM_X86_64,
                CallingConvention.SYSV,
                ("manylinux_2_17_x86_64", "manylinux2014_x86_64"),
                ("x86_64", "amd64"),
            ),
            Target(
                "aarch64-linux",
                "aarch64-unknown-linux-gnu",
                _EM_AARCH64,
                CallingConvention.AAPCS64,
                ("manylinux_2_17_aarch64", "manylinux2014_aarch64"),
                ("aarch64", "arm64"),
            ),
        )
    }
)


def _machine() -> str:
    """What ``platform.machine()`` says (``os.uname()``'s, where there is one)."""
    uname = getattr(os, "uname", None)
    if uname is not None:
        return str(uname().machine)
    import platform

    return platform.machine()


def host_target() -> str:
    """``<arch>-<os>`` of the running interpreter, e.g. ``x86_64-linux`` (also for a platform
    that is not in :data:`TARGETS`: then the names ``platform`` and ``sys`` give)."""
    machine = _machine().lower()
    system = "linux" if sys.platform.startswith("linux") else sys.platform
    arch = next(
        (target.name.partition("-")[0] for target in TARGETS.values() if machine in target.machine_names),
        machine,
    )
    return f"{arch}-{system}"


def check_supported() -> str:
    """Return the host target, or raise :class:`UnsupportedPlatformError`."""
    target = host_target()
    if target not in TARGETS:
        raise UnsupportedPlatformError(
            f"Calling foreign functions is currently not supported on platform: {target} "
            f"(supported: {', '.join(sorted(TARGETS))})"
        )
    if sys.implementation.name != "cpython":
        raise UnsupportedPlatformError(
            f"Calling foreign functions needs CPython, not {sys.implementation.name}"
        )
    return target
