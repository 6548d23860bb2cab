"""The Feature that tells hatch-ffm which call shapes this package uses."""

from __future__ import annotations

from ffm_runtime import (
    ADDRESS,
    JAVA_DOUBLE,
    JAVA_INT,
    JAVA_LONG,
    FunctionDescriptor,
    Linker,
    MemoryLayout,
)
from hatch_ffm import DuringSetupAccess, RuntimeForeignAccess

#: C's ``div_t``
DIV_T = MemoryLayout.struct_layout(JAVA_INT.with_name("quot"), JAVA_INT.with_name("rem"))
DIV = FunctionDescriptor.of(DIV_T, JAVA_INT, JAVA_INT)
#: ``snprintf(buffer, size, format, int, double)``: variadic from the int on
SNPRINTF = (
    FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_LONG, ADDRESS, JAVA_INT, JAVA_DOUBLE),
    Linker.Option.first_variadic_arg(3),
)
#: ``strtol(text, end, base)``, reading errno right after the call
STRTOL = (
    FunctionDescriptor.of(JAVA_LONG, ADDRESS, ADDRESS, JAVA_INT),
    Linker.Option.capture_call_state("errno"),
)
#: ``qsort(base, count, size, compare)``
QSORT = FunctionDescriptor.of_void(ADDRESS, JAVA_LONG, JAVA_LONG, ADDRESS)
#: qsort's comparator of ints: its pointers as zero-length segments (resized by the callback)
COMPARE = FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS)


CRITICAL = Linker.Option.critical()


class LibcFeature:
    """Registers every downcall shape example_project links at run time."""

    def during_setup(self, access: DuringSetupAccess) -> None:
        register = RuntimeForeignAccess.register_for_downcall
        register(FunctionDescriptor.of(JAVA_LONG, ADDRESS))  # strlen
        register(FunctionDescriptor.of(JAVA_INT))  # getpid
        register(FunctionDescriptor.of(JAVA_INT, JAVA_INT))  # abs, toupper
        register(FunctionDescriptor.of(JAVA_LONG, JAVA_LONG))  # labs
        register(FunctionDescriptor.of(JAVA_DOUBLE, JAVA_DOUBLE), Linker.Option.critical())  # cos
        # Shapes benchmarks/bench_calls.py measures: int add(int, int) and strlen,
        # with the default options (GIL released) and as critical calls (GIL kept).
        register(FunctionDescriptor.of(JAVA_INT, JAVA_INT, JAVA_INT))
        register(FunctionDescriptor.of(JAVA_INT, JAVA_INT, JAVA_INT), Linker.Option.critical())
        register(FunctionDescriptor.of(JAVA_LONG, ADDRESS), Linker.Option.critical())
        # benchmarks/bench_pointers.py: labs declared with an ADDRESS result against the same
        # function with a JAVA_LONG result, both ways.
        register(FunctionDescriptor.of(ADDRESS, JAVA_LONG))
        register(FunctionDescriptor.of(ADDRESS, JAVA_LONG), Linker.Option.critical())
        register(FunctionDescriptor.of(JAVA_LONG, JAVA_LONG), Linker.Option.critical())
        # A struct result, a variadic call and errno capture: short, non-blocking calls, so
        # native.py links them critical (GIL kept); benchmarks/bench_abi.py measures both.
        for descriptor, *options in ((DIV,), SNPRINTF, STRTOL):
            register(descriptor, *options)
            register(descriptor, *options, CRITICAL)
        # benchmarks/bench_upcalls.py: libc's qsort calling a Python comparator, whose
        # pointers arrive as zero-length segments or as segments sized by their target
        # layout (with_target_layout is allowed here: the build enables this package).  qsort
        # calls back, so it is linked with the default options, never critical.
        register(QSORT)
        RuntimeForeignAccess.register_for_upcall(COMPARE)
        int_pointer = ADDRESS.with_target_layout(JAVA_INT)
        RuntimeForeignAccess.register_for_upcall(FunctionDescriptor.of(JAVA_INT, int_pointer, int_pointer))
