"""The Feature that tells hatch-ffm which call shapes this package uses."""

from __future__ import annotations

from ffm_runtime import ADDRESS, JAVA_DOUBLE, JAVA_INT, JAVA_LONG, FunctionDescriptor, Linker
from hatch_ffm import DuringSetupAccess, RuntimeForeignAccess


class LibcFeature:
    """Registers every downcall shape example_project links at run time."""

    def during_setup(self, access: DuringSetupAccess) -> None:
        register = RuntimeForeignAccess.register_for_downcall
        register(FunctionDescriptor.of(JAVA_LONG, ADDRESS))                  # strlen
        register(FunctionDescriptor.of(JAVA_INT))                            # getpid
        register(FunctionDescriptor.of(JAVA_INT, JAVA_INT))                  # abs, toupper
        register(FunctionDescriptor.of(JAVA_LONG, JAVA_LONG))                # labs
        register(FunctionDescriptor.of(JAVA_DOUBLE, JAVA_DOUBLE),
                 Linker.Option.critical())                                   # cos
        # Shapes benchmarks/bench_calls.py measures: int add(int, int) and strlen,
        # with the default options (GIL released) and as critical calls (GIL kept).
        register(FunctionDescriptor.of(JAVA_INT, JAVA_INT, JAVA_INT))
        register(FunctionDescriptor.of(JAVA_INT, JAVA_INT, JAVA_INT), Linker.Option.critical())
        register(FunctionDescriptor.of(JAVA_LONG, ADDRESS), Linker.Option.critical())
