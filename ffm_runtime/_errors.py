"""Exceptions raised by the runtime.

Each one subclasses the Python built-in whose meaning is closest to the Java
exception it stands for, so ``except IndexError`` and friends keep working.
"""

from __future__ import annotations

# What ``warnings.warn`` and ``warnings.warn_explicit`` are (the interpreter's own, which
# honour the ``warnings`` module's filters once it is imported), without importing it.
try:
    from _warnings import warn, warn_explicit
except ImportError:  # an interpreter without the C module
    from warnings import warn, warn_explicit

__all__ = [
    "FFMError",
    "IllegalCallerError",
    "LibraryLoadError",
    "MisalignedAccessError",
    "MissingForeignRegistrationError",
    "OutOfBoundsError",
    "ReadOnlyError",
    "ScopeClosedError",
    "ScopeInUseError",
    "StubLoadError",
    "StubLoadWarning",
    "UnsupportedOperationError",
    "UnsupportedPlatformError",
    "UpcallNotSupportedError",
    "UpcallPoolExhaustedError",
    "WrongThreadError",
    "warn",
    "warn_explicit",
]


class FFMError(Exception):
    """Base class of every exception that only this runtime raises."""


class MissingForeignRegistrationError(FFMError, LookupError):
    """A call shape was not registered when the wheel was built.

    The analog of GraalVM's ``MissingForeignRegistrationError``: the message
    shows the signature and the registration line to add to a Feature.
    """

    def __init__(self, message: str, key: str, unreadable: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        #: The canonical registration key that was looked up.
        self.key = key
        #: Stub manifests that could not be read: one may have been meant to provide ``key``.
        self.unreadable = unreadable


class StubLoadError(FFMError, ImportError):
    """A stub file or its manifest is malformed, tampered with or unloadable."""

    def __init__(self, message: str, path: str | None = None) -> None:
        super().__init__(message)
        #: The file that could not be loaded, when there is one.
        self.path = path


class StubLoadWarning(RuntimeWarning):
    """A stub manifest or object of an installed package could not be used and is skipped.

    Issued once per file; the call shapes only that file provides are unavailable
    (``MissingForeignRegistrationError`` names it again), everything else works.
    """

    def __init__(self, message: str, path: str) -> None:
        super().__init__(message)
        #: The file that was skipped.
        self.path = path


class UnsupportedOperationError(FFMError, NotImplementedError):
    """The operation exists in the API but is not supported (yet, or here)."""


class UpcallNotSupportedError(UnsupportedOperationError):
    """An upcall shape that is not supported.  No longer raised: every upcall shape is
    supported (structs and unions by value since 0.2.0); kept for code that catches it."""


class UpcallPoolExhaustedError(FFMError, RuntimeError):
    """Every trampoline of an upcall shape's pool is in use (the pool's size is the build
    hook's option ``upcall-pool-size``)."""

    def __init__(self, message: str, key: str) -> None:
        super().__init__(message)
        #: The canonical key of the upcall shape.
        self.key = key


class UnsupportedPlatformError(UnsupportedOperationError):
    """Foreign calls are not supported on the running platform."""


class ScopeClosedError(FFMError, RuntimeError):
    """The arena that owns a segment was closed (Java's IllegalStateException)."""


class ScopeInUseError(FFMError, RuntimeError):
    """An arena was asked to close while an operation on its memory was running (Java's
    IllegalStateException "Session is acquired"): a finalizer, a signal handler or a value's
    ``__index__`` called ``close()`` in the middle of that operation."""


class WrongThreadError(FFMError, RuntimeError):
    """A confined segment was used outside its owning thread."""


class IllegalCallerError(FFMError, PermissionError):
    """The calling module is not enabled for native access."""


class OutOfBoundsError(FFMError, IndexError):
    """An access outside a segment (Java's IndexOutOfBoundsException)."""

    def __init__(self, message: str, offset: int, length: int) -> None:
        super().__init__(message)
        #: The offset of the access.
        self.offset = offset
        #: The number of bytes accessed.
        self.length = length


class LibraryLoadError(FFMError, OSError):
    """A native library could not be found or loaded (Java's UnsatisfiedLinkError)."""


class MisalignedAccessError(FFMError, ValueError):
    """An access or slice at an address the layout's alignment does not allow."""


class ReadOnlyError(FFMError, TypeError):
    """A write through a read-only segment (like writing to a read-only memoryview)."""
