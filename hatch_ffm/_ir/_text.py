"""A module's IR text, as ``str(module)`` prints it, faster.

``llvmlite.ir`` prints an instruction through layers of ``str.format`` calls on cached
strings; printing was a third of a stub's build.  :func:`module_text` prints the function
bodies itself, an instruction class at a time, the same characters as llvmlite's ``descr``
methods (``tests/test_codegen.py`` compares both on every kind of stub and on the
accelerators); an instruction of another class, or an instruction with flags or options
these printers do not know, is printed by llvmlite.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from llvmlite import ir
from llvmlite.ir import instructions as _instructions

__all__ = ["function_text", "module_text"]


def _metadata(instr: Any) -> str:
    """``_stringify_metadata(leading_comma=True)``."""
    return "".join([f", !{k} {v.get_reference()}" for k, v in instr.metadata.items()])


def _plain(instr: Any) -> str | None:
    if instr.flags:
        return None
    operands = ", ".join([op.get_reference() for op in instr.operands])
    return f"{instr.opname} {instr.type} {operands}{_metadata(instr) if instr.metadata else ''}"


def _call(instr: Any) -> str | None:
    if instr.cconv or instr.tail or instr.fastmath:
        return None
    callee = instr.callee
    fnty = callee.function_type
    attributes = instr.arg_attributes
    args = []
    for i, a in enumerate(instr.operands[1:]):
        if i in attributes:
            args.append(f"{a.type} {' '.join(attributes[i]._to_list(a.type))} {a.get_reference()}")
        else:
            args.append(f"{a.type} {a.get_reference()}")
    ty = fnty if fnty.var_arg else fnty.return_type
    fn_attrs = " " + " ".join(instr.attributes._to_list(fnty.return_type)) if instr.attributes else ""
    metadata = _metadata(instr) if instr.metadata else ""
    return f"call {ty} {callee.get_reference()}({', '.join(args)}){fn_attrs}{metadata}"


def _terminator(instr: Any) -> str:
    operands = ", ".join([f"{op.type} {op.get_reference()}" for op in instr.operands])
    return f"{instr.opname} {operands}{_metadata(instr) if instr.metadata else ''}"


def _ret(instr: Any) -> str:
    metadata = _metadata(instr) if instr.metadata else ""
    if instr.operands:
        (value,) = instr.operands
        return f"{instr.opname} {value.type} {value.get_reference()}{metadata}"
    return f"{instr.opname}{metadata}"


def _load(instr: Any) -> str:
    (ptr,) = instr.operands
    align = "" if instr.align is None else f", align {instr.align}"
    metadata = _metadata(instr) if instr.metadata else ""
    return f"load {instr.type}, {ptr.type} {ptr.get_reference()}{align}{metadata}"


def _store(instr: Any) -> str:
    value, ptr = instr.operands
    align = "" if instr.align is None else f", align {instr.align}"
    metadata = _metadata(instr) if instr.metadata else ""
    return f"store {value.type} {value.get_reference()}, {ptr.type} {ptr.get_reference()}{align}{metadata}"


def _compare(instr: Any) -> str:
    flags = "".join([" " + flag for flag in instr.flags])
    lhs, rhs = instr.operands
    metadata = _metadata(instr) if instr.metadata else ""
    operands = f"{lhs.type} {lhs.get_reference()}, {rhs.get_reference()}"
    return f"{instr.opname}{flags} {instr.op} {operands} {metadata}"


def _cast(instr: Any) -> str:
    (value,) = instr.operands
    metadata = _metadata(instr) if instr.metadata else ""
    return f"{instr.opname} {value.type} {value.get_reference()} to {instr.type} {metadata}"


def _alloca(instr: Any) -> str:
    text = f"{instr.opname} {instr.allocated_type}"
    if instr.operands:
        (count,) = instr.operands
        text += f", {count.type} {count.get_reference()}"
    if instr.align is not None:
        text += f", align {instr.align}"
    if instr.metadata:
        text += _metadata(instr)
    return text


def _gep(instr: Any) -> str:
    indices = ", ".join([f"{i.type} {i.get_reference()}" for i in instr.indices])
    op = "getelementptr inbounds" if instr.inbounds else "getelementptr"
    pointer = instr.pointer
    metadata = _metadata(instr) if instr.metadata else ""
    return f"{op} {instr.source_etype}, {pointer.type} {pointer.get_reference()}, {indices} {metadata}"


def _phi(instr: Any) -> str:
    incoming = ", ".join([f"[{v.get_reference()}, {b.get_reference()}]" for v, b in instr.incomings])
    metadata = _metadata(instr) if instr.metadata else ""
    return f"phi {' '.join(instr.flags)} {instr.type} {incoming} {metadata}"


def _extract(instr: Any) -> str:
    aggregate = instr.aggregate
    indices = ", ".join([str(i) for i in instr.indices])
    metadata = _metadata(instr) if instr.metadata else ""
    return f"extractvalue {aggregate.type} {aggregate.get_reference()}, {indices} {metadata}"


def _insert(instr: Any) -> str:
    aggregate, value = instr.aggregate, instr.value
    indices = ", ".join([str(i) for i in instr.indices])
    metadata = _metadata(instr) if instr.metadata else ""
    return (
        f"insertvalue {aggregate.type} {aggregate.get_reference()}, {value.type} "
        f"{value.get_reference()}, {indices} {metadata}"
    )


def _select(instr: Any) -> str:
    cond, lhs, rhs = instr.cond, instr.lhs, instr.rhs
    metadata = _metadata(instr) if instr.metadata else ""
    return (
        f"select {' '.join(instr.flags)} {cond.type} {cond.get_reference()}, {lhs.type} "
        f"{lhs.get_reference()}, {rhs.type} {rhs.get_reference()} {metadata}"
    )


#: an instruction's ``descr`` (without its result's name, the newline and the trailing
#: blanks that ``str`` strips), by exact class; ``None``: print it with llvmlite
_PRINTERS: dict[type, Callable[[Any], str | None]] = {
    _instructions.Instruction: _plain,
    _instructions.CallInstr: _call,
    _instructions.Branch: _terminator,
    _instructions.ConditionalBranch: _terminator,
    _instructions.Ret: _ret,
    _instructions.LoadInstr: _load,
    _instructions.StoreInstr: _store,
    _instructions.ICMPInstr: _compare,
    _instructions.FCMPInstr: _compare,
    _instructions.CastInstr: _cast,
    _instructions.AllocaInstr: _alloca,
    _instructions.GEPInstr: _gep,
    _instructions.PhiInstr: _phi,
    _instructions.ExtractValue: _extract,
    _instructions.InsertValue: _insert,
    _instructions.SelectInstr: _select,
}
_VOID = ir.VoidType


def function_text(fn: Any) -> str:
    """``str(fn)`` of a function with a body."""
    buf: list[str] = []
    fn.descr_prototype(buf)
    buf.append("{\n")
    printers = _PRINTERS
    for block in fn.blocks:
        buf.append(f"{block._format_name()}:\n")
        for instr in block.instructions:
            printer = printers.get(type(instr))
            text = None if printer is None else printer(instr)
            if text is None:
                buf.append(f"  {instr}\n")
            elif type(instr.type) is _VOID:
                buf.append(f"  {text.rstrip()}\n")
            else:
                buf.append(f"  {instr.get_reference()} = {text.rstrip()}\n")
    buf.append("}\n")
    return "".join(buf)


def module_text(module: ir.Module) -> str:
    """``str(module)``."""
    if module.get_identified_types():
        return str(module)
    lines = [
        f'; ModuleID = "{module.name}"',
        f'target triple = "{module.triple}"',
        f'target datalayout = "{module.data_layout}"',
        "",
    ]
    for value in module.globals.values():
        if type(value) is ir.Function and value.blocks:
            lines.append(function_text(value))
        else:
            lines.append(str(value))
    lines += module._get_metadata_lines()
    return "\n".join(lines)
