"""``python -m example_expat``: libexpat's events through hatch-ffm upcalls, beside
CPython's :mod:`xml.parsers.expat` on the same document."""

from __future__ import annotations

import xml.parsers.expat as pyexpat
from typing import Any

from example_expat import expat

DOCUMENT = b"""\
<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE menu [<!ENTITY chef "Ren\xc3\xa9e">]>
<menu lang="fr" season="\xc3\xa9t\xc3\xa9">
  <!-- today's specials -->
  <dish price="12.50">Cr\xc3\xaape &amp; cidre, by &chef;</dish>
  <?kitchen fire="high"?>
  <note><![CDATA[<b>spicy</b>]]></note>
  <empty/>
</menu>
"""


def events(module: Any, data: bytes) -> list[tuple[Any, ...]]:
    """The events of ``data``, adjacent character data merged (expat may split it)."""
    found: list[tuple[Any, ...]] = []

    def text(data: str) -> None:
        if found and found[-1][0] == "text":
            found[-1] = ("text", found[-1][1] + data)
        else:
            found.append(("text", data))

    parser = module.ParserCreate()
    parser.StartElementHandler = lambda name, attributes: found.append(("start", name, attributes))
    parser.EndElementHandler = lambda name: found.append(("end", name))
    parser.CharacterDataHandler = text
    parser.CommentHandler = lambda data: found.append(("comment", data))
    parser.ProcessingInstructionHandler = lambda target, data: found.append(("pi", target, data))
    parser.StartCdataSectionHandler = lambda: found.append(("cdata",))
    parser.EndCdataSectionHandler = lambda: found.append(("/cdata",))
    parser.Parse(data, True)
    return found


def main() -> int:
    ours, theirs = events(expat, DOCUMENT), events(pyexpat, DOCUMENT)
    print(f"{expat.EXPAT_VERSION} through hatch-ffm, beside xml.parsers.expat ({pyexpat.EXPAT_VERSION})")
    for index, event in enumerate(ours):
        same = "same" if index < len(theirs) and theirs[index] == event else "DIFFERENT"
        shown = ", ".join(repr(part) for part in event[1:])
        print(f"  {event[0]:<8} {shown:<60} {same}")
    try:
        expat.ParserCreate().Parse(b"<menu><dish></menu>", True)
    except expat.ExpatError as error:
        print(f"malformed: ExpatError({str(error)!r}), code {error.code}, line {error.lineno}, "
              f"column {error.offset}")  # fmt: skip
    return 0 if ours == theirs else 1


if __name__ == "__main__":
    raise SystemExit(main())
