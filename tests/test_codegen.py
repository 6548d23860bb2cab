"""Stub IR: generated text re-parsed and verified by LLVM, and its shape checked."""

from __future__ import annotations

import re

import pytest

from ffm_runtime import (
    ADDRESS,
    JAVA_BOOLEAN,
    JAVA_BYTE,
    JAVA_CHAR,
    JAVA_DOUBLE,
    JAVA_FLOAT,
    JAVA_INT,
    JAVA_LONG,
    JAVA_SHORT,
    FunctionDescriptor,
    Linker,
    _contract,
    registration_key,
)
from ffm_runtime._elf import parse
from hatch_ffm._compile import compile_image, compile_object, verify_ir
from hatch_ffm._ir import build_accelerator_module, build_stub_module, stub_symbol
from hatch_ffm._ir._imports import declared_type
from hatch_ffm._ir._stubs import StubModule
from hatch_ffm._lowering import LoweredSignature, lower

TRIPLE = "x86_64-unknown-linux-gnu"
ALL = (JAVA_BOOLEAN, JAVA_BYTE, JAVA_CHAR, JAVA_SHORT, JAVA_INT, JAVA_LONG, JAVA_FLOAT, JAVA_DOUBLE, ADDRESS)


def lowered(descriptor: FunctionDescriptor, *options: Linker.Option) -> LoweredSignature:
    return lower(registration_key(descriptor, options), descriptor, options)


def function_body(ir_text: str, name: str) -> str:
    match = re.search(rf'define ptr @"{name}"\(.*?\n}}\n', ir_text, re.S)
    assert match, name
    return match.group(0)


@pytest.mark.parametrize("layout", ALL, ids=lambda x: x.constant_name)
def test_every_value_layout_verifies(layout: object) -> None:
    sigs = [
        lowered(FunctionDescriptor.of(layout, layout)),  # type: ignore[arg-type]
        lowered(FunctionDescriptor.of_void(layout), Linker.Option.critical()),
    ]  # type: ignore[arg-type]
    verify_ir(str(build_stub_module(sigs, TRIPLE)))


def test_module_has_bound_and_unbound_variants() -> None:
    """One function, two names: the unbound variant is an alias (it tells them apart by
    ``self``, NULL for an unbound handle)."""
    sig = lowered(FunctionDescriptor.of(JAVA_INT, JAVA_INT, JAVA_INT))
    text = str(build_stub_module([sig], TRIPLE))
    base = stub_symbol("(i4i4)i4")
    assert f'define ptr @"{base}_b"(ptr' in text
    assert f'@"{base}_u" = alias ptr (ptr, ptr, i64), ptr @"{base}_b"' in text
    verify_ir(text)
    obj = parse(compile_object(text, TRIPLE))
    values = {s.name: s.value for s in obj.symbols if s.name.startswith(base)}
    assert values[base + "_u"] == values[base + "_b"]


def test_default_releases_the_gil_and_critical_keeps_it() -> None:
    default = lowered(FunctionDescriptor.of(JAVA_INT, JAVA_INT))
    critical = lowered(FunctionDescriptor.of(JAVA_INT, JAVA_INT), Linker.Option.critical())
    text = str(build_stub_module([default, critical], TRIPLE))
    default_body = function_body(text, stub_symbol(default.key) + "_b")
    critical_body = function_body(text, stub_symbol(critical.key) + "_b")
    assert "PyEval_SaveThread" in default_body and "PyEval_RestoreThread" in default_body
    assert "PyEval_SaveThread" not in critical_body


def test_small_integers_carry_extension_attributes() -> None:
    sig = lowered(FunctionDescriptor.of_void(JAVA_BYTE, JAVA_CHAR, JAVA_SHORT, JAVA_BOOLEAN))
    body = function_body(str(build_stub_module([sig], TRIPLE)), stub_symbol(sig.key) + "_b")
    assert re.search(
        r"call void %\S+\(i8 signext %\S+, i16 zeroext %\S+, i16 signext %\S+, "
        r"i8 zeroext %\S+\)",
        body,
    ), body


