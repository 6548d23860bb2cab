"""Loader fuzzing driver (run in a subprocess): load many mutated stub objects.

    python mutate_objects.py STUB.o SEED COUNT

Every mutated object must either load or raise StubLoadError; any other exception
ends the run with a traceback, a crash ends it with a signal.  Prints the outcome counts.
"""

from __future__ import annotations

import random
import struct
import sys
from collections import Counter

from ffm_runtime import StubLoadError
from ffm_runtime._bootstrap import resolve_import
from ffm_runtime._loader import load_object

EXTREMES = [0, 1, 0x7F, 0x80, 0xFF, 0xFFFF, 0x7FFFFFFF, 0xFFFFFFFF, 2**63, 2**64 - 1]


def field(rng: random.Random) -> int:
    return rng.choice(EXTREMES) if rng.random() < 0.6 else rng.getrandbits(rng.choice((8, 16, 32, 64)))


def mutate(rng: random.Random, data: bytes) -> tuple[str, bytes]:
    out = bytearray(data)
    kind = rng.choice(["bits", "bytes", "truncate", "header", "section", "symbol", "relocation", "append"])
    shoff, shnum = struct.unpack_from("<Q", data, 40)[0], struct.unpack_from("<H", data, 60)[0]
    if kind == "bits":
        for _ in range(rng.randint(1, 8)):
            position = rng.randrange(len(out))
            out[position] ^= 1 << rng.randrange(8)
    elif kind == "bytes":
        for _ in range(rng.randint(1, 4)):
            out[rng.randrange(len(out))] = rng.choice((0, 0xFF, 0x7F, 0x80, rng.randrange(256)))
    elif kind == "truncate":
        out = out[: rng.randrange(len(out))]
    elif kind == "header":
        offset, fmt = rng.choice(
            [(16, "<H"), (18, "<H"), (40, "<Q"), (58, "<H"), (60, "<H"), (62, "<H"), (52, "<H"), (32, "<Q")]
        )
        struct.pack_into(fmt, out, offset, field(rng) % (1 << (8 * struct.calcsize(fmt))))
    elif kind == "section":
        index = rng.randrange(shnum)
        offset, fmt = rng.choice(
            [
                (0, "<I"),
                (4, "<I"),
                (8, "<Q"),
                (24, "<Q"),
                (32, "<Q"),
                (40, "<I"),
                (44, "<I"),
                (48, "<Q"),
                (56, "<Q"),
            ]
        )
        struct.pack_into(
            fmt, out, shoff + index * 64 + offset, field(rng) % (1 << (8 * struct.calcsize(fmt)))
        )
    elif kind in ("symbol", "relocation"):
        wanted = 2 if kind == "symbol" else 4  # SHT_SYMTAB, SHT_RELA
        tables = [i for i in range(shnum) if struct.unpack_from("<I", data, shoff + i * 64 + 4)[0] == wanted]
        index = rng.choice(tables)
        start, size = struct.unpack_from("<QQ", data, shoff + index * 64 + 24)
        entry = start + rng.randrange(max(size // 24, 1)) * 24
        fields = (
            [(0, "<I"), (4, "<B"), (6, "<H"), (8, "<Q"), (16, "<Q")]
            if kind == "symbol"
            else [(0, "<Q"), (8, "<Q"), (12, "<I"), (16, "<q")]
        )
        offset, fmt = rng.choice(fields)
        bits = 8 * struct.calcsize(fmt)
        value = field(rng) % (1 << bits)
        if fmt == "<q":
            value -= 1 << 63
        if kind == "relocation" and offset == 8 and rng.random() < 0.5:
            value = (struct.unpack_from("<Q", out, entry + 8)[0] & ~0xFFFFFFFF) | rng.randrange(64)
        struct.pack_into(fmt, out, entry + offset, value)
    else:
        out += bytes(rng.randrange(256) for _ in range(rng.randint(1, 64)))
    return kind, bytes(out)


def main() -> int:
    data = open(sys.argv[1], "rb").read()  # noqa: SIM115 - a tiny driver
    rng = random.Random(int(sys.argv[2]))
    outcomes: Counter[str] = Counter()
    for index in range(int(sys.argv[3])):
        kind, mutated = mutate(rng, data)
        try:
            loaded = load_object(mutated, resolve_import, f"mutant-{index}.o")
        except StubLoadError:
            outcomes[f"{kind}: refused"] += 1
        except BaseException:
            print(f"mutant {index} ({kind}) raised something else", file=sys.stderr)
            raise
        else:
            loaded.region.release()
            outcomes[f"{kind}: loaded"] += 1
    print(dict(sorted(outcomes.items())))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
