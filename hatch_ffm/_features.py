"""Finding and running Features with pluggy.

Features come from the hook's ``features`` option (``"module:Class"``, the
analog of ``--features=``) and from the ``hatch_ffm.features`` entry-point
group of every installed distribution.  A class is instantiated without
arguments; its ``is_in_configuration`` / ``during_setup`` methods are hook
implementations whether or not they carry ``@hatch_ffm.hookimpl``.

Whatever a Feature raises while it is imported, instantiated or run stops the build
with a :class:`FeatureError` that names the Feature and the method and carries the
exception's type, message and traceback; ``SystemExit`` too (it would otherwise end
the build process without a wheel and, from ``sys.exit(0)``, without an error).  Only
``KeyboardInterrupt`` passes through unchanged: the user interrupting is not the
Feature failing.
"""

from __future__ import annotations

import builtins
import importlib
import traceback
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import pluggy

from . import _hookspecs
from ._registration import DuringSetupAccess, RegistrationSession, open_session

__all__ = ["FeatureError", "FeatureManager", "load_feature_spec", "run_features"]

_HOOK_NAMES = frozenset({"is_in_configuration", "during_setup"})

_T = TypeVar("_T")


class FeatureError(RuntimeError):
    """A Feature could not be loaded or failed.

    For a failure inside the Feature's code, ``feature`` is its name, ``hook`` the method
    (``__init__``, ``is_in_configuration`` or ``during_setup``) and ``error`` the exception
    it raised; the message carries that exception's type, message and traceback.
    """

    def __init__(
        self,
        message: str,
        *,
        feature: str | None = None,
        hook: str | None = None,
        error: BaseException | None = None,
    ) -> None:
        super().__init__(message)
        self.feature = feature
        self.hook = hook
        self.error = error


def _is_interrupt(exc: BaseException) -> bool:
    """``KeyboardInterrupt``, alone or in an exception group: let it interrupt the build."""
    if isinstance(exc, KeyboardInterrupt):
        return True
    group: Any = getattr(builtins, "BaseExceptionGroup", None)  # Python 3.11+
    return group is not None and isinstance(exc, group) and exc.subgroup(KeyboardInterrupt) is not None


def _summary(exc: BaseException) -> str:
    """``Type: message`` as the last line of a traceback shows it."""
    kind = type(exc)
    name = (
        kind.__qualname__
        if kind.__module__ in ("builtins", "__main__")
        else f"{kind.__module__}.{kind.__qualname__}"
    )
    try:
        text = str(exc)
    except Exception:
        text = "<exception str() failed>"
    return f"{name}: {text}" if text else name


