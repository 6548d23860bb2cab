"""Collecting registrations: ``RuntimeForeignAccess`` and the access object.

``RuntimeForeignAccess.register_for_downcall`` is a static method, as in
GraalVM; it records into the registration session that the build hook opens
around the Features' ``during_setup`` calls, and refuses calls outside one.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from ffm_runtime._descriptor import (
    FunctionDescriptor,
    Option,
    check_options,
    check_upcall,
    checked_key,
    upcall_key,
)

from ._lowering import LoweredSignature, LoweredUpcall, lower, lower_upcall

__all__ = [
    "DuringSetupAccess",
    "Registration",
    "RegistrationSession",
    "RuntimeForeignAccess",
    "UpcallRegistration",
]


@dataclass(frozen=True)
class Registration:
    """One accepted downcall registration."""

    key: str
    descriptor: FunctionDescriptor
    options: tuple[Option, ...]
    #: the lowered call shape for each target
    signatures: dict[str, LoweredSignature]
    feature: str


@dataclass(frozen=True)
class UpcallRegistration:
    """One accepted upcall registration."""

    key: str
    descriptor: FunctionDescriptor
    #: the lowered upcall shape for each target
    signatures: dict[str, LoweredUpcall]
    feature: str


@dataclass(frozen=True)
class DuringSetupAccess:
    """What a Feature sees of the build (passed as ``access`` to its hooks)."""

    #: project root folder
    root: str
    #: project name from ``[project]``
    project_name: str
    #: the package that receives the stubs
    package: str
    #: targets stubs are compiled for, e.g. ``("x86_64-linux",)``
    targets: tuple[str, ...]
    #: the hook's configuration table
    config: dict[str, Any] = field(default_factory=dict)


class RegistrationSession:
    """Registrations collected during one build, deduplicated by canonical key."""

    def __init__(self, targets: tuple[str, ...] = ("x86_64-linux",)) -> None:
        self.targets = targets
        self.registrations: dict[str, Registration] = {}
        self.upcalls: dict[str, UpcallRegistration] = {}
        self.requests = 0
        self.current_feature = "?"

    def add(self, descriptor: object, options: tuple[object, ...]) -> Registration:
        if not isinstance(descriptor, FunctionDescriptor):
            raise TypeError(
                "register_for_downcall() expects a FunctionDescriptor as its first argument, "
                f"not {type(descriptor).__name__}"
            )
        checked = check_options(descriptor, options)
        stripped = descriptor.stripped()
        key = checked_key(stripped, checked)  # (registration_key, without checking again)
        self.requests += 1
        existing = self.registrations.get(key)
        if existing is not None:
            return existing
        # (the options are checked: lowering need not check them again)
        signatures = {t: lower(key, descriptor, checked, t, checked=True) for t in self.targets}
        registration = Registration(key, stripped, checked, signatures, self.current_feature)
        self.registrations[key] = registration
        return registration

    def add_upcall(self, descriptor: object, options: tuple[object, ...]) -> UpcallRegistration:
        if not isinstance(descriptor, FunctionDescriptor):
            raise TypeError(
                "register_for_upcall() expects a FunctionDescriptor as its first argument, "
                f"not {type(descriptor).__name__}"
            )
        check_upcall(descriptor, options)
        key = upcall_key(descriptor)
        self.requests += 1
        existing = self.upcalls.get(key)
        if existing is not None:
            return existing
        signatures = {target: lower_upcall(key, descriptor, target) for target in self.targets}
        registration = UpcallRegistration(key, descriptor.stripped(), signatures, self.current_feature)
        self.upcalls[key] = registration
        return registration


_active = threading.local()


@contextlib.contextmanager
def open_session(session: RegistrationSession) -> Iterator[RegistrationSession]:
    """Make ``session`` receive registrations in this thread while the block runs."""
    previous = getattr(_active, "session", None)
    _active.session = session
    try:
        yield session
    finally:
        _active.session = previous


class RuntimeForeignAccess:
    """Registration of foreign calls at build time (GraalVM's ``RuntimeForeignAccess``)."""

    def __init__(self) -> None:
        raise TypeError("RuntimeForeignAccess has only static methods")

    @staticmethod
    def register_for_downcall(descriptor: FunctionDescriptor, *options: Option) -> None:
        """Make downcall handles of this shape available in the built wheel.

        Call it from a Feature's ``during_setup(access)``.  A shape hatch-ffm cannot
        compile yet stops the build with ``NotSupportedYetError``.
        """
        _session().add(descriptor, options)

    @staticmethod
    def register_for_upcall(descriptor: FunctionDescriptor, *options: Option) -> None:
        """Make upcall stubs of this shape (``Linker.upcall_stub``) available in the built
        wheel: the build compiles its entry and a pool of trampolines (the hook option
        ``upcall-pool-size``).

        Call it from a Feature's ``during_setup(access)``.  The JDK's rules for upcall
        descriptors apply: no linker option at all (``ValueError``, "Not supported for
        upcall").  Structs and unions by value are passed and returned as C does.
        """
        _session().add_upcall(descriptor, options)


def _session() -> RegistrationSession:
    session: RegistrationSession | None = getattr(_active, "session", None)
    if session is None:
        raise RuntimeError(
            "Registration of foreign functions is only possible while hatch-ffm builds a "
            "wheel, from a Feature's during_setup(access)"
        )
    return session
