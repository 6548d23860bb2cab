"""Strings that end just before an unmapped page, read through segments that claim far more
memory (``reinterpret(2**62)``, Java's idiom for a C string): ``get_string`` must stop at the
terminator, as ``strlen`` does.  Prints one line per charset; a read past the terminator
kills the process with SIGSEGV.  Also through segments that end past ``2**63``
(``reinterpret(2**63 - 1)``), with a ``byte_length``, and a string over two pages.  Run by
tests/test_segments.py, with and without ``FFM_PURE_PYTHON``."""

from __future__ import annotations

import ctypes
import mmap
import os
import sys
import types

import ffm_runtime
from ffm_runtime import MemorySegment

runtime = os.path.dirname(ffm_runtime.__file__)
seen: list[str] = []


def profile(frame: types.FrameType, event: str, arg: object) -> None:
    if event == "call" and frame.f_code.co_filename.startswith(runtime):
        seen.append(frame.f_code.co_name)


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
start = libc.mmap(None, 3 * page, mmap.PROT_READ | mmap.PROT_WRITE, flags, -1, 0)
assert start and start != ctypes.c_void_p(-1).value, ctypes.get_errno()
base = start + page
assert libc.mprotect(base + page, page, 0) == 0, ctypes.get_errno()  # the third page: no access
for charset, text in (("utf-8", "abc"), ("latin-1", "abc"), ("utf-16le", "ab"), ("utf-32le", "a")):
    data = text.encode(charset)
    width = len("\0".encode(charset))
    where = base + page - len(data) - width
    ctypes.memmove(where, data + bytes(width), len(data) + width)
    segment = MemorySegment.of_address(where).reinterpret(2**62)
    assert segment.get_string(0, charset) == text, charset
    # a segment that ends past 2**63 (a TEXT pointer: reinterpret(2**63 - 1)), with and
    # without the string's length
    endless = MemorySegment.of_address(where).reinterpret(2**63 - 1)
    assert endless.get_string(0, charset) == text, charset
    assert endless.get_string(0, charset, len(data) + width) == text + "\0", charset
    print(charset, "ok")
# a string over two pages, its NUL the last byte before the unmapped page
long = b"x" * (page + 10)
where = base + page - len(long) - 1
ctypes.memmove(where, long + b"\0", len(long) + 1)
endless = MemorySegment.of_address(where).reinterpret(2**63 - 1)
assert endless.get_string() == endless.get_string(0, "utf-8", len(long)) == long.decode()
assert endless.get_string(page) == "x" * 10
sys.setprofile(profile)
endless.get_string()
endless.get_string(0, "utf-8", len(long))
sys.setprofile(None)
# accelerated: UTF-8 strings of segments that end past 2**63 run no Python code of the runtime
assert (seen == []) == ffm_runtime.accelerated(), seen
print("two-pages", "ok")
