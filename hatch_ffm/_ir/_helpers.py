"""The helpers of one LLVM module, made together: what its stubs or accelerators build with.

Each internal function a helper stands for is emitted once per module, on first use (a
cached property of its helper object), which keeps modules small.
"""

from __future__ import annotations

from dataclasses import dataclass

from llvmlite import ir

from ._alloc import Allocation
from ._idioms import Idioms
from ._imports import Imports
from ._model import Model
from ._numbers import Numbers

__all__ = ["Helpers"]


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
        module = ir.Module(name=name)
        module.triple = triple
        imports = Imports(module)
        idioms = Idioms(imports)
        model = Model(imports, idioms)
        return cls(imports, idioms, model, Numbers(imports, idioms), Allocation(imports, idioms, model))

    @property
    def module(self) -> ir.Module:
        return self.imports.module
