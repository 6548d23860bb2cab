"""Native accelerators for the hottest methods: ``Arena.allocate``, ``MemorySegment.get``,
``MemorySegment.set`` and the confined arena's life cycle, ``Arena.of_confined``,
``__enter__`` and ``close``/``__exit__`` (see ``_contract.ACCELERATORS``).

hatch-ffm's own wheel carries them, compiled by llvmlite when that wheel is built, one
object per target under ``_objects/``, listed with their SHA-256 in
``_objects/manifest.json``.  They are installed on first use: ``import ffm_runtime`` only
puts a small Python method in the place of each accelerated one (:func:`prepare`), which
installs them all (:func:`install`) the first time any of them is called, then calls the
Python method.  Installing hash-checks the object for this machine, loads it like a stub
object and makes its functions the methods; the Python methods stay as the accelerators'
slow path, which takes every case but the common one.  Without a manifest, or an object
for this machine, with a damaged manifest, a missing, modified or foreign object (a
``RuntimeWarning`` says which, once, at first use), or with ``FFM_PURE_PYTHON=1`` in the
environment, the Python methods are used as they are.  A
method replaced before the first use (``Arena.allocate = ...``) stays as it was replaced;
put back later (``unittest.mock.patch`` puts back what it replaced), it is accelerated
from its next call.
What the runtime itself calls (an upcall opens and closes the arena of its struct
arguments with ``Arena.of_confined`` and ``Arena.close``: :func:`arena_methods`) is its own
methods, the accelerators once installed, never a replacement of the user's (say, a
``mock.patch`` that was active when the runtime set itself up).
"""

from __future__ import annotations

import os

from . import _bootstrap, _contract
from ._arena import Arena
from ._memory import MemorySegment

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, Final

__all__ = ["OBJECTS_DIR", "accelerated", "arena_methods", "fallback", "install", "prepare"]

OBJECTS_DIR: Final = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_objects")
MANIFEST: Final = "manifest.json"
#: the format of that manifest this runtime reads (its objects are stub images)
ACCEL_FORMAT: Final = 2
_CLASSES: Final[dict[str, type]] = {"Arena": Arena, "MemorySegment": MemorySegment}

#: the Python implementations, in ``_contract.ACCELERATORS`` order, called with ``self``
#: first (``None`` for static methods); filled by :func:`prepare`
_python_methods: list[Callable[..., Any]] = []
#: what the class held before: functions, and ``staticmethod`` objects
_originals: list[Any] = []
#: per accelerator: ``(class, names it is held under, what prepare put there)``
_placed: list[tuple[type, list[str], Any]] = []
#: ``[True]`` once :func:`install` ran, ``[True, True]`` if the accelerators are in use
_state: list[bool] = []
#: the runtime's own methods once :func:`install` ran (the accelerators, or the originals)
_own: list[Any] = []
_OPEN_CONFINED: Final = _contract.ACCELERATORS.index(("Arena", "of_confined"))
_CLOSE: Final = _contract.ACCELERATORS.index(("Arena", "close"))


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


_CO_VARARGS, _CO_VARKEYWORDS = 0x04, 0x08


def _text_signature(name: str, method: Callable[..., Any], static: bool) -> str:
    """``name($self, ...)``: the signature line that ``inspect`` reads from a builtin's doc
    (made from the function's code object: ``inspect`` costs more to import than the rest)."""
    code = method.__code__
    names = code.co_varnames
    count, keyword_only = code.co_argcount, code.co_kwonlyargcount
    defaults = method.__defaults__ or ()
    keyword_defaults = method.__kwdefaults__ or {}
    parts = []
    first_default = count - len(defaults)
    for i, parameter in enumerate(names[:count]):
        parts.append(f"{parameter}={defaults[i - first_default]!r}" if i >= first_default else parameter)
        if i + 1 == code.co_posonlyargcount:
            parts.append("/")
    position = count + keyword_only
    if code.co_flags & _CO_VARARGS:
        parts.append(f"*{names[position]}")
        position += 1
    elif keyword_only:
        parts.append("*")
    for parameter in names[count : count + keyword_only]:
        parts.append(
            f"{parameter}={keyword_defaults[parameter]!r}" if parameter in keyword_defaults else parameter
        )
    if code.co_flags & _CO_VARKEYWORDS:
        parts.append(f"**{names[position]}")
    if not static:
        parts[0] = "$self"
    return f"{name}({', '.join(parts)})\n--\n\n"


