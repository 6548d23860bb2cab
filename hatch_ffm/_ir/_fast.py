"""The stubs' functions, built lighter than with ``llvmlite.ir``.

A wheel's stubs are most of its IR: one function per call shape, each made of hundreds of
instructions that ``llvmlite.ir`` makes as objects of several layers (names, operands,
attribute sets, metadata) and prints through layers of ``str.format``.  A stub is built here
with :class:`FastBuilder`, which has the methods of ``ir.IRBuilder`` that the stubs' code
and the code it shares with the helpers and accelerators (``_model``, ``_numbers``,
``_idioms``, ``_alloc``, ``_imports``) call, for a :class:`FastFunction`: each instruction is
a small object that holds its operands and prints itself as llvmlite prints it, but for its
name: llvmlite names every value (``%".12"``), these are numbered when the function is
printed (``%0``, ``%1``, as LLVM numbers unnamed values), which LLVM reads faster.  Blocks
keep their names.  The object compiled is the same, byte for byte
(``tests/test_codegen.py`` compiles stubs of every kind both ways).
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator, Sequence
from typing import Any

from llvmlite import ir

__all__ = ["FastBuilder", "FastFunction"]

_CMP = {">": "gt", "<": "lt", "==": "eq", "!=": "ne", ">=": "ge", "<=": "le"}
#: names that need no quotes in a label (``values._SIMPLE_IDENTIFIER_RE``)
_SIMPLE = re.compile(r"[-a-zA-Z$._][-a-zA-Z$._0-9]*$")
_I1 = ir.IntType(1)
_I32 = ir.IntType(32)
#: how long a block's name may be before ``if_then`` cuts it to make a name of it
_LONG_LABEL, _LABEL_HEAD = 50, 25
#: the reference of a value until its function is printed (see :meth:`FastFunction.__str__`)
_UNNUMBERED = "%?"
_LABEL = ir.LabelType()
_VOID = ir.VoidType


def _escaped(name: str) -> str:
    if "\\" in name or '"' in name:
        name = name.replace("\\", "\\5c").replace('"', "\\22")
    return name


class FastBlock:
    """A basic block of a :class:`FastFunction`."""

    __slots__ = ("_ref", "function", "instructions", "name", "terminator")
    type = _LABEL

    def __init__(self, function: FastFunction, name: str) -> None:
        self.function = function
        self.name = function.scope.register(name, deduplicate=True)
        self.instructions: list[_Instruction] = []
        self.terminator: _Instruction | None = None
        self._ref = f'%"{_escaped(self.name)}"'

    def get_reference(self) -> str:
        return self._ref

    @property
    def is_terminated(self) -> bool:
        return self.terminator is not None

    @property
    def parent(self) -> FastFunction:
        return self.function

    def label(self) -> str:
        name = self.name
        return name if _SIMPLE.match(name) else f'"{_escaped(name)}"'


class FastFunction(ir.Function):  # type: ignore[misc]  # (llvmlite is untyped)
    """A function of a module whose body is made of :class:`FastBlock` (it prints as
    llvmlite prints a function)."""

    def append_basic_block(self, name: str = "") -> FastBlock:
        block = FastBlock(self, name)
        self.blocks.append(block)
        return block

    @property
    def entry_basic_block(self) -> FastBlock:
        return self.blocks[0]  # type: ignore[no-any-return]

    def __str__(self) -> str:
        buf: list[str] = []
        self.descr_prototype(buf)
        buf.append("{\n")
        # the values are numbered in the order they are printed (the arguments are named)
        number = 0
        for block in self.blocks:
            for instr in block.instructions:
                if instr._ref is not None:
                    instr._ref = f"%{number}"
                    number += 1
        for block in self.blocks:
            buf.append(f"{block.label()}:\n")
            for instr in block.instructions:
                text = instr.text().rstrip()
                buf.append(f"  {text}\n" if instr._ref is None else f"  {instr._ref} = {text}\n")
        buf.append("}\n")
        return "".join(buf)


class _Instruction:
    __slots__ = ("_ref", "metadata", "type")

    def __init__(self, ref: str | None, typ: ir.Type) -> None:
        self._ref = ref
        self.type = typ
        self.metadata: Any = None

    def get_reference(self) -> str:
        assert self._ref is not None
        return self._ref

    def _metadata(self) -> str:
        return "" if self.metadata is None else f", !prof {self.metadata.get_reference()}"

    def text(self) -> str:
        raise NotImplementedError


class _Plain(_Instruction):
    __slots__ = ("operands", "opname")

    def __init__(self, ref: str, typ: ir.Type, opname: str, operands: tuple[Any, ...]) -> None:
        super().__init__(ref, typ)
        self.opname = opname
        self.operands = operands

    def text(self) -> str:
        operands = ", ".join([op.get_reference() for op in self.operands])
        return f"{self.opname} {self.type} {operands}{self._metadata()}"


class _Compare(_Instruction):
    __slots__ = ("lhs", "op", "opname", "rhs")

    def __init__(self, ref: str, opname: str, op: str, lhs: Any, rhs: Any) -> None:
        super().__init__(ref, _I1)
        self.opname, self.op, self.lhs, self.rhs = opname, op, lhs, rhs

    def text(self) -> str:
        lhs = self.lhs
        return (
            f"{self.opname} {self.op} {lhs.type} {lhs.get_reference()}, "
            f"{self.rhs.get_reference()} {self._metadata()}"
        )


class _Cast(_Instruction):
    __slots__ = ("opname", "value")

    def __init__(self, ref: str, typ: ir.Type, opname: str, value: Any) -> None:
        super().__init__(ref, typ)
        self.opname, self.value = opname, value

    def text(self) -> str:
        value = self.value
        return f"{self.opname} {value.type} {value.get_reference()} to {self.type} {self._metadata()}"


class _Select(_Instruction):
    __slots__ = ("cond", "lhs", "rhs")

    def __init__(self, ref: str, cond: Any, lhs: Any, rhs: Any) -> None:
        super().__init__(ref, lhs.type)
        self.cond, self.lhs, self.rhs = cond, lhs, rhs

    def text(self) -> str:
        cond, lhs, rhs = self.cond, self.lhs, self.rhs
        return (
            f"select  {cond.type} {cond.get_reference()}, {lhs.type} {lhs.get_reference()}, "
            f"{rhs.type} {rhs.get_reference()} {self._metadata()}"
        )


class _Load(_Instruction):
    __slots__ = ("align", "pointer")

    def __init__(self, ref: str, typ: ir.Type, pointer: Any, align: int | None) -> None:
        super().__init__(ref, typ)
        self.pointer, self.align = pointer, align

    def text(self) -> str:
        pointer = self.pointer
        align = "" if self.align is None else f", align {self.align}"
        return f"load {self.type}, {pointer.type} {pointer.get_reference()}{align}{self._metadata()}"


class _Store(_Instruction):
    __slots__ = ("align", "pointer", "value")

    def __init__(self, value: Any, pointer: Any, align: int | None) -> None:
        super().__init__(None, ir.VoidType())
        self.value, self.pointer, self.align = value, pointer, align

    def text(self) -> str:
        value, pointer = self.value, self.pointer
        align = "" if self.align is None else f", align {self.align}"
        return (
            f"store {value.type} {value.get_reference()}, {pointer.type} {pointer.get_reference()}"
            f"{align}{self._metadata()}"
        )


class _GEP(_Instruction):
    __slots__ = ("indices", "pointer", "source_etype")

    def __init__(self, ref: str, pointer: Any, indices: Sequence[Any], source_etype: ir.Type) -> None:
        super().__init__(ref, pointer.type)
        self.pointer, self.indices, self.source_etype = pointer, indices, source_etype

    def text(self) -> str:
        pointer = self.pointer
        indices = ", ".join([f"{i.type} {i.get_reference()}" for i in self.indices])
        return (
            f"getelementptr {self.source_etype}, {pointer.type} {pointer.get_reference()}, {indices} "
            f"{self._metadata()}"
        )


class _Call(_Instruction):
    __slots__ = ("arg_attributes", "args", "callee")

    def __init__(self, ref: str | None, typ: ir.Type, callee: Any, args: Sequence[Any]) -> None:
        super().__init__(ref, typ)
        self.callee, self.args = callee, args
        self.arg_attributes: dict[int, Any] = {}

    def text(self) -> str:
        attributes = self.arg_attributes
        args = []
        for i, a in enumerate(self.args):
            if i in attributes:
                args.append(f"{a.type} {' '.join(attributes[i]._to_list(a.type))} {a.get_reference()}")
            else:
                args.append(f"{a.type} {a.get_reference()}")
        fnty = self.callee.function_type
        ty = fnty if fnty.var_arg else fnty.return_type
        return f"call {ty} {self.callee.get_reference()}({', '.join(args)}){self._metadata()}"


class _Aggregate(_Instruction):
    __slots__ = ("aggregate", "indices", "value")

    def __init__(self, ref: str, typ: ir.Type, aggregate: Any, value: Any, indices: Sequence[int]) -> None:
        super().__init__(ref, typ)
        self.aggregate, self.value, self.indices = aggregate, value, indices

    def text(self) -> str:
        aggregate = self.aggregate
        indices = ", ".join([str(i) for i in self.indices])
        if self.value is None:
            return f"extractvalue {aggregate.type} {aggregate.get_reference()}, {indices} {self._metadata()}"
        value = self.value
        return (
            f"insertvalue {aggregate.type} {aggregate.get_reference()}, {value.type} "
            f"{value.get_reference()}, {indices} {self._metadata()}"
        )


class _Phi(_Instruction):
    __slots__ = ("incomings",)

    def __init__(self, ref: str, typ: ir.Type) -> None:
        super().__init__(ref, typ)
        self.incomings: list[tuple[Any, FastBlock]] = []

    def add_incoming(self, value: Any, block: FastBlock) -> None:
        self.incomings.append((value, block))

    def text(self) -> str:
        incoming = ", ".join([f"[{v.get_reference()}, {b.get_reference()}]" for v, b in self.incomings])
        return f"phi  {self.type} {incoming} {self._metadata()}"


class _Alloca(_Instruction):
    __slots__ = ("align", "allocated_type", "count")

    def __init__(self, ref: str, typ: ir.Type, count: Any) -> None:
        super().__init__(ref, typ.as_pointer())
        self.allocated_type, self.count = typ, count
        self.align: int | None = None

    def text(self) -> str:
        text = f"alloca {self.allocated_type}"
        if self.count is not None:
            text += f", {self.count.type} {self.count.get_reference()}"
        if self.align is not None:
            text += f", align {self.align}"
        return text + self._metadata()


class _Terminator(_Instruction):
    __slots__ = ("operands", "opname")

    def __init__(self, opname: str, operands: tuple[Any, ...]) -> None:
        super().__init__(None, ir.VoidType())
        self.opname, self.operands = opname, operands

    def text(self) -> str:
        if self.opname == "ret":
            (value,) = self.operands
            return f"ret {value.type} {value.get_reference()}{self._metadata()}"
        operands = ", ".join([f"{op.type} {op.get_reference()}" for op in self.operands])
        return f"{self.opname} {operands}{self._metadata()}"


class _Branch(_Terminator):
    __slots__ = ("module",)

    def __init__(self, module: ir.Module, operands: tuple[Any, ...]) -> None:
        super().__init__("br", operands)
        self.module = module

    def set_weights(self, weights: Sequence[int]) -> None:
        """Branch weights (``!prof``), as ``PredictableInstr.set_weights`` makes them."""
        if any(w < 0 for w in weights):
            raise ValueError("branch weight must be a positive integer")
        operands = [ir.MetaDataString(self.module, "branch_weights")]
        operands += [ir.Constant(_I32, w) for w in weights]
        self.metadata = self.module.add_metadata(operands)


class FastBuilder:
    """The methods of ``ir.IRBuilder`` that stubs are built with, for a
    :class:`FastFunction`."""

    __slots__ = ("_anchor", "_block")

    def __init__(self, block: FastBlock) -> None:
        self._block = block
        self._anchor: int | None = None

    # -- position -----------------------------------------------------------------------
    @property
    def block(self) -> FastBlock:
        return self._block

    basic_block = block

    @property
    def function(self) -> FastFunction:
        return self._block.function

    def position_at_end(self, block: FastBlock) -> None:
        self._block = block
        self._anchor = None

    def append_basic_block(self, name: str = "") -> FastBlock:
        return self._block.function.append_basic_block(name)

    @contextlib.contextmanager
    def goto_entry_block(self) -> Iterator[None]:
        old = self._block
        entry = old.function.blocks[0]
        self._block = entry
        terminator = entry.terminator
        self._anchor = None if terminator is None else entry.instructions.index(terminator)
        try:
            yield
        finally:
            self.position_at_end(old)

    @contextlib.contextmanager
    def _branch_helper(self, enter: FastBlock, exit: FastBlock) -> Iterator[FastBlock]:
        self.position_at_end(enter)
        yield exit
        if self._block.terminator is None:
            self.branch(exit)

    @contextlib.contextmanager
    def if_then(self, pred: Any, likely: bool | None = None) -> Iterator[FastBlock]:
        name = self._block.name
        if_block = self.append_basic_block(_label_suffix(name, ".if"))
        end = self.append_basic_block(_label_suffix(name, ".endif"))
        branch = self.cbranch(pred, if_block, end)
        if likely is not None:
            branch.set_weights([99, 1] if likely else [1, 99])
        with self._branch_helper(if_block, end):
            yield end
        self.position_at_end(end)

    @contextlib.contextmanager
    def if_else(self, pred: Any, likely: bool | None = None) -> Iterator[tuple[Any, Any]]:
        name = self._block.name
        if_block = self.append_basic_block(_label_suffix(name, ".if"))
        else_block = self.append_basic_block(_label_suffix(name, ".else"))
        end = self.append_basic_block(_label_suffix(name, ".endif"))
        branch = self.cbranch(pred, if_block, else_block)
        if likely is not None:
            branch.set_weights([99, 1] if likely else [1, 99])
        yield self._branch_helper(if_block, end), self._branch_helper(else_block, end)
        self.position_at_end(end)

    # -- instructions ---------------------------------------------------------------------
    def _insert(self, instr: Any) -> Any:
        if self._anchor is None:
            self._block.instructions.append(instr)
        else:
            self._block.instructions.insert(self._anchor, instr)
            self._anchor += 1
        return instr

    def _terminate(self, instr: _Terminator) -> Any:
        assert self._block.terminator is None
        self._insert(instr)
        self._block.terminator = instr
        return instr

    def _compare(self, opname: str, op: str, lhs: Any, rhs: Any) -> Any:
        return self._insert(_Compare(_UNNUMBERED, opname, op, lhs, rhs))

    def icmp_signed(self, cmpop: str, lhs: Any, rhs: Any) -> Any:
        return self._compare("icmp", _CMP[cmpop] if cmpop in ("==", "!=") else "s" + _CMP[cmpop], lhs, rhs)

    def icmp_unsigned(self, cmpop: str, lhs: Any, rhs: Any) -> Any:
        return self._compare("icmp", _CMP[cmpop] if cmpop in ("==", "!=") else "u" + _CMP[cmpop], lhs, rhs)

    def fcmp_ordered(self, cmpop: str, lhs: Any, rhs: Any) -> Any:
        return self._compare("fcmp", "o" + _CMP[cmpop] if cmpop in _CMP else cmpop, lhs, rhs)

    def _binop(self, opname: str, lhs: Any, rhs: Any) -> Any:
        if lhs.type != rhs.type:
            raise ValueError(f"Operands must be the same type, got ({lhs.type}, {rhs.type})")
        return self._insert(_Plain(_UNNUMBERED, lhs.type, opname, (lhs, rhs)))

    def add(self, lhs: Any, rhs: Any) -> Any:
        return self._binop("add", lhs, rhs)

    def sub(self, lhs: Any, rhs: Any) -> Any:
        return self._binop("sub", lhs, rhs)

    def mul(self, lhs: Any, rhs: Any) -> Any:
        return self._binop("mul", lhs, rhs)

    def and_(self, lhs: Any, rhs: Any) -> Any:
        return self._binop("and", lhs, rhs)

    def or_(self, lhs: Any, rhs: Any) -> Any:
        return self._binop("or", lhs, rhs)

    def xor(self, lhs: Any, rhs: Any) -> Any:
        return self._binop("xor", lhs, rhs)

    def not_(self, value: Any) -> Any:
        return self._binop("xor", value, ir.Constant(value.type, -1))

    def _cast(self, opname: str, value: Any, typ: ir.Type) -> Any:
        return self._insert(_Cast(_UNNUMBERED, typ, opname, value))

    def zext(self, value: Any, typ: ir.Type) -> Any:
        return self._cast("zext", value, typ)

    def sext(self, value: Any, typ: ir.Type) -> Any:
        return self._cast("sext", value, typ)

    def trunc(self, value: Any, typ: ir.Type) -> Any:
        return self._cast("trunc", value, typ)

    def fpext(self, value: Any, typ: ir.Type) -> Any:
        return self._cast("fpext", value, typ)

    def fptrunc(self, value: Any, typ: ir.Type) -> Any:
        return self._cast("fptrunc", value, typ)

    def inttoptr(self, value: Any, typ: ir.Type) -> Any:
        return self._cast("inttoptr", value, typ)

    def ptrtoint(self, value: Any, typ: ir.Type) -> Any:
        return self._cast("ptrtoint", value, typ)

    def select(self, cond: Any, lhs: Any, rhs: Any) -> Any:
        return self._insert(_Select(_UNNUMBERED, cond, lhs, rhs))

    def load(self, ptr: Any, name: str = "", align: int | None = None, typ: ir.Type | None = None) -> Any:
        assert not name
        if typ is None:
            if not isinstance(ptr, _Alloca):
                raise ValueError("Load lacks type.")
            typ = ptr.allocated_type
        return self._insert(_Load(_UNNUMBERED, typ, ptr, align))

    def store(self, value: Any, ptr: Any, align: int | None = None) -> Any:
        return self._insert(_Store(value, ptr, align))

    def gep(self, ptr: Any, indices: Sequence[Any], inbounds: bool = False, source_etype: Any = None) -> Any:
        assert not inbounds and source_etype is not None
        return self._insert(_GEP(_UNNUMBERED, ptr, indices, source_etype))

    def call(self, fn: Any, args: Sequence[Any]) -> Any:
        rtype = fn.function_type.return_type
        return self._insert(_Call(None if isinstance(rtype, _VOID) else _UNNUMBERED, rtype, fn, list(args)))

    def extract_value(self, agg: Any, idx: int | Sequence[int]) -> Any:
        indices = [idx] if isinstance(idx, int) else list(idx)
        typ = agg.type
        for i in indices:
            typ = typ.elements[i]
        return self._insert(_Aggregate(_UNNUMBERED, typ, agg, None, indices))

    def insert_value(self, agg: Any, value: Any, idx: int | Sequence[int]) -> Any:
        indices = [idx] if isinstance(idx, int) else list(idx)
        return self._insert(_Aggregate(_UNNUMBERED, agg.type, agg, value, indices))

    def phi(self, typ: ir.Type) -> Any:
        return self._insert(_Phi(_UNNUMBERED, typ))

    def alloca(self, typ: ir.Type, size: Any = None) -> Any:
        if size is not None and not isinstance(size, ir.Value):
            size = ir.Constant(_I32, size)
        return self._insert(_Alloca(_UNNUMBERED, typ, size))

    def ret(self, value: Any) -> Any:
        return self._terminate(_Terminator("ret", (value,)))

    def ret_void(self) -> Any:
        return self._terminate(_Terminator("ret void", ()))

    def branch(self, target: FastBlock) -> Any:
        return self._terminate(_Terminator("br", (target,)))

    def cbranch(self, cond: Any, truebr: FastBlock, falsebr: FastBlock) -> Any:
        return self._terminate(_Branch(self._block.function.module, (cond, truebr, falsebr)))


def _label_suffix(label: str, suffix: str) -> str:
    """``builder._label_suffix``: ``label + suffix``, the label cut if long."""
    if len(label) > _LONG_LABEL:
        return "".join([label[:_LABEL_HEAD], "..", suffix])
    return label + suffix
