"""Helper functions built once per process, then reused as text.

Every module (every part of a wheel's stubs) has its own copy of each helper function it
uses (``ffm_h_*``, see ``Idioms.helper``), built on first use by a :class:`helper_function`
property.  The first time a process builds a helper, the property records what the build
asks of the module, in order: the helper's own function, the contract's imports and globals,
constant strings, branch weights' metadata and the other helpers it calls; and the helper's
text, with the module's numbers of its constant strings and metadata nodes left open.  In
every later module of the same name and triple, the property replays that: the same
requests, in the same order (so the module's globals and metadata are numbered as a build
would number them), and a function that prints as the recorded text with this module's
numbers.  The module's text is the same as if the helper had been built
(``tests/test_codegen.py``).

A helper whose build does what the recording cannot replay (metadata other than branch
weights, a global made otherwise, a reference to a global it did not ask for) is built in
every module.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from llvmlite import ir

from ._text import function_text

__all__ = ["Recording", "ReusedFunction", "helper_function"]

#: the module's numbers in a helper's text: constant strings and metadata nodes
_NUMBERED = re.compile(r'@"\.str\.\d+"|!prof !\d+')
#: every global a helper's text names
_GLOBAL = re.compile(r'@"([^"]*)"')


@dataclass
class Recording:
    """What one helper's build asked of its module (see :class:`helper_function`)."""

    #: ("self",), ("function", name), ("global", name, type), ("cstring", text),
    #: ("metadata", key), ("helper", owner class, property name)
    events: list[tuple[Any, ...]] = field(default_factory=list)
    #: the values the build got, by event index (a constant string, a metadata node)
    values: dict[int, Any] = field(default_factory=dict)
    #: the names of the helpers it called, and of the globals they added to the module
    nested: set[str] = field(default_factory=set)
    #: False: a request the recording cannot replay
    replayable: bool = True


@dataclass(frozen=True)
class _Template:
    name: str
    ftype: ir.FunctionType
    events: tuple[tuple[Any, ...], ...]
    #: the text, pieces of it and (ints) indexes of the events whose value's reference goes there
    pieces: tuple[str | int, ...]


#: (module name, triple, owner class, property) -> the helper's template, or None: built
#: in every module
_templates: dict[tuple[str, str, str, str], _Template | None] = {}


class ReusedFunction(ir.Function):  # type: ignore[misc]  # (llvmlite is untyped)
    """A helper function replayed from its template: it prints as its text."""

    text = ""

    @property
    def is_declaration(self) -> bool:
        return False

    def __str__(self) -> str:
        return self.text


class helper_function:  # (a decorator, as functools.cached_property)
    """As ``functools.cached_property``, for a property that builds a helper function of
    the owner's module (an owner has ``imports``, and is registered in
    ``imports.owners``): built once per process, replayed in the other modules."""

    def __init__(self, build: Any) -> None:
        self.build = build
        self.name = build.__name__
        self.__doc__ = build.__doc__

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __set__(self, obj: object, value: object) -> None:
        raise AttributeError(f"{self.name} is read-only")

    def __get__(self, obj: Any, owner: type | None = None) -> Any:
        if obj is None:
            return self
        fn = obj.__dict__.get("_helper_" + self.name)
        imports = obj.imports
        stack: list[Recording] = imports.recordings
        if fn is not None:
            if stack:
                stack[-1].events.append(("helper", type(obj), self.name))
                stack[-1].nested.add(fn.name)
            return fn
        module = imports.module
        before = set(module.globals) if stack else None
        key = (module.name, module.triple, type(obj).__qualname__, self.name)
        template = _templates.get(key)
        if template is not None and all(e[1] in imports.owners for e in template.events if e[0] == "helper"):
            fn = _replay(template, imports)
        else:
            recording = Recording()
            stack.append(recording)
            try:
                fn = self.build(obj)
            finally:
                stack.pop()
            if key not in _templates:
                _templates[key] = _template(recording, fn)
        obj.__dict__["_helper_" + self.name] = fn
        if stack:
            outer = stack[-1]
            outer.events.append(("helper", type(obj), self.name))
            assert before is not None
            outer.nested.update(set(module.globals) - before)
            outer.nested.add(fn.name)
        return fn


def _template(recording: Recording, fn: Any) -> _Template | None:
    """The template of a helper built with ``recording``; None if it cannot be replayed."""
    if not recording.replayable or ("self",) not in recording.events or type(fn) is not ir.Function:
        return None
    text = function_text(fn)
    references: dict[str, int] = {}
    named = {fn.name} | recording.nested
    for index, event in enumerate(recording.events):
        if event[0] in ("function", "global"):
            named.add(event[1])
        elif event[0] == "cstring":
            references.setdefault(recording.values[index].get_reference(), index)
        elif event[0] == "metadata":
            references.setdefault("!prof " + recording.values[index].get_reference(), index)
    for name in _GLOBAL.findall(text):
        if name not in named and f'@"{name}"' not in references:
            return None
    pieces: list[str | int] = []
    start = 0
    for match in _NUMBERED.finditer(text):
        if match.group() not in references:
            return None
        pieces += [text[start : match.start()], references[match.group()]]
        start = match.end()
    pieces.append(text[start:])
    return _Template(fn.name, fn.ftype, tuple(recording.events), tuple(pieces))


def _replay(template: _Template, imports: Any) -> ReusedFunction:
    """The requests of ``template``'s build, made of ``imports``' module, and its function."""
    module = imports.module
    values: dict[int, str] = {}
    fn: ReusedFunction | None = None
    # (the helpers it calls, replayed or built, record nothing here)
    imports.recordings.append(Recording())
    try:
        for index, event in enumerate(template.events):
            kind = event[0]
            if kind == "self":
                fn = ReusedFunction(module, template.ftype, template.name)
            elif kind == "function":
                imports.function(event[1])
            elif kind == "global":
                imports.global_variable(event[1], event[2])
            elif kind == "cstring":
                values[index] = imports.cstring(event[1]).get_reference()
            elif kind == "metadata":
                values[index] = (
                    "!prof " + module.add_metadata(weights_operands(module, event[1])).get_reference()
                )
            else:
                getattr(imports.owners[event[1]], event[2])
    finally:
        imports.recordings.pop()
    assert fn is not None
    fn.text = "".join(piece if isinstance(piece, str) else values[piece] for piece in template.pieces)
    return fn


def weights_key(operands: Any) -> tuple[object, ...] | None:
    """The key of a branch weights' metadata node (``!"branch_weights"`` and i32
    constants), or None for other metadata."""
    if not isinstance(operands, list) or not operands or type(operands[0]) is not ir.MetaDataString:
        return None
    key: tuple[object, ...] = (operands[0].string,)
    for operand in operands[1:]:
        if type(operand) is not ir.Constant or type(operand.type) is not ir.IntType:
            return None
        key += (operand.type.width, operand.constant)
    return key


def weights_operands(module: ir.Module, key: tuple[Any, ...]) -> list[Any]:
    """The operands of the metadata node of ``key`` (see :func:`weights_key`)."""
    operands: list[Any] = [ir.MetaDataString(module, key[0])]
    for index in range(1, len(key), 2):
        operands.append(ir.Constant(ir.IntType(key[index]), key[index + 1]))
    return operands
