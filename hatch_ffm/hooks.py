"""Registers the ``ffm`` build hook with hatchling (entry-point group ``hatch``)."""

from __future__ import annotations

from hatchling.plugin import hookimpl

from .plugin import FfmBuildHook


@hookimpl
def hatch_register_build_hook() -> type[FfmBuildHook]:
    return FfmBuildHook
