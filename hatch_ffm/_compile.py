"""The one place where LLVM IR becomes machine code (``llvmlite.binding``)."""

from __future__ import annotations

from ffm_runtime._locks import ForkSafeLock

__all__ = ["compile_image", "compile_object", "verify_ir"]

_init_lock = ForkSafeLock()
_initialized = False


def _initialize() -> None:
    global _initialized
    with _init_lock:
        if not _initialized:
            import llvmlite.binding as llvm

            llvm.initialize_all_targets()
            llvm.initialize_all_asmprinters()
            _initialized = True


def verify_ir(ir_text: str) -> None:
    """Parse and verify IR text with LLVM; raise ``RuntimeError`` when invalid."""
    _initialize()
    import llvmlite.binding as llvm

    module = llvm.parse_assembly(ir_text)
    module.verify()


def compile_object(ir_text: str, triple: str, opt: int = 2) -> bytes:
    """Compile IR text to an ELF relocatable object for ``triple`` (small PIC code), with
    LLVM's code generation at optimization level ``opt`` (0-3)."""
    _initialize()
    import llvmlite.binding as llvm

    module = llvm.parse_assembly(ir_text)
    module.triple = triple
    module.verify()
    target = llvm.Target.from_triple(triple)
    machine = target.create_target_machine(reloc="pic", codemodel="small", opt=opt)
    module.data_layout = str(machine.target_data)
    return bytes(machine.emit_object(module))


def compile_image(ir_text: str, triple: str, opt: int = 2) -> bytes:
    """Compile IR text for ``triple`` and link the object into a stub image
    (``ffm_runtime._image``): what the wheel carries and the runtime places in memory."""
    from ffm_runtime._image import encode
    from ffm_runtime._link import link
    from ffm_runtime._targets import TARGETS

    machine = next(t.elf_machine for t in TARGETS.values() if t.triple == triple)
    return encode(link(compile_object(ir_text, triple, opt), machine))
