"""``python -m example_bz2``: libbz2 through hatch-ffm beside CPython's bz2, on the same data."""

from __future__ import annotations

import bz2

from example_bz2 import libbz2


def main() -> int:
    data = b"".join(b"line %d of a text that repeats itself\n" % (i % 97) for i in range(20000))
    packed = bz2.compress(data, 9)
    corrupt = packed[:100] + bytes(50) + packed[150:]
    rows: list[tuple[str, str, object, object, bool]] = []

    def error(function: object, argument: bytes) -> str:
        try:
            function(argument)  # type: ignore[operator]
        except Exception as exc:
            return type(exc).__mro__[1 if type(exc).__name__ == "BZ2Error" else 0].__name__
        return "no error"

    compressor = libbz2.BZ2Compressor(9)
    streamed = b"".join(compressor.compress(data[i : i + 4096]) for i in range(0, len(data), 4096))
    streamed += compressor.flush()
    two = packed * 2
    cases: list[tuple[str, str, bytes | str, bytes | str]] = [
        ("compress level 9", f"{len(data)} bytes", libbz2.compress(data, 9), packed),
        ("BZ2Compressor", "4 KiB chunks", streamed, packed),
        ("decompress", "2 streams", libbz2.decompress(two), bz2.decompress(two)),
        ("decompress", "corrupt", error(libbz2.decompress, corrupt), error(bz2.decompress, corrupt)),
    ]
    for name, shown, ours, theirs in cases:
        size = len if isinstance(ours, bytes) else str
        rows.append((name, shown, size(ours), size(theirs), ours == theirs))
    print(f"libbz2 {libbz2.version()} through hatch-ffm, beside CPython's bz2")
    print(f"{'function':<16} {'input':<14} {'hatch-ffm':>12} {'bz2':>12}  same")
    for name, shown, mine, other, same in rows:
        print(f"{name:<16} {shown:<14} {mine!s:>12} {other!s:>12}  {'yes' if same else 'NO'}")
    return 0 if all(row[-1] for row in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