def test_imports_stay_inside_the_abi_contract() -> None:
    sigs = [lowered(FunctionDescriptor.of(layout, *ALL)) for layout in ALL]
    sigs.append(lowered(FunctionDescriptor.of_void()))
    obj = parse(compile_object(str(build_stub_module(sigs, TRIPLE)), TRIPLE))
    undefined = {s.name for s in obj.symbols if s.is_undefined and s.name}
    assert undefined, "stubs import CPython functions"
    assert all(_contract.allowed_import(name) for name in undefined), undefined
    defined = {s.name for s in obj.symbols if not s.is_undefined and s.binding == 1}
    assert {stub_symbol(s.key) + suffix for s in sigs for suffix in ("_b", "_u")} <= defined


@pytest.mark.parametrize("target", ["x86_64-linux", "aarch64-linux"])
def test_structs_up_to_the_by_value_limit_import_only_the_abi_contract(target: str) -> None:
    """Large copies become libc calls (AArch64: ``memcpy`` above 256 bytes); the loader must
    accept every import of a stub whose structs are within MAX_BY_VALUE_BYTE_SIZE."""
    from ffm_runtime import MemoryLayout
    from ffm_runtime._descriptor import MAX_BY_VALUE_BYTE_SIZE
    from ffm_runtime._targets import TARGETS

    sigs = []
    for size in (24, 128, 256, 264, 1024, MAX_BY_VALUE_BYTE_SIZE):
        big = MemoryLayout.struct_layout(MemoryLayout.sequence_layout(size // 8, JAVA_LONG))
        for descriptor in (
            FunctionDescriptor.of(big, big, JAVA_INT),
            FunctionDescriptor.of_void(*[big] * 9),
        ):  # past the registers
            sigs.append(lower(registration_key(descriptor), descriptor, (), target))
    triple = TARGETS[target].triple
    obj = parse(compile_object(str(build_stub_module(sigs, triple)), triple))
    undefined = {s.name for s in obj.symbols if s.is_undefined and s.name}
    assert {name for name in undefined if not _contract.allowed_import(name)} == set()


def test_stub_symbols_are_stable() -> None:
    assert stub_symbol("(i4i4)i4") == stub_symbol("(i4i4)i4")
    assert stub_symbol("(i4i4)i4") != stub_symbol("(i4i4)i4 critical")
    assert re.fullmatch(r"ffm_[0-9a-f]{20}", stub_symbol("()v"))


def test_imports_are_declared_with_the_contracts_c_signatures() -> None:
    """The contract (``ffm_runtime._contract``) writes each function's C signature next to its
    name; the generated code declares exactly that type."""
    sigs = [lowered(FunctionDescriptor.of(layout, *ALL)) for layout in ALL]
    modules = [build_stub_module(sigs, TRIPLE), build_accelerator_module(TRIPLE)]
    contract = {**_contract.PYTHON_FUNCTIONS, **_contract.LIBC_FUNCTIONS}
    declared = {
        fn.name: fn.function_type
        for module in modules
        for fn in module.functions
        if fn.is_declaration and not fn.name.startswith("llvm.")
    }
    assert len(declared) > 20
    for name, function_type in declared.items():
        assert str(function_type) == str(declared_type(contract[name])), name
    assert str(declared_type(contract["PyObject_CallFunction"])) == "ptr (ptr, ptr, ...)"
    assert str(declared_type(contract["PyList_SetItem"])) == "i32 (ptr, i64, ptr)"
    assert str(declared_type(contract["PyErr_Clear"])) == "void ()"


@pytest.mark.parametrize("name", sorted({*_contract.PYTHON_FUNCTIONS, *_contract.LIBC_FUNCTIONS}))
def test_every_contract_function_has_a_declarable_signature(name: str) -> None:
    signature = {**_contract.PYTHON_FUNCTIONS, **_contract.LIBC_FUNCTIONS}[name]
    assert str(declared_type(signature)).count("(") == 1


def test_an_unknown_c_type_in_the_contract_is_refused() -> None:
    with pytest.raises(ValueError, match=r"C type 'Py_complex' of 'Py_complex \(double\)'"):
        declared_type("Py_complex (double)")


def _every_kind_of_stub(target: str) -> tuple[list[LoweredSignature], list[object]]:
    """Downcall and upcall shapes of every kind the stubs have code for, lowered for
    ``target`` by a real registration session."""
    from ffm_runtime import MemoryLayout
    from hatch_ffm._registration import RegistrationSession

    pair = MemoryLayout.struct_layout(JAVA_INT.with_name("a"), JAVA_INT.with_name("b"))
    point = MemoryLayout.struct_layout(JAVA_DOUBLE.with_name("x"), JAVA_DOUBLE.with_name("y"))
    mixed = MemoryLayout.struct_layout(
        JAVA_FLOAT.with_name("f"), JAVA_SHORT.with_name("s"), MemoryLayout.padding_layout(2)
    )
    big = MemoryLayout.struct_layout(*(JAVA_LONG.with_name(n) for n in "abcde"))
    session = RegistrationSession((target,))
    critical, heap = Linker.Option.critical(), Linker.Option.critical(allow_heap_access=True)
    errno = Linker.Option.capture_call_state("errno")
    for layout in ALL:
        session.add(FunctionDescriptor.of(layout, layout, ADDRESS), ())
        session.add(FunctionDescriptor.of_void(layout, JAVA_INT), (critical,))
    for struct in (pair, point, mixed, big):
        session.add(FunctionDescriptor.of(struct, struct, ADDRESS, JAVA_BYTE), ())
        session.add(FunctionDescriptor.of(JAVA_LONG, struct, struct), (heap,))
        session.add_upcall(FunctionDescriptor.of(struct, struct, JAVA_DOUBLE), ())
    variadic = Linker.Option.first_variadic_arg(1)
    session.add(FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT, JAVA_DOUBLE), (variadic,))
    session.add(FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_LONG), (errno,))
    session.add_upcall(FunctionDescriptor.of_void(ADDRESS, JAVA_FLOAT, JAVA_CHAR), ())
    return (
        [r.signatures[target] for r in session.registrations.values()],
        [u.signatures[target] for u in session.upcalls.values()],
    )


