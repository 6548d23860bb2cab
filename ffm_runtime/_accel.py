"""Native accelerators for the hottest methods: ``Arena.allocate``, ``MemorySegment.get``,
``MemorySegment.set`` and the confined arena's life cycle, ``Arena.of_confined``,
``__enter__`` and ``close``/``__exit__`` (see ``_contract.ACCELERATORS``).

hatch-ffm's own wheel carries them, compiled by llvmlite when that wheel is built, one
object per target under ``_objects/``, listed with their SHA-256 in
``_objects/manifest.json``.  At import the object for this machine is hash-checked,
loaded like a stub object and its functions become the methods; the Python methods stay
as the accelerators' slow path, which takes every case but the common one.  Without an
object for this machine, with a modified one (a ``RuntimeWarning`` says so), or with
``FFM_PURE_PYTHON=1`` in the environment, the Python methods are used as they are.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

from . import _bootstrap, _contract
from ._arena import Arena
from ._errors import StubLoadError
from ._loader import load_object
from ._memory import MemorySegment
from ._targets import TARGETS, host_target

__all__ = ["OBJECTS_DIR", "accelerated", "fallback", "install"]

OBJECTS_DIR: Final = Path(__file__).with_name("_objects")
MANIFEST: Final = "manifest.json"
_CLASSES: Final[dict[str, type]] = {"Arena": Arena, "MemorySegment": MemorySegment}

#: the Python implementations, in ``_contract.ACCELERATORS`` order, once installed, called
#: with ``self`` first (``None`` for static methods)
_python_methods: list[Callable[..., Any]] = []
#: what the class held before: functions, and ``staticmethod`` objects
_originals: list[Any] = []


def fallback(
    index: int,
    self: object,
    values: tuple[Any, ...],
    kwnames: tuple[str, ...] | None,
    methods: list[Callable[..., Any]] = _python_methods,
) -> Any:
    """The slow path of accelerator ``index`` (the contract's ``CELL_ACCEL_FALLBACK``): its
    Python method, with the same arguments.
    (``methods`` is bound here: a finalizer can call an accelerator at exit, after this
    module's globals were cleared.)"""
    method = methods[index]
    if kwnames is None:
        return method(self, *values)
    positional = len(values) - len(kwnames)
    return method(self, *values[:positional], **dict(zip(kwnames, values[positional:], strict=True)))


def _text_signature(name: str, method: Callable[..., Any], static: bool) -> str:
    """``name($self, ...)``: the signature line that ``inspect`` reads from a builtin's doc."""
    parameters = list(inspect.signature(method).parameters.values())[0 if static else 1 :]
    plain = [str(p.replace(annotation=inspect.Parameter.empty)) for p in parameters]
    return f"{name}({', '.join(plain if static else ['$self', *plain])})\n--\n\n"


def _static(function: Callable[..., Any]) -> Callable[..., Any]:
    """``function`` called like a method's slow path: with a ``self`` it ignores."""
    return lambda _self, *args, **kwargs: function(*args, **kwargs)


def accelerated() -> bool:
    """Whether the native accelerators are in use in this process."""
    return bool(_python_methods)


def install() -> bool:
    """Install the accelerators for this machine, if there are any (see the module doc)."""
    if _python_methods or os.environ.get("FFM_PURE_PYTHON"):
        return bool(_python_methods)
    target = host_target()
    try:
        manifest = json.loads((OBJECTS_DIR / MANIFEST).read_text())
        entry = manifest["objects"][target]
        path = OBJECTS_DIR / entry["file"]
        data = path.read_bytes()
    except (OSError, ValueError, KeyError, TypeError):
        return False  # no accelerators for this machine (or none built): Python it is
    digest = hashlib.sha256(data).hexdigest()
    if digest != entry.get("sha256"):
        warnings.warn(
            f"ffm_runtime: {path} does not match its manifest (sha256 {digest}); "
            "not using it: reinstall hatch-ffm",
            RuntimeWarning,
            stacklevel=2,
        )
        return False
    try:
        loaded = load_object(data, _bootstrap.resolve_import, str(path), TARGETS[target].elf_machine)
        symbols = [loaded.symbols[_contract.accelerator_symbol(c, m)] for c, m in _contract.ACCELERATORS]
    except (StubLoadError, KeyError) as exc:
        warnings.warn(f"ffm_runtime: cannot use {path}: {exc}", RuntimeWarning, stacklevel=2)
        return False
    flags = _contract.METH_FASTCALL | _contract.METH_KEYWORDS
    replacements = []
    for (class_name, name), address in zip(_contract.ACCELERATORS, symbols, strict=True):
        cls = _CLASSES[class_name]
        # a method the class inherits (Arena.allocate_from) is installed on the class itself
        original = cls.__dict__[name] if name in cls.__dict__ else getattr(cls, name)
        static = (class_name, name) in _contract.STATIC_ACCELERATORS
        python = original.__func__ if static else original
        doc = _text_signature(name, python, static) + (python.__doc__ or "")
        if static:
            method: Any = staticmethod(_bootstrap.new_builtin(address, None, name, doc, flags))
        else:
            method = _bootstrap.new_method(cls, address, name, doc)
        aliases = [key for key, value in vars(cls).items() if value is original] or [name]  # __exit__
        replacements.append((cls, aliases, original, _static(python) if static else python, method))
    for cls, aliases, original, python, method in replacements:
        _originals.append(original)
        _python_methods.append(python)
        for alias in aliases:
            setattr(cls, alias, method)
    return True
