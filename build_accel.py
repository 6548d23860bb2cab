"""Build hook of hatch-ffm's own wheel: compiles ffm_runtime's native accelerators.

hatchling runs it (``[tool.hatch.build.targets.wheel.hooks.custom]``) with llvmlite in the
build environment.  A wheel gets fresh objects under ``ffm_runtime/_objects/``; an editable
install writes them into the source tree, where the editable package is imported from.
See ``hatch_ffm/_ir/_accelerators.py`` (what they are) and ``ffm_runtime/_accel.py`` (how they
load).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface


class AcceleratorBuildHook(BuildHookInterface):  # type: ignore[type-arg]
    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        sys.path.insert(0, self.root)
        try:
            from hatch_ffm._build import write_accelerators
        finally:
            sys.path.remove(self.root)
        in_tree = Path(self.root) / "ffm_runtime" / "_objects"
        if version == "editable":
            write_accelerators(in_tree)
            return
        self._directory = tempfile.TemporaryDirectory(prefix="ffm-accel-")
        built = Path(self._directory.name)
        write_accelerators(built)
        for path in sorted(built.iterdir()):
            build_data["force_include"][str(path)] = f"ffm_runtime/_objects/{path.name}"

    def finalize(self, version: str, build_data: dict[str, Any], artifact_path: str) -> None:
        directory = getattr(self, "_directory", None)
        if directory is not None:
            directory.cleanup()
