"""Executable memory that is never writable and executable at the same time.

Pages are mapped read+write, filled, then switched to read+execute with
``mprotect``.  Where the system forbids making anonymous memory executable
(SELinux ``deny_execmem``, systemd ``MemoryDenyWriteExecute=``), the code pages
are instead written to an anonymous file (``memfd_create``) and mapped from it
read+execute at the same address, so relocations stay valid.  ctypes is used
here only, at load time, never per call.
"""

from __future__ import annotations

import ctypes
import errno
import os

from ._errors import StubLoadError
from ._locks import ForkSafeLock

__all__ = ["PAGE_SIZE", "Region", "allocate"]

PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")

_PROT_READ, _PROT_WRITE, _PROT_EXEC = 0x1, 0x2, 0x4
_MAP_SHARED, _MAP_PRIVATE, _MAP_FIXED, _MAP_ANONYMOUS = 0x01, 0x02, 0x10, 0x20
_MAP_FAILED = ctypes.c_void_p(-1).value

_libc_lock = ForkSafeLock()
_libc: ctypes.CDLL | None = None


def _functions() -> ctypes.CDLL:
    global _libc
    with _libc_lock:
        if _libc is None:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.mmap.restype = ctypes.c_void_p
            libc.mmap.argtypes = (
                ctypes.c_void_p,
                ctypes.c_size_t,
                ctypes.c_int,
                ctypes.c_int,
                ctypes.c_int,
                ctypes.c_long,
            )
            libc.mprotect.restype = ctypes.c_int
            libc.mprotect.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
            libc.munmap.restype = ctypes.c_int
            libc.munmap.argtypes = (ctypes.c_void_p, ctypes.c_size_t)
            _libc = libc
        return _libc


def _round_up(value: int) -> int:
    return (value + PAGE_SIZE - 1) // PAGE_SIZE * PAGE_SIZE


def _make_executable(address: int, length: int) -> int:
    """``mprotect`` to read+execute; returns 0 or the errno (a seam for tests)."""
    if _functions().mprotect(address, length, _PROT_READ | _PROT_EXEC) == 0:
        return 0
    return ctypes.get_errno() or errno.EACCES


def _map_from_file(address: int, code: bytes) -> None:
    """Replace ``[address, address + len(code))`` by a read+execute mapping of a memfd."""
    length = len(code)
    try:
        fd = os.memfd_create("ffm-stubs", getattr(os, "MFD_CLOEXEC", 1))
    except (AttributeError, OSError) as exc:
        raise StubLoadError(
            "cannot make stub code executable: the system refuses executable anonymous memory "
            f"(SELinux deny_execmem or systemd MemoryDenyWriteExecute?) and memfd_create, the "
            f"fallback, failed: {exc}"
        ) from exc
    try:
        os.write(fd, code)
        mapped = _functions().mmap(address, length, _PROT_READ | _PROT_EXEC, _MAP_PRIVATE | _MAP_FIXED, fd, 0)
        if mapped is None or mapped == _MAP_FAILED or mapped != address:
            err = ctypes.get_errno()
            raise StubLoadError(
                "cannot make stub code executable: the system refuses executable anonymous "
                "memory (SELinux deny_execmem or systemd MemoryDenyWriteExecute?) and mapping "
                f"it from a memfd failed too ({os.strerror(err)}); allow execmem for this "
                "process, or run without that hardening"
            )
    finally:
        os.close(fd)


class Region:
    """A private mapping, created read+write, whose start is later sealed read+execute."""

    def __init__(self, address: int, size: int) -> None:
        self.address = address
        self.size = size
        self._sealed = False
        #: how the code pages were made executable: "mprotect" or "memfd"
        self.method = ""

    def write(self, offset: int, data: bytes | bytearray) -> None:
        """Copy ``data`` into the region; only allowed before :meth:`seal`."""
        if self._sealed:
            raise StubLoadError("internal error: write to a sealed code region")
        if offset < 0 or offset + len(data) > self.size:
            raise StubLoadError("internal error: write outside the code region")
        ctypes.memmove(self.address + offset, bytes(data), len(data))

    def seal(self, executable_bytes: int) -> None:
        """Make the first ``executable_bytes`` (page-rounded) read+execute; the rest stays RW."""
        self._sealed = True
        length = _round_up(executable_bytes)
        if not length:
            return
        failure = _make_executable(self.address, length)
        if failure == 0:
            self.method = "mprotect"
            return
        if failure not in (errno.EACCES, errno.EPERM):
            raise StubLoadError(f"cannot make stub code executable: mprotect failed ({os.strerror(failure)})")
        _map_from_file(self.address, ctypes.string_at(self.address, length))
        self.method = "memfd"

    def release(self) -> None:
        _functions().munmap(self.address, self.size)


def allocate(size: int) -> Region:
    """Map ``size`` bytes (rounded up to pages) read+write."""
    length = _round_up(max(size, 1))
    address = _functions().mmap(None, length, _PROT_READ | _PROT_WRITE, _MAP_PRIVATE | _MAP_ANONYMOUS, -1, 0)
    if address is None or address == _MAP_FAILED:
        err = ctypes.get_errno()
        raise StubLoadError(f"cannot map memory for stubs: {os.strerror(err)}")
    return Region(address, length)
