"""Finding and running Features with pluggy.

Features come from the hook's ``features`` option (``"module:Class"``, the
analog of ``--features=``) and from the ``hatch_ffm.features`` entry-point
group of every installed distribution.  A class is instantiated without
arguments; its ``is_in_configuration`` / ``during_setup`` methods are hook
implementations whether or not they carry ``@hatch_ffm.hookimpl``.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import Any

import pluggy

from . import _hookspecs
from ._registration import DuringSetupAccess, RegistrationSession, open_session

__all__ = ["FeatureError", "FeatureManager", "load_feature_spec", "run_features"]

_HOOK_NAMES = frozenset({"is_in_configuration", "during_setup"})


class FeatureError(RuntimeError):
    """A Feature could not be loaded or failed."""


class FeatureManager(pluggy.PluginManager):
    """A pluggy manager that accepts Feature classes and unmarked hook methods."""

    def __init__(self) -> None:
        super().__init__(_hookspecs.PROJECT_NAME)
        self.add_hookspecs(_hookspecs)

    def register(self, plugin: Any, name: str | None = None) -> str | None:
        if isinstance(plugin, type):
            plugin = plugin()
        return super().register(plugin, name)

    def parse_hookimpl_opts(self, plugin: Any, name: str) -> Any:
        opts = super().parse_hookimpl_opts(plugin, name)
        if opts is None and name in _HOOK_NAMES and callable(getattr(plugin, name, None)):
            opts = {"wrapper": False, "hookwrapper": False, "optionalhook": False,
                    "tryfirst": False, "trylast": False, "specname": None}
        return opts


def load_feature_spec(spec: str, where: str) -> Any:
    """Import ``"package.module:Attribute"``; ``where`` names the config entry for errors."""
    module_name, _, attribute = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:
        hint = ""
        if type(exc).__name__ == "MissingForeignRegistrationError":
            hint = (" (importing the Feature's module, or its package's __init__.py, created a "
                    "downcall handle; stubs do not exist yet while the wheel is built: move "
                    "handle creation out of the modules the Feature imports)")
        raise FeatureError(f"{where}: cannot import module {module_name!r} of Feature "
                           f"{spec!r}: {type(exc).__name__}: {exc}{hint}") from exc
    target: Any = module
    for part in attribute.split("."):
        try:
            target = getattr(target, part)
        except AttributeError as exc:
            raise FeatureError(f"{where}: module {module_name!r} has no attribute "
                               f"{attribute!r} (Feature {spec!r})") from exc
    return target


def run_features(specs: Sequence[str], use_entry_points: bool, access: DuringSetupAccess,
                 option_path: str) -> tuple[RegistrationSession, list[str], list[str]]:
    """Discover Features, ask each whether it is in the configuration, run ``during_setup``.

    Returns the registration session and the names of the Features run and declined.
    """
    manager = FeatureManager()
    for index, spec in enumerate(specs):
        feature = load_feature_spec(spec, f"{option_path}.features[{index}]")
        try:
            manager.register(feature, name=spec)
        except (pluggy.PluginValidationError, ValueError, TypeError) as exc:
            raise FeatureError(f"{option_path}.features[{index}]: Feature {spec!r} is not "
                               f"valid: {exc}") from exc
    if use_entry_points:
        try:
            manager.load_setuptools_entrypoints(_hookspecs.ENTRY_POINT_GROUP)
        except Exception as exc:
            raise FeatureError(f"cannot load a Feature from the {_hookspecs.ENTRY_POINT_GROUP!r} "
                               f"entry-point group: {type(exc).__name__}: {exc}") from exc

    declined: list[str] = []
    for plugin in list(manager.get_plugins()):
        name = manager.get_name(plugin) or repr(plugin)
        method = getattr(plugin, "is_in_configuration", None)
        if method is not None and manager.parse_hookimpl_opts(plugin, "is_in_configuration") \
                is not None and not method(access=access):
            manager.unregister(plugin)
            declined.append(name)

    session = RegistrationSession(access.targets)
    ran: list[str] = []
    with open_session(session):
        for impl in reversed(manager.hook.during_setup.get_hookimpls()):
            session.current_feature = impl.plugin_name
            ran.append(impl.plugin_name)
            try:
                impl.function(access=access)
            except Exception as exc:
                raise FeatureError(
                    f"Feature {impl.plugin_name!r} failed in during_setup: {exc}") from exc
    return session, ran, declined
