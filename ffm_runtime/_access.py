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

A decision that lets a caller through is remembered for the calling code (its code
object), with what it was decided from: the module globals the code ran in, their
``__name__`` and ``__spec__``, and the values of both variables (by identity: setting a
variable makes a new value).  A later call from the same code, in the same globals, with
the same names and variables, is let through without walking the stack again (the native
``reinterpret`` reads the same table, see ``_contract.CELL_NATIVE_ACCESS``).  What the
remembered facts do not cover is never remembered: a first ``warn`` (it warns), a
``__main__`` run as a module (its unit comes from ``__spec__.name``), refusals.  A decision
of ``ALL-UNNAMED`` also needs the same ``sys.path`` entries (a manifest on a new one may
mention the unit); :func:`enabled_while`, and the registry when it finds manifests, forget
every decision.
"""

from __future__ import annotations

import os
import sys

from ._errors import IllegalCallerError, warn, warn_explicit
from ._locks import ForkSafeLock

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable
    from types import FrameType
    from typing import Final

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
#: what stands for "absent" in a remembered decision (see :func:`_remember`), and for a
#: ``__spec__`` that does not matter (the module is not ``__main__``)
_ABSENT: Final = object()
_UNCHECKED: Final = object()
#: decisions remembered per calling code: ``id(code) -> (globals, __name__, __spec__, value
#: of ENV_ENABLE, value of ENV_POLICY, unit, code, sys.path entries)``; names and values by
#: identity, ``_ABSENT`` for what was not there, ``_UNCHECKED`` for what does not matter
#: (keyed by ``id``: a code object's hash is computed anew each time, from its constants;
#: the entry keeps the code alive, so the id stays its)
_decided: dict[int, tuple[object, ...]] = {}
#: ``[code, entry]``: the decision remembered or found last (looked at before ``_decided``)
_last: list[object] = [None, None]
_ENABLE_KEY: Final = os.fsencode(ENV_ENABLE)
_POLICY_KEY: Final = os.fsencode(ENV_POLICY)


def _environment_data() -> dict[bytes, bytes] | None:
    """The dictionary behind ``os.environ`` (``None`` if it is not the usual one)."""
    data = getattr(os.environ, "_data", None)
    return data if type(data) is dict else None


def _facts(frame: FrameType) -> tuple[object, ...] | None:
    """What a decision for the code of ``frame`` is made from (see the module docstring)."""
    data = _environment_data()
    if data is None:
        return None
    scope = frame.f_globals
    name = scope.get("__name__", _ABSENT)
    return (
        scope,
        name,
        # only __main__'s unit depends on its __spec__
        scope.get("__spec__", _ABSENT) if name == "__main__" else _UNCHECKED,
        data.get(_ENABLE_KEY, _ABSENT),
        data.get(_POLICY_KEY, _ABSENT),
    )


def _remember(frame: FrameType | None, unit: str | None, by_path: bool = False) -> None:
    """Remember that the code of ``frame`` was let through (as ``unit``); ``by_path``: as long
    as ``sys.path`` holds the same entries (a decision of ``ALL-UNNAMED``: a manifest found on
    a new entry may mention the unit)."""
    if frame is None:
        return
    facts = _facts(frame)
    if facts is None:
        return
    name, spec = facts[1], facts[2]
    if (name is not _ABSENT and type(name) is not str) or (
        name == "__main__" and spec is not None and spec is not _ABSENT
    ):
        return  # the unit may come from elsewhere (a str subclass's methods, __spec__.name)
    path = sys.path
    if by_path and type(path) is not list:
        return
    if len(_decided) >= _DECIDED_MAX:
        _decided.clear()
    code = frame.f_code
    entry = (*facts, unit, code, tuple(path) if by_path else _UNCHECKED)
    _decided[id(code)] = entry
    _last[:] = [code, entry]


def _same_path(snapshot: object) -> bool:
    """Whether ``sys.path`` holds exactly the entries (the same objects) of ``snapshot``."""
    if snapshot is _UNCHECKED:
        return True
    path = sys.path
    assert isinstance(snapshot, tuple)
    return (
        type(path) is list
        and len(path) == len(snapshot)
        and all(now is then for now, then in zip(path, snapshot, strict=False))
    )


#: remembered decisions at most (then they are forgotten and remembered again)
_DECIDED_MAX: Final = 4096


def _remembered(frame: FrameType | None) -> tuple[bool, str | None]:
    """``(True, unit)`` if a decision remembered for the code of ``frame`` still holds (every
    fact the same object as when it was decided)."""
    if frame is None:
        return False, None
    code = frame.f_code
    entry = _decided.get(id(code))
    if entry is None or entry[6] is not code:
        return False, None
    facts = _facts(frame)
    if facts is None or any(then is not now for then, now in zip(entry, facts, strict=False)):
        return False, None
    if not _same_path(entry[7]):
        return False, None
    _last[:] = [code, entry]
    unit = entry[5]
    return True, unit if isinstance(unit, str) else None


#: what native code reads (``_contract.CELL_NATIVE_ACCESS``, ``NATIVE_ACCESS_ITEMS``)
NATIVE_STATE: Final = (
    _decided,
    _ABSENT,
    vars(os),
    os.environ,
    _environment_data(),
    "__name__",
    "__spec__",
    "environ",
    _ENABLE_KEY,
    _POLICY_KEY,
    _UNCHECKED,
    vars(sys),
    "path",
    _last,
    "_data",
)


def forget_decisions() -> None:
    """Forget every remembered decision (the set of enabled units changed)."""
    _decided.clear()
    _last[:] = [None, None]


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
        warn(warning, stacklevel=2)
    else:
        warn_explicit(
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
    return _enabled_by(unit) is not None


def _enabled_by(unit: str) -> str | None:
    """What enables ``unit`` (``"environment"``, ``"build"``, ``"manifest"`` or
    ``ALL_UNNAMED``), or ``None``."""
    from ._registry import registry

    environment = _environment_units()
    if unit in environment:
        return "environment"
    if any(unit in units for units in _build_units):
        return "build"
    enabled, mentioned = registry.native_access_units()
    if unit in enabled:
        return "manifest"  # manifests are only ever added: it stays enabled
    return ALL_UNNAMED if ALL_UNNAMED in environment and unit not in mentioned else None


class enabled_while:
    """Enable ``units`` while the block runs: the build hook runs a project's Features so,
    as the wheel it builds will enable them anyway."""

    __slots__ = ("_entry",)

    def __init__(self, units: Iterable[str]) -> None:
        self._entry = frozenset(units)

    def __enter__(self) -> None:
        with _lock:
            _build_units.append(self._entry)
            forget_decisions()

    def __exit__(self, *exc_info: object) -> None:
        with _lock:
            _build_units.remove(self._entry)
            forget_decisions()


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
    known, unit = _remembered(frame)
    if known:
        return unit
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
    enabled_by = None if unit is None else _enabled_by(unit)
    if enabled_by is not None:
        # by ALL-UNNAMED: as long as no manifest mentions the unit (one on a new sys.path entry)
        _remember(frame, unit, by_path=enabled_by == ALL_UNNAMED)
        return unit
    policy = _policy()
    if policy == "allow":
        _remember(frame, unit)
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
    if not first:
        _remember(frame, unit)  # warned before: let through silently from now on
    else:
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
            warn_explicit(
                message, NativeAccessWarning, frame.f_code.co_filename, frame.f_lineno, module=module
            )
        else:
            warn(message, NativeAccessWarning, stacklevel=2)
    return unit
