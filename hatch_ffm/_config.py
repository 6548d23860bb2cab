"""The build hook's options, validated once with hatchling-style messages."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ffm_runtime._manifest import MAX_UPCALL_SLOTS

__all__ = ["DEFAULT_UPCALL_POOL_SIZE", "ConfigError", "HookConfig", "parse_config"]

#: Keys hatchling itself reads from every hook table; the hook must ignore them.
_RESERVED = frozenset(
    {"dependencies", "require-runtime-dependencies", "require-runtime-features", "enable-by-default"}
)
_KNOWN = (
    "features",
    "entry-points",
    "package",
    "targets",
    "enable-native-access",
    "upcall-pool-size",
    "build-cache",
)
#: Trampolines compiled per upcall shape when the option ``upcall-pool-size`` is not set: that
#: many upcall stubs of one shape can be alive at once (about 16 bytes of code and 8 of data
#: each on x86_64).
DEFAULT_UPCALL_POOL_SIZE = 256
_FEATURE_SPEC = re.compile(r"^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*:[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*$")


class ConfigError(ValueError):
    """An invalid option in the hook's TOML table."""


@dataclass(frozen=True)
class HookConfig:
    """Validated options of ``[tool.hatch.build.targets.wheel.hooks.ffm]``."""

    features: tuple[str, ...]
    entry_points: bool
    package: str | None
    targets: tuple[str, ...]
    #: units enabled for native access (some of the wheel's own top-level packages);
    #: ``None``: all of them
    enable_native_access: tuple[str, ...] | None
    #: the TOML path of the table, for messages
    path: str
    #: trampolines per upcall shape: how many of its upcall stubs can be alive at once
    upcall_pool_size: int = DEFAULT_UPCALL_POOL_SIZE
    #: where compiled stubs are cached between builds ("off": nowhere; ``None``: the default,
    #: see ``hatch_ffm._cache``)
    build_cache: str | None = None


def parse_config(config: Mapping[str, Any], path: str) -> HookConfig:
    """Validate the hook table ``config`` found at TOML path ``path``."""
    for key in config:
        if key not in _KNOWN and key not in _RESERVED:
            raise ConfigError(
                f"Unknown option `{key}` in `{path}`; known options: " + ", ".join(f"`{k}`" for k in _KNOWN)
            )

    features = config.get("features", [])
    if not isinstance(features, list):
        raise ConfigError(
            f"Option `features` in `{path}` must be an array of strings like "
            f'"mypkg.ffm_features:LibcFeature", not {type(features).__name__}'
        )
    for index, spec in enumerate(features):
        if not isinstance(spec, str) or not _FEATURE_SPEC.match(spec):
            raise ConfigError(
                f"Option `features[{index}]` in `{path}` must be a string "
                f'"module:Class" (e.g. "mypkg.ffm_features:LibcFeature"), '
                f"not {spec!r}"
            )

    entry_points = config.get("entry-points", True)
    if not isinstance(entry_points, bool):
        raise ConfigError(f"Option `entry-points` in `{path}` must be a boolean")

    package = config.get("package")
    if package is not None and (not isinstance(package, str) or not package.isidentifier()):
        raise ConfigError(
            f"Option `package` in `{path}` must be the import name of a package "
            f'(e.g. "mypkg"), not {package!r}'
        )

    targets = config.get("targets", ["native"])
    if not isinstance(targets, list) or not targets or not all(isinstance(t, str) for t in targets):
        raise ConfigError(
            f"Option `targets` in `{path}` must be a non-empty array of strings "
            'such as ["native"] or ["x86_64-linux"]'
        )
    units = config.get("enable-native-access")
    if units is not None and (
        not isinstance(units, list) or not all(isinstance(u, str) and u.isidentifier() for u in units)
    ):
        raise ConfigError(
            f"Option `enable-native-access` in `{path}` must be an array of "
            f'top-level package names such as ["mypkg"], not {units!r}'
        )
    if units is not None and "__main__" in units:
        raise ConfigError(
            f'Option `enable-native-access` in `{path}` cannot list "__main__": '
            f"a wheel enables only its own top-level packages. Scripts are enabled "
            f"where they run, with the environment variable "
            f"FFM_ENABLE_NATIVE_ACCESS=__main__"
        )
    pool_size = config.get("upcall-pool-size", DEFAULT_UPCALL_POOL_SIZE)
    if type(pool_size) is not int or not 1 <= pool_size <= MAX_UPCALL_SLOTS:
        raise ConfigError(
            f"Option `upcall-pool-size` in `{path}` must be an integer from 1 to "
            f"{MAX_UPCALL_SLOTS} (how many upcall stubs of one shape can be alive at once; "
            f"default {DEFAULT_UPCALL_POOL_SIZE}), not {pool_size!r}"
        )
    build_cache = config.get("build-cache")
    if build_cache is not None and (not isinstance(build_cache, str) or not build_cache.strip()):
        raise ConfigError(
            f'Option `build-cache` in `{path}` must be a folder (relative to the project) or "off", '
            f"not {build_cache!r}"
        )
    return HookConfig(
        tuple(features),
        entry_points,
        package,
        tuple(targets),
        None if units is None else tuple(units),
        path,
        pool_size,
        build_cache,
    )
