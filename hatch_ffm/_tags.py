"""Wheel tags for wheels that carry stubs.

Stubs call only the CPython Stable ABI available since 3.10, so one wheel
serves every CPython >= 3.10: interpreter ``cp310``, ABI ``abi3``.  They import
nothing from glibc but ``__errno_location``, ``memcpy`` and ``memset``, so the
oldest manylinux policy that pip still knows everywhere, ``manylinux_2_17``
(alias ``manylinux2014``), is honest: each target's platform tags are in
``ffm_runtime._targets``.
"""

from __future__ import annotations

from ffm_runtime._targets import TARGETS

__all__ = ["wheel_tag"]


def wheel_tag(targets: tuple[str, ...]) -> str:
    """``cp310-abi3-<platforms>`` for the given targets."""
    platforms: list[str] = []
    for target in targets:
        for platform_tag in TARGETS[target].wheel_platforms:
            if platform_tag not in platforms:
                platforms.append(platform_tag)
    return "cp310-abi3-" + ".".join(platforms)
