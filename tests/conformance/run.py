"""Run the conformance echo checks in this interpreter (for an emulated one, say).

    python run.py LIBRARY SIGNATURES.json SEED

``SIGNATURES.json`` lists signature names of the generator; the wheel holding their stubs
and ``ffm_runtime`` must be importable.  Prints ``checked N`` or fails on the first
mismatch, naming the signature.
"""

from __future__ import annotations

import json
import platform
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from calls import Caller
from generator import signatures


def main() -> int:
    library, names_file, seed = sys.argv[1], sys.argv[2], int(sys.argv[3])
    names = set(json.loads(Path(names_file).read_text()))
    sigs = [s for s in signatures() + signatures(stack=True) if s.name in names]
    assert len(sigs) == len(names), "unknown signature names"
    caller = Caller(Path(library), seed)
    for sig in sigs:
        caller.check(sig)
    print(f"checked {len(sigs)} on {platform.machine()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
