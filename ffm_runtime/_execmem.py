"""Executable memory that is never writable and executable at the same time.

Pages are mapped read+write, filled, then switched to read+execute with
``mprotect``.  ctypes is used here only, at load time, never per call.
"""

from __future__ import annotations

import ctypes
import mmap
import os
import threading

from ._errors import StubLoadError

__all__ = ["PAGE_SIZE", "Region", "allocate"]

PAGE_SIZE = mmap.PAGESIZE

_PROT_READ, _PROT_WRITE, _PROT_EXEC = 0x1, 0x2, 0x4
_MAP_PRIVATE, _MAP_ANONYMOUS = 0x02, 0x20
_MAP_FAILED = ctypes.c_void_p(-1).value

_libc_lock = threading.Lock()
_libc: ctypes.CDLL | None = None


def _functions() -> ctypes.CDLL:
    global _libc
    with _libc_lock:
        if _libc is None:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.mmap.restype = ctypes.c_void_p
            libc.mmap.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                                  ctypes.c_int, ctypes.c_long)
            libc.mprotect.restype = ctypes.c_int
            libc.mprotect.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
            libc.munmap.restype = ctypes.c_int
            libc.munmap.argtypes = (ctypes.c_void_p, ctypes.c_size_t)
            _libc = libc
        return _libc


def _round_up(value: int) -> int:
    return (value + PAGE_SIZE - 1) // PAGE_SIZE * PAGE_SIZE


class Region:
    """A private anonymous mapping, created read+write."""

    def __init__(self, address: int, size: int) -> None:
        self.address = address
        self.size = size
        self._sealed = False

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
        if length and _functions().mprotect(self.address, length, _PROT_READ | _PROT_EXEC) != 0:
            err = ctypes.get_errno()
            raise StubLoadError(
                f"cannot make stub code executable: mprotect failed ({os.strerror(err)}); the "
                "system forbids executable memory for this process (SELinux deny_execmem or "
                "systemd MemoryDenyWriteExecute?)")

    def release(self) -> None:
        _functions().munmap(self.address, self.size)


def allocate(size: int) -> Region:
    """Map ``size`` bytes (rounded up to pages) read+write."""
    length = _round_up(max(size, 1))
    address = _functions().mmap(None, length, _PROT_READ | _PROT_WRITE,
                                _MAP_PRIVATE | _MAP_ANONYMOUS, -1, 0)
    if address is None or address == _MAP_FAILED:
        err = ctypes.get_errno()
        raise StubLoadError(f"cannot map memory for stubs: {os.strerror(err)}")
    return Region(address, length)
