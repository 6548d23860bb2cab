"""The hatchling build hook ``ffm``.

Importing this module needs hatchling only; pluggy and llvmlite are imported
when a wheel is actually built.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import tempfile
import time
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

from ._config import ConfigError, HookConfig, parse_config
from ._tags import wheel_tag

__all__ = ["FfmBuildHook"]

_RUNTIME_DISTRIBUTION = "hatch-ffm"


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


class FfmBuildHook(BuildHookInterface):  # type: ignore[type-arg]  # hatchling's generic is untyped
    """Compiles the downcall stubs that the project's Features register into the wheel."""

    PLUGIN_NAME = "ffm"

    _parsed: HookConfig | None = None
    _workdir: str | None = None

    # -- configuration ------------------------------------------------------------------
    @property
    def table_path(self) -> str:
        """The TOML path of this hook's table, for messages."""
        tool = self.metadata.config.get("tool", {}) if isinstance(self.metadata.config, dict) else {}
        build = tool.get("hatch", {}).get("build", {})
        if "ffm" in build.get("targets", {}).get(self.target_name, {}).get("hooks", {}):
            return f"tool.hatch.build.targets.{self.target_name}.hooks.ffm"
        return "tool.hatch.build.hooks.ffm"

    @property
    def parsed(self) -> HookConfig:
        if self._parsed is None:
            self._parsed = parse_config(self.config, self.table_path)
        return self._parsed

    def _check_runtime_dependency(self) -> None:
        from packaging.requirements import InvalidRequirement, Requirement

        names = set()
        for text in self.metadata.core.dependencies:
            try:
                names.add(_normalize(Requirement(text).name))
            except InvalidRequirement:
                continue
        if _RUNTIME_DISTRIBUTION not in names:
            raise ConfigError(
                f"Project `{self.metadata.core.name}` must list `{_RUNTIME_DISTRIBUTION}` in "
                f"`project.dependencies`: the stubs in its wheel are loaded at run time by "
                f"ffm_runtime, which `{_RUNTIME_DISTRIBUTION}` provides. Add it, e.g. "
                f'dependencies = ["{_RUNTIME_DISTRIBUTION}"]'
            )

    def _package(self) -> tuple[str, str]:
        """(import name, source folder) of the package that receives ``_ffm/``."""
        configured = self.parsed.package
        candidates: list[str] = []
        packages = getattr(self.build_config, "packages", None) or []
        for path in packages:
            candidates.append(os.path.join(self.root, path))
        names = (
            [configured]
            if configured
            else [os.path.basename(p) for p in candidates]
            or [_normalize(self.metadata.core.name).replace("-", "_")]
        )
        for name in names:
            for base in [os.path.dirname(p) for p in candidates] or [
                self.root,
                os.path.join(self.root, "src"),
            ]:
                folder = os.path.join(base, name)
                if os.path.isfile(os.path.join(folder, "__init__.py")):
                    return name, folder
        raise ConfigError(
            f"Cannot find the package to put the stubs in (tried {', '.join(names)}); set "
            f"option `package` in `{self.table_path}` to the import name of your package"
        )

    def _top_level_packages(self, package: str) -> tuple[str, ...]:
        """The wheel's top-level packages (option ``packages`` of the wheel target, or the one
        found), the one that receives ``_ffm/`` first: the units its manifest may enable."""
        packages = getattr(self.build_config, "packages", None) or []
        return tuple(dict.fromkeys([package, *(os.path.basename(p.rstrip("/")) for p in packages)]))

    # -- hook methods -------------------------------------------------------------------
    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        if self.target_name != "wheel":
            return
        started = time.perf_counter()
        config = self.parsed
        self._check_runtime_dependency()
        package, package_dir = self._package()

        from ffm_runtime._access import enabled_while
        from ffm_runtime._targets import host_target

        from ._build import build_stubs, resolve_targets
        from ._features import run_features
        from ._registration import DuringSetupAccess

        targets = resolve_targets(config.targets, host_target(), config.path)
        access = DuringSetupAccess(self.root, self.metadata.core.name, package, targets, dict(self.config))
        packages = self._top_level_packages(package)
        units = config.enable_native_access
        if units is None:
            units = packages
        for unit in units:
            if unit not in packages:
                raise ConfigError(
                    f"Option `enable-native-access` in `{config.path}` lists {unit!r}, which is "
                    f"not a top-level package of this wheel ({', '.join(packages)}): a wheel "
                    f"enables only its own packages. Another package is enabled by its own "
                    f"wheel, or where it runs with the environment variable "
                    f"FFM_ENABLE_NATIVE_ACCESS={unit} (scripts: FFM_ENABLE_NATIVE_ACCESS=__main__)"
                )
        source_root = os.path.dirname(package_dir)
        added = [p for p in (source_root, self.root) if p not in sys.path]
        sys.path[:0] = added
        try:
            # Features may use restricted operations (with_target_layout, say) in the name of
            # the packages this wheel enables.
            with enabled_while(units):
                session, ran, declined = run_features(
                    config.features, config.entry_points, access, config.path
                )
        finally:
            for p in added:
                sys.path.remove(p)

        app = self.app
        app.display_info(
            f"hatch-ffm: Features run: {', '.join(ran) or 'none'}"
            + (f"; declined: {', '.join(declined)}" if declined else "")
        )
        if not ran:
            app.display_warning(
                f"hatch-ffm: no Feature found; list one in option `features` of `{config.path}`"
            )
        app.display_info(
            f"hatch-ffm: {session.requests} registration(s), "
            f"{len(session.registrations)} distinct call shape(s)"
            + (
                f", {len(session.upcalls)} upcall shape(s) of {config.upcall_pool_size} trampolines each"
                if session.upcalls
                else ""
            )
        )
        for key in sorted((*session.registrations, *session.upcalls)):
            app.display_debug(f"hatch-ffm:   {key}")

        from ._cache import resolve_cache_dir

        cache_dir = resolve_cache_dir(config.build_cache, self.root)
        self._workdir = tempfile.mkdtemp(prefix="hatch-ffm-")
        app.display_info(f"hatch-ffm: enabled for native access: {', '.join(units) or 'none'}")
        try:
            built = build_stubs(
                session.registrations.values(),
                targets,
                package,
                self._workdir,
                units,
                packages,
                session.upcalls.values(),
                config.upcall_pool_size,
                cache_dir,
                lambda message: app.display_warning(f"hatch-ffm: {message}"),
            )
        except BaseException:
            self._cleanup()
            raise
        include_key = "force_include_editable" if version == "editable" else "force_include"
        for file_name, path in built.files.items():
            build_data[include_key][path] = f"{package}/_ffm/{file_name}"
        for other, path in built.other_manifests.items():
            build_data[include_key][path] = f"{other}/_ffm/manifest.json"
        if version != "editable":
            build_data["tag"] = wheel_tag(targets)
        build_data["pure_python"] = False
        shapes = built.cached + built.compiled
        app.display_info(
            f"hatch-ffm: {len(session.registrations)} stub(s) for {', '.join(targets)} into "
            f"{package}/_ffm/ in {time.perf_counter() - started:.2f}s: "
            + (f"{built.parts} objects per target, " if built.parts > 1 else "")
            + f"{built.cached} of {shapes} call shape(s) from the build cache"
            + (f" ({cache_dir})" if cache_dir is not None else " (off)")
            + f", {built.compiled} compiled"
            + (f" in {built.jobs} processes" if built.jobs > 1 else "")
        )

    def finalize(self, version: str, build_data: dict[str, Any], artifact_path: str) -> None:
        self._cleanup()

    def _cleanup(self) -> None:
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None