def _static(function: Callable[..., Any]) -> Callable[..., Any]:
    """``function`` called like a method's slow path: with a ``self`` it ignores."""
    return lambda _self, *args, **kwargs: function(*args, **kwargs)


def accelerated() -> bool:
    """Whether the native accelerators are in use in this process (installing them, if
    that was not done yet: see the module doc)."""
    install()
    return len(_state) > 1


def arena_methods() -> tuple[Callable[[], Any], Callable[[Any], None]]:
    """``Arena.of_confined`` and ``Arena.close`` as the runtime has them: the accelerators
    once installed, else the Python methods, whatever the class holds now (the cells
    ``_contract.CELL_OPEN_CONFINED`` and ``CELL_CLOSE_ARENA``)."""
    methods = _own or _originals
    open_confined = methods[_OPEN_CONFINED]
    if isinstance(open_confined, staticmethod):
        open_confined = open_confined.__func__
    return open_confined, methods[_CLOSE]


def prepare() -> None:
    """Put a Python method that installs the accelerators on first use in the place of each
    accelerated method (at ``import ffm_runtime``); with ``FFM_PURE_PYTHON`` set, only note
    the Python methods."""
    if _originals:
        return
    pure = bool(os.environ.get("FFM_PURE_PYTHON"))
    for class_name, name in _contract.ACCELERATORS:
        cls = _CLASSES[class_name]
        # a method the class inherits (Arena.allocate_from) is installed on the class itself
        original = cls.__dict__[name] if name in cls.__dict__ else getattr(cls, name)
        static = (class_name, name) in _contract.STATIC_ACCELERATORS
        python = original.__func__ if static else original
        aliases = [key for key, value in vars(cls).items() if value is original] or [name]  # __exit__
        first_use = _first_use(python, len(_originals))
        placed = staticmethod(first_use) if static else first_use
        _originals.append(original)
        _python_methods.append(_static(python) if static else python)
        if not pure:
            _placed.append((cls, aliases, placed))
    for cls, aliases, placed in _placed:
        for alias in aliases:
            setattr(cls, alias, placed)


def _first_use(python: Callable[..., Any], index: int) -> Callable[..., Any]:
    """A stand-in for the method ``python`` (accelerator ``index``) until the accelerators
    are installed.  Called after that, the stand-in was put back in its class since (by
    ``unittest.mock.patch``, say, which was in place while they were installed): it puts
    the accelerator in its place."""

    def first_use(*args: Any, **kwargs: Any) -> Any:
        if install():
            _put_back_one(index)
        return python(*args, **kwargs)

    first_use.__name__ = python.__name__
    first_use.__qualname__ = python.__qualname__
    first_use.__doc__ = python.__doc__
    first_use.__module__ = python.__module__
    first_use.__wrapped__ = python  # type: ignore[attr-defined]  # what inspect.signature follows
    return first_use


def _put_back_one(index: int) -> None:
    """Put the installed accelerator ``index`` where its stand-in is (again)."""
    if _placed and _own:
        cls, aliases, placed = _placed[index]
        with _bootstrap.lock:
            for alias in aliases:
                if cls.__dict__.get(alias) is placed:
                    setattr(cls, alias, _own[index])


def _put_back(replacements: list[Any]) -> None:
    """Put ``replacements`` (one per accelerator) where :func:`prepare` put its stand-ins,
    except where the stand-in was replaced since, then store the confined arena's methods
    (:func:`arena_methods`, ``replacements`` now) in their cells if the cells were filled
    already."""
    for (cls, aliases, placed), replacement in zip(_placed, replacements, strict=True):
        for alias in aliases:
            if cls.__dict__.get(alias) is placed:
                setattr(cls, alias, replacement)
    _own[:] = replacements
    if _bootstrap.done():  # else bootstrap() stores them
        open_confined, close = arena_methods()
        _bootstrap.set_cell(_contract.CELL_OPEN_CONFINED, open_confined)
        _bootstrap.set_cell(_contract.CELL_CLOSE_ARENA, close)


