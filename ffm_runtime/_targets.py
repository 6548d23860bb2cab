"""The targets stubs are built for and loaded on: one table, read by build and run time.

A target is ``<arch>-<os>`` (``x86_64-linux``); everything that depends on it — the LLVM
triple, the ELF machine its objects carry, the C calling convention for aggregates, the
wheel platform tags, the names ``platform.machine()`` gives it — is a field of its
:class:`Target` here, and nowhere else.
"""

from __future__ import annotations

import platform
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from types import MappingProxyType
from typing import Final

from . import _elf
from ._errors import UnsupportedPlatformError

__all__ = ["TARGETS", "CallingConvention", "Target", "check_supported", "host_target"]


class CallingConvention(Enum):
    """How the target's C ABI passes structs and unions by value."""

    SYSV = "x86_64 System V"
    AAPCS64 = "AArch64 AAPCS64"


@dataclass(frozen=True)
class Target:
    """One platform stubs can be built for and the loader can relocate for."""

    name: str  #: ``<arch>-<os>``, as in options and manifests
    triple: str  #: the LLVM target triple
    elf_machine: int  #: ``e_machine`` of its objects
    calling_convention: CallingConvention
    wheel_platforms: tuple[str, ...]  #: the platform tags of a wheel carrying its stubs
    machine_names: tuple[str, ...]  #: what ``platform.machine()`` says on it (lower case)


# The platform tags: stubs import nothing from glibc but what _contract lists (errno,
# memcpy, memset), so the oldest manylinux policy that pip knows everywhere is honest.
TARGETS: Final[Mapping[str, Target]] = MappingProxyType(
    {
        target.name: target
        for target in (
            Target(
                "x86_64-linux",
                "x86_64-unknown-linux-gnu",
                _elf.EM_X86_64,
                CallingConvention.SYSV,
                ("manylinux_2_17_x86_64", "manylinux2014_x86_64"),
                ("x86_64", "amd64"),
            ),
            Target(
                "aarch64-linux",
                "aarch64-unknown-linux-gnu",
                _elf.EM_AARCH64,
                CallingConvention.AAPCS64,
                ("manylinux_2_17_aarch64", "manylinux2014_aarch64"),
                ("aarch64", "arm64"),
            ),
        )
    }
)


def host_target() -> str:
    """``<arch>-<os>`` of the running interpreter, e.g. ``x86_64-linux`` (also for a platform
    that is not in :data:`TARGETS`: then the names ``platform`` and ``sys`` give)."""
    machine = platform.machine().lower()
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
