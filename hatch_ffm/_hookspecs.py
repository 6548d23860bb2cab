"""The hooks a Feature implements (pluggy specifications, project name ``hatch_ffm``).

A Feature is any object (usually a class, instantiated without arguments)
with some of these methods; marking them with ``@hatch_ffm.hookimpl`` is
optional.  They are the analog of GraalVM's ``Feature`` interface.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from ._registration import DuringSetupAccess

PROJECT_NAME = "hatch_ffm"
ENTRY_POINT_GROUP = "hatch_ffm.features"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@hookspec
def is_in_configuration(access: DuringSetupAccess) -> bool:  # type: ignore[empty-body]
    """Return ``False`` to leave this Feature out of the build (default: included)."""


@hookspec
def during_setup(access: DuringSetupAccess) -> None:
    """Register call shapes with ``RuntimeForeignAccess.register_for_downcall``."""
