"""``python -m example_project``: each native result beside Python's own answer."""

from __future__ import annotations

import errno
import math
import os

from example_project import native as ex


def main() -> int:
    text = "hatch-ffm ✓"
    rows = [
        ("strlen", repr(text), ex.strlen(text), len(text.encode())),
        ("getpid", "", ex.getpid(), os.getpid()),  # type: ignore[operator]
        ("abs", "-42", ex.abs_(-42), abs(-42)),  # type: ignore[operator]
        ("labs", "-(2**40)", ex.labs(-(2**40)), abs(-(2**40))),  # type: ignore[operator]
        ("toupper", "ord('q')", ex.toupper(ord("q")), ord("Q")),  # type: ignore[operator]
        ("cos", "1.0", ex.cos(1.0), math.cos(1.0)),  # type: ignore[operator]
        ("div", "-17, 5", ex.c_div(-17, 5), (-3, -2)),  # C truncates toward zero
        ("snprintf", "3, 2.5", ex.format_number(3, 2.5), "3 items, 2.500 each"),
        ("strtol", "'99'*20", ex.parse_long("99" * 20), (2**63 - 1, errno.ERANGE)),
    ]
    failures = 0
    print(f"{'function':<8} {'input':<18} {'native':>22} {'python':>22}  ok")
    for name, shown, native, expected in rows:
        ok = native == expected
        failures += not ok
        print(f"{name:<8} {shown:<18} {native!r:>22} {expected!r:>22}  {'yes' if ok else 'NO'}")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