def _failure(feature: str, hook: str, exc: BaseException) -> FeatureError:
    """The error for ``exc``, raised by ``feature``'s ``hook``: the Feature's name, the
    exception's type and message, then its traceback from the Feature's code on."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_frame.f_globals.get("__name__") == __name__:
        tb = tb.tb_next  # this module's frames: the caller, not the Feature
    lines = traceback.format_exception(type(exc), exc, tb)
    detail = "".join("    " + line for text in lines for line in text.splitlines(True))
    hint = ""
    if isinstance(exc, SystemExit):
        hint = (
            " (sys.exit() in a Feature would end the build without a wheel; raise an "
            "exception to stop the build, or return False from is_in_configuration(access) "
            "to leave the Feature out)"
        )
    return FeatureError(
        f"Feature {feature!r} failed in {hook}: {_summary(exc)}{hint}\n{detail.rstrip()}",
        feature=feature,
        hook=hook,
        error=exc,
    )


def _call(feature: str, hook: str, function: Callable[..., _T], **kwargs: Any) -> _T:
    """``function(**kwargs)``, a method of ``feature``; what it raises becomes a FeatureError."""
    try:
        return function(**kwargs)
    except BaseException as exc:
        if _is_interrupt(exc):
            raise
        # the message carries the traceback: chaining would print it a second time
        raise _failure(feature, hook, exc) from None


class FeatureManager(pluggy.PluginManager):
    """A pluggy manager that accepts Feature classes and unmarked hook methods."""

    def __init__(self) -> None:
        super().__init__(_hookspecs.PROJECT_NAME)
        self.add_hookspecs(_hookspecs)

    def register(self, plugin: Any, name: str | None = None) -> str | None:
        if isinstance(plugin, type):
            plugin = _call(name or plugin.__qualname__, "__init__", plugin)
        return super().register(plugin, name)

    def parse_hookimpl_opts(self, plugin: Any, name: str) -> Any:
        opts = super().parse_hookimpl_opts(plugin, name)
        if opts is None and name in _HOOK_NAMES and callable(getattr(plugin, name, None)):
            opts = {
                "wrapper": False,
                "hookwrapper": False,
                "optionalhook": False,
                "tryfirst": False,
                "trylast": False,
                "specname": None,
            }
        return opts


def load_feature_spec(spec: str, where: str) -> Any:
    """Import ``"package.module:Attribute"``; ``where`` names the config entry for errors."""
    module_name, _, attribute = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except BaseException as exc:
        if _is_interrupt(exc):
            raise
        hint = ""
        if type(exc).__name__ == "MissingForeignRegistrationError":
            hint = (
                " (importing the Feature's module, or its package's __init__.py, created a "
                "downcall handle; stubs do not exist yet while the wheel is built: move "
                "handle creation out of the modules the Feature imports)"
            )
        elif isinstance(exc, SystemExit):
            hint = " (the module called sys.exit(): a Feature's module must not end the build)"
        raise FeatureError(
            f"{where}: cannot import module {module_name!r} of Feature "
            f"{spec!r}: {type(exc).__name__}: {exc}{hint}"
        ) from exc
    target: Any = module
    for part in attribute.split("."):
        try:
            target = getattr(target, part)
        except AttributeError as exc:
            raise FeatureError(
                f"{where}: module {module_name!r} has no attribute {attribute!r} (Feature {spec!r})"
            ) from exc
    return target


def run_features(
    specs: Sequence[str], use_entry_points: bool, access: DuringSetupAccess, option_path: str
) -> tuple[RegistrationSession, list[str], list[str]]:
    """Discover Features, ask each whether it is in the configuration, run ``during_setup``.

    Returns the registration session and the names of the Features run and declined.
    """
    manager = FeatureManager()
    for index, spec in enumerate(specs):
        feature = load_feature_spec(spec, f"{option_path}.features[{index}]")
        try:
            manager.register(feature, name=spec)
        except (pluggy.PluginValidationError, ValueError, TypeError) as exc:
            raise FeatureError(
                f"{option_path}.features[{index}]: Feature {spec!r} is not valid: {exc}"
            ) from exc
    if use_entry_points:
        try:
            manager.load_setuptools_entrypoints(_hookspecs.ENTRY_POINT_GROUP)
        except FeatureError:
            raise
        except BaseException as exc:
            if _is_interrupt(exc):
                raise
            raise FeatureError(
                f"cannot load a Feature from the {_hookspecs.ENTRY_POINT_GROUP!r} "
                f"entry-point group: {type(exc).__name__}: {exc}"
            ) from exc

    declined: list[str] = []
    for plugin in list(manager.get_plugins()):
        name = manager.get_name(plugin) or repr(plugin)
        method = getattr(plugin, "is_in_configuration", None)
        if (
            method is not None
            and manager.parse_hookimpl_opts(plugin, "is_in_configuration") is not None
            and not _call(name, "is_in_configuration", method, access=access)
        ):
            manager.unregister(plugin)
            declined.append(name)

    session = RegistrationSession(access.targets)
    ran: list[str] = []
    with open_session(session):
        for impl in reversed(manager.hook.during_setup.get_hookimpls()):
            session.current_feature = impl.plugin_name
            ran.append(impl.plugin_name)
            _call(impl.plugin_name, "during_setup", impl.function, access=access)
    return session, ran, declined