def install() -> bool:
    """Install the accelerators for this machine, once, if there are any (see the module
    doc); whether they are in use."""
    if not _state:
        with _bootstrap.lock:
            if not _state:
                used = _install() if _placed else False
                if not used and _placed:
                    _put_back(_originals)
                _state[:] = [True, True] if used else [True]
    return len(_state) > 1


def _not_used(problem: str) -> None:
    """Warn (at the caller) that the accelerators are not used, and why."""
    from ._access import warn_at_caller

    warn_at_caller(RuntimeWarning(f"ffm_runtime: {problem}; not using the accelerators: reinstall hatch-ffm"))


class _NotUsed(Exception):
    """Why the accelerators cannot be used (see :func:`_read_object`)."""


def _read_object(target: str) -> tuple[str, bytes] | None:
    """The accelerators' object for ``target`` (its path and bytes), hash-checked; ``None``
    if there is none (no manifest: a source tree; none for this machine), or if it cannot be
    used (a warning says why)."""
    manifest_path = os.path.join(OBJECTS_DIR, MANIFEST)
    try:
        try:
            with open(manifest_path, "rb") as handle:
                raw = handle.read()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise _NotUsed(f"cannot read {manifest_path} ({exc})") from exc
        from ._manifest import loads

        try:
            manifest = loads(raw.decode("utf-8"))
            if manifest["format"] != ACCEL_FORMAT:
                found = manifest["format"]
                raise _NotUsed(
                    f"{manifest_path} has format {found!r}, not {ACCEL_FORMAT} (another hatch-ffm's)"
                )
            entry = manifest["objects"].get(target)
            if entry is None:
                return None
            path, expected = os.path.join(OBJECTS_DIR, entry["file"]), entry.get("sha256")
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise _NotUsed(f"{manifest_path} is damaged ({type(exc).__name__}: {exc})") from exc
        try:
            with open(path, "rb") as handle:
                data = handle.read()
        except OSError as exc:
            raise _NotUsed(f"cannot read {path} ({exc})") from exc
        from ._digest import sha256_hex

        digest = sha256_hex(data)
        if digest != expected:
            raise _NotUsed(f"{path} does not match its manifest (sha256 {digest})")
    except _NotUsed as exc:
        _not_used(str(exc))
        return None
    return path, data


def _install() -> bool:
    from ._errors import StubLoadError
    from ._targets import TARGETS, host_target

    target = host_target()
    found = _read_object(target)
    if found is None:
        return False
    path, data = found
    from ._loader import load_image

    _bootstrap.ensure()
    try:
        loaded = load_image(data, _bootstrap.resolve_import, path, TARGETS[target].elf_machine)
    except StubLoadError as exc:
        _not_used(f"cannot use {path}: {exc}")
        return False
    names = [_contract.accelerator_symbol(c, m) for c, m in _contract.ACCELERATORS]
    missing = [name for name in names if name not in loaded.symbols]
    if missing:
        _not_used(
            f"cannot use {path}: it has no symbol {missing[0]} (not the accelerators of this ffm_runtime)"
        )
        return False
    symbols = [loaded.symbols[name] for name in names]
    if not all(loaded.in_code(address) for address in symbols):
        _not_used(f"cannot use {path}: an accelerator's entry is not in its code")
        return False
    flags = _contract.METH_FASTCALL | _contract.METH_KEYWORDS
    methods = []
    for (class_name, name), address, original in zip(
        _contract.ACCELERATORS, symbols, _originals, strict=True
    ):
        cls = _CLASSES[class_name]
        static = (class_name, name) in _contract.STATIC_ACCELERATORS
        python = original.__func__ if static else original
        doc = _text_signature(name, python, static) + (python.__doc__ or "")
        if static:
            methods.append(staticmethod(_bootstrap.new_builtin(address, None, name, doc, flags)))
        else:
            methods.append(_bootstrap.new_method(cls, address, name, doc))
    _put_back(methods)
    return True
