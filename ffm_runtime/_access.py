"""Native access: the single gate every restricted operation goes through.

Restricted operations (creating downcall handles, upcall stubs, ``reinterpret``,
``with_target_layout``, ``library_lookup``, ``load_library``) call
:func:`ensure_native_access`.  The caller is the first module on the stack outside
``ffm_runtime``; its top-level package is the *unit* of permission.  A module run
with ``python -m pkg.tool`` or ``runpy.run_module`` counts as the module it was run
as (``__spec__.name``, so unit ``pkg``); a script (``python script.py``, ``-c``,
the interactive prompt) is the unit ``__main__``.  A call with no Python frame
above the runtime (a thread started from C, a C callback, an ``atexit``
callback) belongs to no unit (``None``): no name enables it, only the policy
decides.

A unit is enabled when

- the stub manifest of an installed wheel enables it: a wheel's manifest enables
  only the wheel's own top-level packages (the build hook's option
  ``enable-native-access``, by default all of them; see :mod:`._registry`), or
- it is named in ``FFM_ENABLE_NATIVE_ACCESS`` (comma-separated), or that variable
  contains ``ALL-UNNAMED`` and no manifest mentions the unit (as in Java, where
  ``ALL-UNNAMED`` covers the class path but not named modules).

Other callers meet the policy ``FFM_ILLEGAL_NATIVE_ACCESS``: ``deny`` (the default)
raises :class:`IllegalCallerError`, ``warn`` warns once per unit in the JDK's words,
``allow`` lets them through.  The check runs when a handle is created, never when
it is called.
"""

from __future__ import annotations

import contextlib
import os
import sys
import warnings
from collections.abc import Iterable, Iterator
from types import FrameType
from typing import Final

from ._errors import IllegalCallerError
from ._locks import ForkSafeLock

__all__ = [
    "ENV_ENABLE",
    "ENV_POLICY",
    "NativeAccessWarning",
    "caller_module",
    "caller_unit",
    "ensure_native_access",
    "unit_of",
    "warn_at_caller",
]

ENV_ENABLE: Final = "FFM_ENABLE_NATIVE_ACCESS"
ENV_POLICY: Final = "FFM_ILLEGAL_NATIVE_ACCESS"
ALL_UNNAMED: Final = "ALL-UNNAMED"
_POLICIES: Final = ("deny", "warn", "allow")
_RUNTIME_PACKAGE: Final = __name__.partition(".")[0]

_lock = ForkSafeLock()
_warned: set[str | None] = set()
#: units enabled for the duration of a build (see :func:`enabled_while`)
_build_units: list[frozenset[str]] = []


class NativeAccessWarning(RuntimeWarning):
    """A unit that is not enabled for native access used a restricted operation."""


def _caller_frame(skip: int) -> FrameType | None:
    try:
        frame: FrameType | None = sys._getframe(1 + skip)
    except ValueError:  # the stack is shallower than that: no caller
        return None
    while frame is not None:
        name = frame.f_globals.get("__name__", "")
        if not isinstance(name, str) or name.partition(".")[0] != _RUNTIME_PACKAGE:
            return frame
        frame = frame.f_back
    return None


def _module_of(frame: FrameType | None) -> str | None:
    """The module ``frame`` runs in; for ``__main__`` run by ``python -m`` or
    ``runpy.run_module``, the module it was run as.  ``None`` for no frame."""
    if frame is None:
        return None
    name = frame.f_globals.get("__name__")
    if not isinstance(name, str) or not name:
        return "__main__"
    if name == "__main__":
        spec_name = getattr(frame.f_globals.get("__spec__"), "name", None)
        if isinstance(spec_name, str) and spec_name and spec_name.partition(".")[0] != "__main__":
            return spec_name
    return name


def unit_of(module: str | None) -> str | None:
    """The unit of permission of ``module``: its top-level package (``None``: no unit)."""
    if module is None:
        return None
    return module.partition(".")[0] or "__main__"


def caller_module(skip: int = 0) -> str | None:
    """Name of the first module outside ``ffm_runtime`` on the call stack (``None``: there
    is no Python frame above the runtime)."""
    return _module_of(_caller_frame(skip + 1))


def caller_unit(skip: int = 0) -> str | None:
    """Top-level package of the calling module: the unit of native-access permission
    (``None``: a call with no Python caller, which belongs to no unit)."""
    return unit_of(caller_module(skip + 1))


def warn_at_caller(warning: Warning) -> None:
    """Issue ``warning`` at the first line outside ``ffm_runtime`` on the call stack."""
    frame = _caller_frame(1)
    if frame is None:
        warnings.warn(warning, stacklevel=2)
    else:
        warnings.warn_explicit(
            warning, type(warning), frame.f_code.co_filename, frame.f_lineno, module=_module_of(frame)
        )


def _environment_units() -> set[str]:
    return {unit.strip() for unit in os.environ.get(ENV_ENABLE, "").split(",") if unit.strip()}