@pytest.mark.parametrize("target", ["x86_64-linux", "aarch64-linux"])
def test_module_text_is_what_llvmlite_prints(target: str) -> None:
    """The build prints modules with ``_text.module_text`` (faster): the same characters as
    ``str(module)``, for stubs of every kind, upcall pools and the accelerators."""
    from ffm_runtime._targets import TARGETS
    from hatch_ffm._ir._text import module_text

    triple = TARGETS[target].triple
    signatures, upcalls = _every_kind_of_stub(target)
    for build in (
        lambda: build_stub_module(signatures, triple, upcalls, 3),  # type: ignore[arg-type]
        lambda: build_accelerator_module(triple),
    ):
        fast, slow = module_text(build()), str(build())
        assert fast.splitlines() == slow.splitlines()
        assert fast == slow


def test_branch_weights_are_the_nodes_llvmlite_makes(monkeypatch: pytest.MonkeyPatch) -> None:
    """The modules find their branch weights' metadata nodes faster than ``ir.Module``
    (``_helpers._Module``): the same text as with a plain ``ir.Module``."""
    from llvmlite import ir

    from hatch_ffm._ir import _helpers

    signatures, upcalls = _every_kind_of_stub("x86_64-linux")
    fast = str(build_stub_module(signatures, TRIPLE, upcalls, 3))  # type: ignore[arg-type]
    assert "!prof !1" in fast
    monkeypatch.setattr(_helpers, "_Module", lambda name: ir.Module(name=name))
    assert fast == str(build_stub_module(signatures, TRIPLE, upcalls, 3))  # type: ignore[arg-type]


