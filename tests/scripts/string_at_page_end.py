"""Strings that end just before an unmapped page, read through segments that claim far more
memory (``reinterpret(2**62)``, Java's idiom for a C string): ``get_string`` must stop at the
terminator, as ``strlen`` does.  Prints one line per charset; a read past the terminator
kills the process with SIGSEGV.  Run by tests/test_segments.py, with and without
``FFM_PURE_PYTHON``."""

from __future__ import annotations

import ctypes
import mmap

from ffm_runtime import MemorySegment

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
libc.mprotect.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
page = mmap.PAGESIZE
flags = mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS
base = libc.mmap(None, 2 * page, mmap.PROT_READ | mmap.PROT_WRITE, flags, -1, 0)
assert base and base != ctypes.c_void_p(-1).value, ctypes.get_errno()
assert libc.mprotect(base + page, page, 0) == 0, ctypes.get_errno()  # the second page: no access
for charset, text in (("utf-8", "abc"), ("latin-1", "abc"), ("utf-16le", "ab"), ("utf-32le", "a")):
    data = text.encode(charset)
    width = len("\0".encode(charset))
    where = base + page - len(data) - width
    ctypes.memmove(where, data + bytes(width), len(data) + width)
    segment = MemorySegment.of_address(where).reinterpret(2**62)
    assert segment.get_string(0, charset) == text, charset
    print(charset, "ok")
