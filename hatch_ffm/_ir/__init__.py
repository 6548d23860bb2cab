"""IR generation (pure ``llvmlite.ir``): the native code hatch-ffm compiles, as LLVM modules.

Two products, one entry point each: :func:`build_stub_module` (a wheel's downcall stubs,
from lowered call shapes) and :func:`build_accelerator_module` (``ffm_runtime``'s
accelerators).  ``hatch_ffm._compile`` turns either into an object file.

Layers, each used by those after it:

- ``_types``: IR types, and those of lowering's scalar kinds and register pieces;
- ``_imports``: the declarations of the contract's imports (``ffm_runtime._contract``);
- ``_idioms``: value/ok pairs, checked CPython calls, giving up;
- ``_model``: the runtime's objects (fields, types, ints, the guard, segment checks);
- ``_numbers``: Python numbers to C values and back;
- ``_alloc``: segments cut natively (arena slabs, prefix and slicing allocators);
- ``_helpers``: all of these for one module;
- ``_stubs`` and ``_accelerators``: the two products.
"""

from __future__ import annotations

from collections.abc import Iterable

from llvmlite import ir

from .._lowering import LoweredSignature, LoweredUpcall
from ._accelerators import build_accelerators
from ._stubs import build_stubs, stub_symbol
from ._upcalls import UPCALL_SLOTS_SUFFIX, trampoline_symbol

__all__ = [
    "UPCALL_SLOTS_SUFFIX",
    "build_accelerator_module",
    "build_stub_module",
    "stub_symbol",
    "trampoline_symbol",
]


def build_stub_module(
    signatures: Iterable[LoweredSignature],
    triple: str,
    upcalls: Iterable[LoweredUpcall] = (),
    pool_size: int = 0,
) -> ir.Module:
    """One LLVM module for ``triple`` holding both variants (bound, unbound) of the stub of
    every signature, named after :func:`stub_symbol`, and for every upcall shape its entry,
    its slots and ``pool_size`` trampolines (``_upcalls``)."""
    return build_stubs(signatures, triple, upcalls, pool_size)


def build_accelerator_module(triple: str) -> ir.Module:
    """The LLVM module for ``triple`` of every accelerator in ``_contract.ACCELERATORS``."""
    return build_accelerators(triple)