@pytest.mark.parametrize("target", ["x86_64-linux", "aarch64-linux"])
def test_reused_helpers_print_as_built_ones(target: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Helper functions are built once per process and replayed in the next modules
    (``_reuse``): a module whose helpers are replayed, first used in another order, with
    other constant strings before them, is the same text as one whose helpers are built."""
    from ffm_runtime._targets import TARGETS
    from hatch_ffm._ir import _reuse

    triple = TARGETS[target].triple
    signatures, upcalls = _every_kind_of_stub(target)
    monkeypatch.setattr(_reuse, "_templates", {})
    build_stub_module(signatures, triple, upcalls, 2)  # (records every helper)
    assert _reuse._templates and all(_reuse._templates.values())

    def build(order: list[LoweredSignature], reused: bool) -> str:
        # a metadata node and constant strings first: the helpers' are numbered after them
        stubs = StubModule(triple)
        stubs.module.add_metadata(_reuse.weights_operands(stubs.module, ("branch_weights", 32, 99, 32, 1)))
        stubs.imports.cstring("first")
        for sig in order:
            stubs.add(sig, stub_symbol(sig.key))
        count = sum(isinstance(fn, _reuse.ReusedFunction) for fn in stubs.module.functions)
        assert count > 10 if reused else count == 0
        return str(stubs.module)

    for order in (signatures[::-1], signatures[1::2] + signatures[::2]):
        replayed = build(order, reused=True)
        pools = str(build_stub_module(order, triple, upcalls[::-1], 2))  # type: ignore[arg-type]
        monkeypatch.setattr(_reuse, "_templates", {})
        assert build(order, reused=False) == replayed
        monkeypatch.setattr(_reuse, "_templates", {})
        assert str(build_stub_module(order, triple, upcalls[::-1], 2)) == pools  # type: ignore[arg-type]
        verify_ir(replayed)


def test_compiling_a_part_leaves_the_garbage_collector_as_it_was() -> None:
    """``compile_part`` pauses the cyclic garbage collector while it makes the IR (the
    build's process may be the frontend's): enabled or not, it is so after, and the part's
    object is what the IR compiles to."""
    import gc

    from hatch_ffm._build import STUB_OPT_LEVEL, compile_part
    from hatch_ffm._ir._text import module_text

    sigs = [lowered(FunctionDescriptor.of(JAVA_INT, JAVA_INT, ADDRESS))]
    expected = compile_image(module_text(build_stub_module(sigs, TRIPLE)), TRIPLE, STUB_OPT_LEVEL)
    was = gc.isenabled()
    try:
        for enabled in (True, False):
            (gc.enable if enabled else gc.disable)()
            assert compile_part(sigs, [], TRIPLE, 0, STUB_OPT_LEVEL) == expected
            assert gc.isenabled() is enabled
    finally:
        (gc.enable if was else gc.disable)()


@pytest.mark.parametrize("target", ["x86_64-linux", "aarch64-linux"])
def test_stubs_built_fast_are_what_llvmlite_builds(target: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Stubs are built with ``_fast.FastBuilder`` (lighter than ``ir.IRBuilder``): the same
    module text as with llvmlite's builder and functions but for the values' names (numbered,
    not named), and the same object, for stubs of every kind."""
    from llvmlite import ir

    from ffm_runtime._targets import TARGETS
    from hatch_ffm._ir import _stubs

    triple = TARGETS[target].triple
    signatures, upcalls = _every_kind_of_stub(target)
    fast = str(build_stub_module(signatures, triple, upcalls, 2))  # type: ignore[arg-type]
    monkeypatch.setattr(_stubs, "FastFunction", ir.Function)
    monkeypatch.setattr(_stubs, "FastBuilder", ir.IRBuilder)
    built = build_stub_module(signatures, triple, upcalls, 2)  # type: ignore[arg-type]
    assert any(type(fn) is ir.Function and fn.name.endswith("_b") for fn in built.functions)
    names = re.compile(r'%(\d+|"\.\d+")(?=\W)')
    assert names.sub("%v", fast) == names.sub("%v", str(built))
    assert fast != str(built)
    assert compile_object(fast, triple, 0) == compile_object(str(built), triple, 0)
