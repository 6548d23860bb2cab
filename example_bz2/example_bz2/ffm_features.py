"""The layouts and call shapes of libbz2 (``bzlib.h``), and the Feature that registers them.

The layouts are checked against the C compiler and ``bzlib.h`` by the tests
(``tests/test_example_bz2.py``): offsets and sizes are not guessed.
"""

from __future__ import annotations

from ffm_runtime import ADDRESS, JAVA_INT, JAVA_LONG, FunctionDescriptor, Linker, MemoryLayout
from hatch_ffm import DuringSetupAccess, RuntimeForeignAccess

#: ``unsigned int`` fields are read as ``JAVA_INT`` and masked with 0xFFFFFFFF.
UINT = JAVA_INT

#: ``bz_stream`` of bzlib.h (LP64: 80 bytes)
BZ_STREAM = MemoryLayout.struct_layout(
    ADDRESS.with_name("next_in"),
    UINT.with_name("avail_in"),
    UINT.with_name("total_in_lo32"),
    UINT.with_name("total_in_hi32"),
    MemoryLayout.padding_layout(4),
    ADDRESS.with_name("next_out"),
    UINT.with_name("avail_out"),
    UINT.with_name("total_out_lo32"),
    UINT.with_name("total_out_hi32"),
    MemoryLayout.padding_layout(4),
    ADDRESS.with_name("state"),
    ADDRESS.with_name("bzalloc"),
    ADDRESS.with_name("bzfree"),
    ADDRESS.with_name("opaque"),
).with_name("bz_stream")

#: int BZ2_bzBuffToBuffCompress(char *dest, unsigned *destLen, char *source,
#:                              unsigned sourceLen, int blockSize100k, int verbosity, int workFactor)
BUFF_TO_BUFF_COMPRESS = FunctionDescriptor.of(
    JAVA_INT, ADDRESS, ADDRESS, ADDRESS, UINT, JAVA_INT, JAVA_INT, JAVA_INT
)
#: int BZ2_bzBuffToBuffDecompress(char *dest, unsigned *destLen, char *source,
#:                                unsigned sourceLen, int small, int verbosity)
BUFF_TO_BUFF_DECOMPRESS = FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, ADDRESS, UINT, JAVA_INT, JAVA_INT)
#: int BZ2_bzCompressInit(bz_stream *, int blockSize100k, int verbosity, int workFactor)
COMPRESS_INIT = FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT, JAVA_INT, JAVA_INT)
#: int BZ2_bzCompress(bz_stream *, int action)
COMPRESS = FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT)
#: int BZ2_bzDecompressInit(bz_stream *, int verbosity, int small)
DECOMPRESS_INIT = FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT, JAVA_INT)
#: int BZ2_bzDecompress(bz_stream *), BZ2_bzCompressEnd(bz_stream *), BZ2_bzDecompressEnd(bz_stream *)
STREAM_CALL = FunctionDescriptor.of(JAVA_INT, ADDRESS)
#: const char *BZ2_bzlibVersion(void)
VERSION = FunctionDescriptor.of(ADDRESS)
#: size_t strlen(const char *): the length of a C string libbz2 returns
STRLEN = FunctionDescriptor.of(JAVA_LONG, ADDRESS)

#: Short calls that never block (set-up, tear-down: a malloc or free): they keep the GIL.
CRITICAL = Linker.Option.critical()


class Bz2Feature:
    """Registers every call shape :mod:`example_bz2.libbz2` links.

    Compressing and decompressing run as long as the data is large, so those handles
    release the GIL (the default), as CPython's ``bz2`` does; set-up and tear-down are
    critical (GIL kept, cheaper)."""

    def during_setup(self, access: DuringSetupAccess) -> None:
        register = RuntimeForeignAccess.register_for_downcall
        register(BUFF_TO_BUFF_COMPRESS)
        register(BUFF_TO_BUFF_DECOMPRESS)
        register(COMPRESS)
        register(STREAM_CALL)  # BZ2_bzDecompress
        register(COMPRESS_INIT, CRITICAL)
        register(DECOMPRESS_INIT, CRITICAL)
        register(STREAM_CALL, CRITICAL)  # BZ2_bzCompressEnd, BZ2_bzDecompressEnd
        register(VERSION, CRITICAL)
        register(STRLEN, CRITICAL)