def _policy() -> str:
    value = os.environ.get(ENV_POLICY, "deny").strip().lower() or "deny"
    if value not in _POLICIES:
        raise ValueError(f"{ENV_POLICY} must be one of {', '.join(_POLICIES)}, not {value!r}")
    return value


def is_enabled(unit: str) -> bool:
    """Whether ``unit`` may perform restricted operations without meeting the policy."""
    from ._registry import registry

    environment = _environment_units()
    if unit in environment or any(unit in units for units in _build_units):
        return True
    enabled, mentioned = registry.native_access_units()
    if unit in enabled:
        return True
    return ALL_UNNAMED in environment and unit not in mentioned


@contextlib.contextmanager
def enabled_while(units: Iterable[str]) -> Iterator[None]:
    """Enable ``units`` while the block runs: the build hook runs a project's Features so,
    as the wheel it builds will enable them anyway."""
    entry = frozenset(units)
    with _lock:
        _build_units.append(entry)
    try:
        yield
    finally:
        with _lock:
            _build_units.remove(entry)


def _how_to_enable(unit: str) -> str:
    from ._registry import registry

    for bad in registry.unreadable():
        if bad.package == unit:
            return (
                f"reinstall it, as its stub manifest cannot be read ({bad.error}), or set {ENV_ENABLE}={unit}"
            )
    _, mentioned = registry.native_access_units()
    if unit in mentioned:
        return (
            f'add "{unit}" to the option enable-native-access of '
            f"[tool.hatch.build.targets.wheel.hooks.ffm] of the project whose wheel ships it "
            f"and rebuild, or set {ENV_ENABLE}={unit}"
        )
    where = (
        ""
        if unit == "__main__"
        else f", or, if {unit} is built with hatch-ffm, list it in enable-native-access = "
        f'["{unit}"] under [tool.hatch.build.targets.wheel.hooks.ffm]'
    )
    return f"set {ENV_ENABLE}={unit} (or {ENV_ENABLE}={ALL_UNNAMED}){where}"


#: who makes a call that has no Python frame above the runtime
_NO_CALLER: Final = "code with no Python caller (a thread started from C, a C callback or an atexit callback)"


#: Top-level names of the standard library: never a unit of permission.
_STDLIB: Final = frozenset(getattr(sys, "stdlib_module_names", ()))


def _describe(unit: str | None) -> str:
    if unit is None:
        return _NO_CALLER
    return "the __main__ script" if unit == "__main__" else f"package '{unit}'"


def ensure_native_access(operation: str) -> str | None:
    """Check that the caller may perform the restricted ``operation``; return its unit
    (``None`` for a call with no Python caller, which only the policy can let through)."""
    frame = _caller_frame(1)
    module = _module_of(frame)
    unit = unit_of(module)
    who = _describe(unit)
    if unit is not None and unit != "__main__" and unit in _STDLIB:
        # a restricted method handed to the standard library directly (a thread's target, a
        # callback): the code that handed it over is not on the stack, so no unit is known
        who = (
            f"the standard library's {module} (a restricted method handed to it directly: "
            "call it from a function of your own package)"
        )
        unit = None
    if unit is not None and is_enabled(unit):
        return unit
    policy = _policy()
    if policy == "allow":
        return unit
    if policy == "deny":
        if unit is None:
            raise IllegalCallerError(
                f"Illegal native access from {who} calling the restricted {operation}: such a "
                f"call belongs to no unit, so no {ENV_ENABLE} setting enables it; make the call "
                f"from Python code of an enabled package (a thread target written in Python, "
                f"say), or relax the check with {ENV_POLICY}=warn or allow."
            )
        how = _how_to_enable(unit)
        raise IllegalCallerError(
            f"Illegal native access from {who} (module {module}) calling the restricted "
            f"{operation}: {who} is not enabled for native access; to enable it, {how}. "
            f"{ENV_POLICY}=warn or allow relaxes the check."
        )
    with _lock:
        first = unit not in _warned
        _warned.add(unit)
    if first:
        if unit is None:
            advice = f"Calls with no Python caller belong to no unit: only {ENV_POLICY} decides them"
            caller = f"{operation} has been called by {who}"
        else:
            advice = f"Use {ENV_ENABLE}={unit} to avoid a warning for callers in this package"
            caller = f"{operation} has been called by {module} in {who}"
        message = (
            f"A restricted method in ffm_runtime has been called\n{caller}\n{advice}\n"
            f"Restricted methods are blocked unless native access is enabled "
            f"({ENV_POLICY}=deny is the default)"
        )
        if frame is not None:
            warnings.warn_explicit(
                message, NativeAccessWarning, frame.f_code.co_filename, frame.f_lineno, module=module
            )
        else:
            warnings.warn(message, NativeAccessWarning, stacklevel=2)
    return unit
