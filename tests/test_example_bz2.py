"""example_bz2 (libbz2 through stubs built by the real hook) against CPython's bz2: the same
bytes, the same round trips and the same kinds of errors; its bz_stream layout against
bzlib.h as the C compiler lays it out; every libbz2 stream ended."""

from __future__ import annotations

import bz2
import gc
import os
import random
from pathlib import Path
from types import ModuleType

import pytest
from support import c_layout, malloc_in_use


@pytest.fixture(scope="module")
def libbz2(bz2_site: Path) -> ModuleType:
    from example_bz2 import libbz2

    return libbz2


def text(size: int, seed: int = 3) -> bytes:
    rnd = random.Random(seed)
    words = [b"alpha", b"beta", b"gamma", b"\x00\xff", b"delta\n", b"%d" % seed]
    return b" ".join(rnd.choice(words) for _ in range(size // 5))[:size]


DATA = {
    "empty": b"",
    "one byte": b"x",
    "text 100 KiB": text(100_000),
    "random 200 KiB": random.Random(5).randbytes(200_000),
    "zeros 1 MiB": bytes(1 << 20),  # runs: libbz2's run-length stage
}


def test_bz_stream_layout_matches_bzlib_h(libbz2: ModuleType, tmp_path: Path) -> None:
    from example_bz2.ffm_features import BZ_STREAM

    from ffm_runtime import PathElement

    names = [
        "next_in", "avail_in", "total_in_lo32", "total_in_hi32", "next_out", "avail_out",
        "total_out_lo32", "total_out_hi32", "state", "bzalloc", "bzfree", "opaque",
    ]  # fmt: skip
    size, offsets = c_layout("bzlib.h", "bz_stream", names, tmp_path)
    assert BZ_STREAM.byte_size == size == 80
    assert {name: BZ_STREAM.byte_offset(PathElement.group_element(name)) for name in names} == offsets


@pytest.mark.parametrize("name", DATA)
@pytest.mark.parametrize("level", [1, 6, 9])
def test_compress_gives_bz2s_bytes(libbz2: ModuleType, name: str, level: int) -> None:
    data = DATA[name]
    if level != 9 and len(data) > 100_000:
        data = data[:100_000]  # every level on a prefix; the whole at level 9
    packed = bz2.compress(data, level)
    assert libbz2.compress(data, level) == packed
    assert libbz2.compress(bytearray(data), level) == packed  # any bytes-like object
    assert libbz2.decompress(packed) == data
    assert bz2.decompress(libbz2.compress(data, level)) == data
    assert libbz2.decompress_bounded(packed, len(data)) == data


@pytest.mark.parametrize("chunk", [1, 1000, 65536, 1 << 20])
def test_streaming_gives_bz2s_bytes(libbz2: ModuleType, chunk: int) -> None:
    data = DATA["text 100 KiB"] + DATA["random 200 KiB"]
    if chunk == 1:
        data = data[:3000]
    pieces = [data[i : i + chunk] for i in range(0, len(data), chunk)]
    ours, theirs = libbz2.BZ2Compressor(7), bz2.BZ2Compressor(7)
    mine = [ours.compress(piece) for piece in pieces] + [ours.flush()]
    other = [theirs.compress(piece) for piece in pieces] + [theirs.flush()]
    assert b"".join(mine) == b"".join(other)

    packed = b"".join(other)
    decompressor = libbz2.BZ2Decompressor()
    parts = [decompressor.decompress(packed[i : i + chunk]) for i in range(0, len(packed), chunk)]
    assert b"".join(parts) == data
    assert decompressor.eof and not decompressor.needs_input and decompressor.unused_data == b""


def test_multistream_and_trailing_data_as_bz2(libbz2: ModuleType) -> None:
    streams = bz2.compress(b"first ", 1) + bz2.compress(b"", 9) + bz2.compress(b"second", 5)
    assert libbz2.decompress(streams) == bz2.decompress(streams) == b"first second"
    # data after the last stream that is not bz2 is ignored, as bz2 does
    assert libbz2.decompress(streams + b"not bz2 at all") == bz2.decompress(streams + b"not bz2 at all")
    assert libbz2.decompress(b"") == bz2.decompress(b"") == b""
    # one stream at a time, the rest in unused_data
    decompressor = libbz2.BZ2Decompressor()
    assert decompressor.decompress(streams[:20]) == b""
    assert decompressor.decompress(streams[20:]) == b"first "
    assert decompressor.eof and decompressor.unused_data == streams[len(bz2.compress(b"first ", 1)) :]
    with pytest.raises(EOFError, match="End of stream already reached"):
        decompressor.decompress(b"more")


def test_errors(libbz2: ModuleType) -> None:
    packed = bz2.compress(DATA["text 100 KiB"])
    corrupt = bytearray(packed)
    corrupt[len(corrupt) // 2] ^= 0xFF
    for data, pattern in [
        (
            bytes(corrupt),
            r"BZ2_bzDecompress: BZ_DATA_ERROR: invalid data stream: the compressed data is corrupt",
        ),
        (b"PK\x03\x04 zip", r"BZ_DATA_ERROR_MAGIC: invalid data stream: not bz2 data \(no 'BZh' header\)"),
    ]:
        with pytest.raises(OSError, match="Invalid data stream"):
            bz2.decompress(data)
        with pytest.raises(libbz2.BZ2Error, match=pattern) as caught:
            libbz2.decompress(data)
        assert isinstance(caught.value, OSError)
        with pytest.raises(libbz2.BZ2Error, match=pattern):
            libbz2.BZ2Decompressor().decompress(data)
    truncated = packed[:-10]
    message = "Compressed data ended before the end-of-stream marker was reached"
    with pytest.raises(ValueError, match=message):
        bz2.decompress(truncated)
    with pytest.raises(ValueError, match=message):
        libbz2.decompress(truncated)
    with pytest.raises(EOFError, match=message):
        libbz2.decompress_bounded(truncated, 200_000)
    decompressor = libbz2.BZ2Decompressor()
    decompressor.decompress(truncated)
    assert not decompressor.eof and decompressor.needs_input
    size = len(DATA["text 100 KiB"])
    with pytest.raises(ValueError, match=rf"the decompressed data is longer than max_length={size - 1}"):
        libbz2.decompress_bounded(packed, size - 1)
    with pytest.raises(ValueError, match="compresslevel must be between 1 and 9, not 0"):
        libbz2.compress(b"x", 0)
    with pytest.raises(ValueError, match="compresslevel must be between 1 and 9, not 10"):
        libbz2.BZ2Compressor(10)
    with pytest.raises(TypeError, match="a bytes-like object is required, not 'str'"):
        libbz2.compress("text")
    compressor = libbz2.BZ2Compressor()
    compressor.flush()
    with pytest.raises(ValueError, match="Repeated call to flush"):
        compressor.flush()
    with pytest.raises(ValueError, match="Compressor has been flushed or is closed"):
        compressor.compress(b"x")


def test_version(libbz2: ModuleType) -> None:
    assert libbz2.version().startswith("1.0.")


def test_every_stream_is_ended(libbz2: ModuleType) -> None:
    """BZ2_bzCompressEnd / BZ2_bzDecompressEnd run on close(), at the end of a with block, on
    flush, at the end of the stream, after an error and when an unclosed object is collected:
    libbz2's ~7 MB per level-9 compressor and ~3.6 MB per decompressor would otherwise stay."""
    packed = bz2.compress(DATA["text 100 KiB"])

    def cycle() -> None:
        with libbz2.BZ2Compressor(9) as compressor:
            compressor.compress(b"data " * 1000)
        libbz2.BZ2Compressor(9).compress(b"dropped unclosed")
        decompressor = libbz2.BZ2Decompressor()
        decompressor.decompress(packed[:1000])
        decompressor.close()
        libbz2.BZ2Decompressor().decompress(packed)  # ends itself at the end of the stream
        with pytest.raises(libbz2.BZ2Error):
            libbz2.decompress(b"BZh9 and then garbage" * 10)
        with pytest.raises(ValueError):
            libbz2.decompress(packed[:-10])
        gc.collect()

    cycle()
    before = malloc_in_use()
    for _ in range(10):
        cycle()
    assert malloc_in_use() - before < 4_000_000  # one leaked stream is more than that


def test_many_threads_each_their_own(libbz2: ModuleType) -> None:
    """A compressor belongs to the thread that made it (its arena is confined); the default
    handles release the GIL, so threads compress side by side."""
    import threading

    from ffm_runtime import WrongThreadError

    data = os.urandom(50_000)
    results: dict[int, bytes] = {}

    def work(index: int) -> None:
        results[index] = libbz2.compress(data, 1 + index)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(results[i] == bz2.compress(data, 1 + i) for i in range(4))

    compressor = libbz2.BZ2Compressor()
    errors: list[BaseException] = []

    def other() -> None:
        try:
            compressor.compress(b"x")
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=other)
    thread.start()
    thread.join()
    assert len(errors) == 1 and isinstance(errors[0], WrongThreadError)
    compressor.close()


@pytest.mark.parametrize(("required", "outcome"), [("", pytest.skip.Exception), ("1", pytest.fail.Exception)])
def test_missing_library_skips_unless_required(
    monkeypatch: pytest.MonkeyPatch, required: str, outcome: type[BaseException]
) -> None:
    """Without a library or its header the example tests skip; with FFM_REQUIRE_EXAMPLE_LIBS
    (as CI sets it) they fail."""
    import support

    monkeypatch.setitem(support.EXAMPLE_LIBS, "example_none", ("no_such_header.h", "libno_such.so.9"))
    monkeypatch.setenv("FFM_REQUIRE_EXAMPLE_LIBS", required)
    with pytest.raises(
        outcome,
        match=r"example_none needs no_such_header\.h and libno_such\.so\.9: run 'make example-libs' as root "
        r"\(tests/examples/setup-libs\.sh\)",
    ):
        support.require_example_lib("example_none")


@pytest.mark.parametrize("script", ["bench_bz2.py", "bench_yaml.py"])
def test_benchmark_scripts_run(bz2_site: Path, yaml_site: Path, script: str) -> None:
    """The example benchmarks of ``make demo`` run (small sizes, one repeat) and print every row
    with both throughputs and their ratio."""
    import subprocess
    import sys

    from support import ROOT

    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), "--repeat", "1", "--max-size", "16384"]
        + (["--budget", "0.001"] if script == "bench_bz2.py" else []),
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(bz2_site), str(yaml_site), str(ROOT)])},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    rows = [line for line in result.stdout.splitlines() if line.startswith("| ") and "workload" not in line]
    assert len(rows) == (7 if script == "bench_bz2.py" else 1), result.stdout
    assert all(float(row.split(" | ")[-1].rstrip("x |")) > 0 for row in rows), result.stdout
