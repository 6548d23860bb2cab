"""The helpers of one LLVM module, made together: what its stubs or accelerators build with.

Each internal function a helper stands for is emitted once per module, on first use (a
cached property of its helper object), which keeps modules small.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from llvmlite import ir
from llvmlite.ir import _utils

from ._alloc import Allocation
from ._idioms import Idioms
from ._imports import Imports
from ._model import Model
from ._numbers import Numbers
from ._reuse import Recording, weights_key

__all__ = ["Helpers"]


class _Scope(_utils.NameScope):  # type: ignore[misc]  # (llvmlite is untyped)
    """A function's names, as ``NameScope`` gives them (``.1``, ``fail.2``), in one call."""

    def register(self, name: str, deduplicate: bool = False) -> str:
        used = self._useset
        if name in used:
            if not deduplicate:
                raise _utils.DuplicatedNameError(name)
            counts = self._basenamemap
            base = name
            while name in used:
                ident = counts[base] + 1
                counts[base] = ident
                name = f"{base}.{ident}"
        used.add(name)
        return name


class _Module(ir.Module):  # type: ignore[misc]  # (llvmlite is untyped)
    """An ``ir.Module`` that finds its metadata nodes of branch weights (every ``likely=``
    of ``if_then``, every ``set_weights``) faster: llvmlite keys them by its operands,
    whose hash prints each constant.  The same nodes, numbered the same."""

    def __init__(self, name: str) -> None:
        super().__init__(name=name)
        self._weights: dict[tuple[object, ...], Any] = {}
        #: the recordings of the helper functions being built (``_reuse``), innermost last
        self.recordings: list[Recording] = []

    def add_global(self, value: Any) -> None:
        super().add_global(value)
        # (a function's names: every value and block of it is named in its scope)
        if type(getattr(value, "scope", None)) is _utils.NameScope:
            value.scope.__class__ = _Scope

    def add_metadata(self, operands: Any) -> Any:
        key = weights_key(operands)
        if key is None:
            if self.recordings:
                self.recordings[-1].replayable = False
            return super().add_metadata(operands)
        node = self._weights.get(key)
        if node is None:
            node = self._weights[key] = super().add_metadata(operands)
        if self.recordings:
            recording = self.recordings[-1]
            recording.events.append(("metadata", key))
            recording.values[len(recording.events) - 1] = node
        return node


@dataclass(frozen=True)
class Helpers:
    imports: Imports
    idioms: Idioms
    model: Model
    numbers: Numbers
    alloc: Allocation

    @classmethod
    def for_module(cls, name: str, triple: str) -> Helpers:
        """The helpers of a new, empty module ``name`` for ``triple``."""
        module = _Module(name)
        module.triple = triple
        imports = Imports(module)
        idioms = Idioms(imports)
        model = Model(imports, idioms)
        helpers = cls(imports, idioms, model, Numbers(imports, idioms), Allocation(imports, idioms, model))
        for owner in (model, helpers.numbers, helpers.alloc):
            imports.owners[type(owner)] = owner
        return helpers

    @property
    def module(self) -> ir.Module:
        return self.imports.module
