"""Which targets this runtime can load stubs for."""

from __future__ import annotations

import platform
import sys
from typing import Final

from ._errors import UnsupportedPlatformError

__all__ = ["SUPPORTED_TARGETS", "check_supported", "host_target"]

#: Targets whose stub objects the loader can relocate.
SUPPORTED_TARGETS: Final = frozenset({"x86_64-linux", "aarch64-linux"})

_MACHINES: Final = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "aarch64", "arm64": "aarch64"}


def host_target() -> str:
    """``<arch>-<os>`` of the running interpreter, e.g. ``x86_64-linux``."""
    machine = platform.machine().lower()
    system = "linux" if sys.platform.startswith("linux") else sys.platform
    return f"{_MACHINES.get(machine, machine)}-{system}"


def check_supported() -> str:
    """Return the host target, or raise :class:`UnsupportedPlatformError`."""
    target = host_target()
    if target not in SUPPORTED_TARGETS:
        raise UnsupportedPlatformError(
            f"Calling foreign functions is currently not supported on platform: {target} "
            f"(supported: {', '.join(sorted(SUPPORTED_TARGETS))})")
    if sys.implementation.name != "cpython":
        raise UnsupportedPlatformError(
            f"Calling foreign functions needs CPython, not {sys.implementation.name}")
    return target
