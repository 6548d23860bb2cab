"""Wheel tags for wheels that carry stubs.

Stubs call only the CPython Stable ABI available since 3.10, so one wheel
serves every CPython >= 3.10: interpreter ``cp310``, ABI ``abi3``.  They import
nothing from glibc but ``__errno_location``, so the oldest manylinux policy
that pip still knows everywhere, ``manylinux_2_17`` (alias ``manylinux2014``),
is honest.
"""

from __future__ import annotations

from typing import Final

__all__ = ["wheel_tag"]

_PLATFORMS: Final = {
    "x86_64-linux": ("manylinux_2_17_x86_64", "manylinux2014_x86_64"),
    "aarch64-linux": ("manylinux_2_17_aarch64", "manylinux2014_aarch64"),
}


def wheel_tag(targets: tuple[str, ...]) -> str:
    """``cp310-abi3-<platforms>`` for the given targets."""
    platforms: list[str] = []
    for target in targets:
        for platform_tag in _PLATFORMS[target]:
            if platform_tag not in platforms:
                platforms.append(platform_tag)
    return "cp310-abi3-" + ".".join(platforms)
