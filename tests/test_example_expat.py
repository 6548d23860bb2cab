"""example_expat (libexpat's SAX parser, C calling Python handlers through upcall stubs built
by the real hook) against CPython's xml.parsers.expat: the same event streams on real
documents and on a generated 1 MB one, the same errors (message, line, column), a handler's
exception raised by Parse, handlers replaced and removed mid-parse, every parser freed; its
struct and constants against expat.h as the C compiler sees them."""

from __future__ import annotations

import gc
import io
import sys
import threading
import traceback
import weakref
import xml.parsers.expat as pyexpat
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from support import TESTS, c_layout, c_values, malloc_in_use

DOCUMENTS = sorted((TESTS / "fixtures" / "xml").glob("*.xml"))

Event = tuple[Any, ...]


@pytest.fixture(scope="module")
def expat(expat_site: Path) -> ModuleType:
    from example_expat import expat

    return expat


def record(parser: Any, found: list[Event]) -> None:
    """Set every handler of ``parser`` (either module's) to append its event to ``found``;
    adjacent character data is merged (expat may split it anywhere, xml.parsers.expat's
    buffer_text being False)."""

    def text(data: str) -> None:
        if found and found[-1][0] == "text":
            found[-1] = ("text", found[-1][1] + data)
        else:
            found.append(("text", data))

    parser.StartElementHandler = lambda name, attributes: found.append(("start", name, attributes))
    parser.EndElementHandler = lambda name: found.append(("end", name))
    parser.CharacterDataHandler = text
    parser.CommentHandler = lambda data: found.append(("comment", data))
    parser.ProcessingInstructionHandler = lambda target, data: found.append(("pi", target, data))
    parser.StartCdataSectionHandler = lambda: found.append(("cdata",))
    parser.EndCdataSectionHandler = lambda: found.append(("/cdata",))


def events(module: Any, data: bytes | str, chunk: int | None = None) -> list[Event]:
    """The events of the whole document ``data``, in one Parse or in pieces of ``chunk``; an
    ExpatError ends the list as ("error", message, code, lineno, offset)."""
    found: list[Event] = []
    parser = module.ParserCreate()
    record(parser, found)
    try:
        if chunk is None:
            parser.Parse(data, True)
        else:
            for start in range(0, len(data), chunk):
                parser.Parse(data[start : start + chunk], False)
            parser.Parse(data[:0], True)
    except module.ExpatError as error:
        found.append(("error", str(error), error.code, error.lineno, error.offset))
    return found


def generated(size: int) -> bytes:
    sys.path.insert(0, str(TESTS.parent / "benchmarks"))
    try:
        from bench_expat import document
    finally:
        sys.path.remove(str(TESTS.parent / "benchmarks"))
    return document(size)


def test_struct_and_constants_match_expat_h(expat: ModuleType, tmp_path: Path) -> None:
    from example_expat import ffm_features as f
    from ffm_runtime import PathElement

    fields = ["major", "minor", "micro"]
    offsets = {name: f.VERSION_INFO.byte_offset(PathElement.group_element(name)) for name in fields}
    assert c_layout("expat.h", "XML_Expat_Version", fields, tmp_path) == (f.VERSION_INFO.byte_size, offsets)
    expected = {
        "sizeof(XML_Char)": 1,  # UTF-8: the handlers decode bytes
        "sizeof(XML_LChar)": 1,
        "sizeof(XML_Bool)": f.BOOL.byte_size,
        "sizeof(XML_Size)": f.SIZE.byte_size,
        "sizeof(XML_Index)": f.INDEX.byte_size,
        "sizeof(enum XML_Error)": f.ENUM.byte_size,
        "sizeof(enum XML_Status)": f.ENUM.byte_size,
        "sizeof(void *)": f.USER_DATA.byte_size,
        "sizeof(const XML_Char *)": f.POINTER.byte_size,
        "XML_STATUS_ERROR": expat.XML_STATUS_ERROR,
        "XML_STATUS_OK": expat.XML_STATUS_OK,
        "XML_FALSE": expat.XML_FALSE,
        "XML_ERROR_ABORTED": expat.XML_ERROR_ABORTED,
        "XML_ERROR_FINISHED": expat.XML_ERROR_FINISHED,
        "XML_MAJOR_VERSION": expat.version_info()[0],
        "XML_MINOR_VERSION": expat.version_info()[1],
        "XML_MICRO_VERSION": expat.version_info()[2],
    }
    assert c_values("expat.h", list(expected), tmp_path) == expected
    assert expat.version_info() == pyexpat.version_info  # the same expat as CPython's: same events
    assert expat.EXPAT_VERSION == pyexpat.EXPAT_VERSION


def test_error_strings_as_pyexpat(expat: ModuleType) -> None:
    for code in range(60):
        assert expat.ErrorString(code) == pyexpat.ErrorString(code), code
    assert expat.ErrorString(expat.XML_ERROR_ABORTED) == "parsing aborted"


@pytest.mark.parametrize("path", DOCUMENTS, ids=lambda p: p.name)
def test_same_events_as_pyexpat(expat: ModuleType, path: Path) -> None:
    data = path.read_bytes()
    expected = events(pyexpat, data)
    assert expected[-1][0] != "error"
    assert len(expected) > 4
    assert events(expat, data) == expected
    # fed in pieces: expat splits text at other places, the merged stream is the same
    assert events(expat, data, chunk=7) == events(pyexpat, data, chunk=7) == expected
    if not path.name.startswith(("latin1", "utf16")):  # str input is parsed as UTF-8 on both sides
        text = data.decode("utf-8")
        assert events(expat, text) == events(pyexpat, text) == expected


def test_the_fixtures_cover_every_kind_of_event() -> None:
    kinds: set[str] = set()
    for path in DOCUMENTS:
        kinds |= {event[0] for event in events(pyexpat, path.read_bytes())}
    assert kinds == {"start", "end", "text", "comment", "pi", "cdata", "/cdata"}
    entities = events(pyexpat, (TESTS / "fixtures" / "xml" / "entities.xml").read_bytes())
    assert ("start", "item", {"kind": "default-kind", "flag": "off"}) in entities  # from the DTD
    assert ("start", "signature", {}) in entities  # an entity's markup


def test_generated_1mb_document(expat: ModuleType) -> None:
    data = generated(1 << 20)
    assert len(data) >= 1 << 20
    expected = events(pyexpat, data)
    assert len(expected) > 100_000
    assert events(expat, data) == expected


def test_unmerged_events_are_the_same_with_the_same_expat(expat: ModuleType) -> None:
    """The character data comes in the very pieces xml.parsers.expat's does (both call the
    same expat 2.x), each decoded from exactly its length."""
    data = generated(1 << 16)
    raw: list[list[str]] = [[], []]
    for module, found in zip((expat, pyexpat), raw, strict=True):
        parser = module.ParserCreate()
        parser.CharacterDataHandler = found.append
        parser.Parse(data, True)
    assert raw[0] == raw[1]
    assert len(raw[0]) > 1000


MALFORMED = [
    b"<a><b></a>",
    b"<a>",
    b"",
    b"<a></a><b/>",
    b"<a x='1' x='2'/>",
    b"<a>&undefined;</a>",
    b"<a>\n  <b attr=noquotes/>\n</a>",
    b"<?xml version='1.0' encoding='UTF-16'?><a/>",
    b"<a>\xff\xfe</a>",
    b"<a>text</a >\n\n   junk",
    b"<!DOCTYPE a [<!ENTITY e '&e;'>]><a>&e;</a>",
    b"<a><![CDATA[ unterminated </a>",
    "<a>\n\n   <b>é</c></a>".encode(),
]


@pytest.mark.parametrize("data", MALFORMED, ids=range(len(MALFORMED)))
def test_errors_as_pyexpat(expat: ModuleType, data: bytes) -> None:
    expected = events(pyexpat, data)
    ours = events(expat, data)
    assert ours == expected  # the events before the error, then message, code, line, column
    assert ours[-1][0] == "error"
    message, code, lineno, offset = ours[-1][1:]
    assert message == f"{pyexpat.ErrorString(code)}: line {lineno}, column {offset}"


def test_error_attributes(expat: ModuleType) -> None:
    parser = expat.ParserCreate()
    with pytest.raises(expat.ExpatError, match=r"^mismatched tag: line 3, column 2$") as caught:
        parser.Parse(b"<a>\n<b>\n</a>", True)
    error = caught.value
    assert (error.code, error.lineno, error.offset) == (7, 3, 2)
    assert error.code == pyexpat.errors.codes[pyexpat.errors.XML_ERROR_TAG_MISMATCH]
    assert (parser.ErrorCode, parser.ErrorLineNumber, parser.ErrorColumnNumber) == (7, 3, 2)
    assert parser.ErrorByteIndex == 10
    assert expat.error is expat.ExpatError and issubclass(expat.ExpatError, Exception)
    # Parse after an error: expat's answer, the same as xml.parsers.expat's
    reference = pyexpat.ParserCreate()
    with pytest.raises(pyexpat.ExpatError) as theirs:
        reference.Parse(b"<a>\n<b>\n</a>", True)
    with pytest.raises(pyexpat.ExpatError) as theirs:
        reference.Parse(b"", True)
    with pytest.raises(expat.ExpatError, match=f"^{theirs.value}$"):
        parser.Parse(b"", True)
    parser.close()
    with expat.ParserCreate() as parser:  # Parse after the end: "parsing finished", as there
        parser.Parse(b"<a/>", True)
        with pytest.raises(expat.ExpatError, match=r"^parsing finished: line 1, column 4$"):
            parser.Parse(b"", True)


def test_an_encoding_expat_does_not_know(expat: ModuleType) -> None:
    """xml.parsers.expat asks Python's codecs for encodings expat does not know (its
    XML_SetUnknownEncodingHandler); this binding does not: expat's error."""
    data = b"<?xml version='1.0' encoding='no-such-encoding'?><a/>"
    with pytest.raises(LookupError, match="unknown encoding: no-such-encoding"):
        pyexpat.ParserCreate().Parse(data, True)
    with pytest.raises(expat.ExpatError, match=r"^unknown encoding: line 1, column 30$"):
        expat.ParserCreate().Parse(data, True)


class Stop(Exception):
    pass


class Interrupt(BaseException):
    pass


@pytest.mark.parametrize("kind", ["start", "end", "text", "comment", "pi", "cdata", "/cdata"])
@pytest.mark.parametrize("error", [Stop, Interrupt])
def test_a_handler_exception_reaches_the_caller_of_parse(
    expat: ModuleType, kind: str, error: type[BaseException]
) -> None:
    """The exception a handler raises comes out of Parse, as in xml.parsers.expat; the parser
    stops there: no handler runs after it (not even the end of the empty element it raised
    in), and the parser is finished."""
    data = (TESTS / "fixtures" / "xml" / "sections.xml").read_bytes()
    data = data.replace(b"<root>", b"<root><empty/>")

    def run(module: Any) -> tuple[list[Event], Any]:
        found: list[Event] = []
        parser = module.ParserCreate()
        record(parser, found)
        handler = {
            "start": "StartElementHandler",
            "end": "EndElementHandler",
            "text": "CharacterDataHandler",
            "comment": "CommentHandler",
            "pi": "ProcessingInstructionHandler",
            "cdata": "StartCdataSectionHandler",
            "/cdata": "EndCdataSectionHandler",
        }[kind]
        wrapped = getattr(parser, handler)
        raised = error(f"raised by the {kind} handler")

        def raising(*args: Any) -> None:
            wrapped(*args)
            if sum(event[0] == kind for event in found) == 2:
                raise raised

        setattr(parser, handler, raising)
        with pytest.raises(error, match=f"^raised by the {kind} handler$") as caught:
            parser.Parse(data, True)
        assert caught.value is raised
        assert caught.value.__traceback__ is not None
        assert "raising" in [frame.name for frame in traceback.extract_tb(caught.value.__traceback__)]
        return found, parser

    ours, parser = run(expat)
    theirs, _ = run(pyexpat)
    assert ours == theirs  # up to and including the event that raised
    assert sum(event[0] == kind for event in ours) == 2
    with pytest.raises(expat.ExpatError, match=r"^parsing finished: line \d+, column \d+$"):
        parser.Parse(b"<more/>", True)
    parser.close()


def test_the_empty_element_a_start_handler_raised_in_gets_no_end(expat: ModuleType) -> None:
    found: list[Event] = []
    parser = expat.ParserCreate()
    record(parser, found)

    def start(name: str, attributes: dict[str, str]) -> None:
        found.append(("start", name, attributes))
        if name == "b":
            raise Stop("at b")

    parser.StartElementHandler = start
    with pytest.raises(Stop, match=r"^at b$"):
        parser.Parse(b"<a><b x='1'/><c/>text</a>", True)
    assert found == [("start", "a", {}), ("start", "b", {"x": "1"})]


def test_handlers_replaced_and_removed_mid_parse(expat: ModuleType) -> None:
    """A handler that sets, replaces and removes handlers (its own included): the change takes
    effect at the next event, on both sides alike."""
    data = (TESTS / "fixtures" / "xml" / "catalog.xml").read_bytes()

    def run(module: Any) -> list[Event]:
        found: list[Event] = []
        parser = module.ParserCreate()
        record(parser, found)
        first_start = parser.StartElementHandler

        def start(name: str, attributes: dict[str, str]) -> None:
            first_start(name, attributes)
            if name == "book":
                parser.CharacterDataHandler = None  # no text until the next <title>
                parser.EndElementHandler = lambda name: found.append(("END", name.upper()))
            elif name == "title":
                record_text = []
                parser.CharacterDataHandler = record_text.append
                parser.CommentHandler = lambda data: found.append(("text seen", "".join(record_text)))
            elif name == "empty":
                parser.StartElementHandler = lambda name, attributes: found.append(("later", name))
                parser.EndElementHandler = None

        parser.StartElementHandler = start
        parser.Parse(data, True)
        return found

    ours = run(expat)
    assert ours == run(pyexpat)
    assert ("END", "BOOK") in ours and ("later", "mixed") in ours
    assert ("start", "mixed", {}) not in ours


def test_handler_attributes(expat: ModuleType) -> None:
    parser = expat.ParserCreate()
    assert parser.StartElementHandler is None
    handler = print
    parser.StartElementHandler = handler
    assert parser.StartElementHandler is handler
    parser.StartElementHandler = None
    assert parser.StartElementHandler is None
    with pytest.raises(TypeError, match=r"^a handler must be callable or None, not int$"):
        parser.EndElementHandler = 42
    assert parser.Parse(b"<a>x</a>", True) == 1
    parser.close()


def test_parse_file_and_pieces(expat: ModuleType) -> None:
    data = generated(200_000)
    expected = events(pyexpat, data)
    found: list[Event] = []
    with expat.ParserCreate() as parser:
        record(parser, found)
        assert parser.ParseFile(io.BytesIO(data)) == 1
    assert found == expected
    assert events(expat, bytearray(data)) == events(expat, memoryview(data)) == expected


def test_encoding_override(expat: ModuleType) -> None:
    data = "<a é='ü'>ÿ</a>".encode("latin-1")
    for module in (expat, pyexpat):
        found: list[Event] = []
        parser = module.ParserCreate("ISO-8859-1")
        record(parser, found)
        parser.Parse(data, True)
        assert found == [("start", "a", {"é": "ü"}), ("text", "ÿ"), ("end", "a")]


def test_str_with_a_lone_surrogate(expat: ModuleType) -> None:
    for module in (expat, pyexpat):
        with pytest.raises(UnicodeEncodeError, match="surrogates not allowed"):
            module.ParserCreate().Parse("<a>\ud800</a>", True)


def test_current_position(expat: ModuleType) -> None:
    data = b"<a>\n  <b/>\n  <c>text</c>\n</a>"

    def run(module: Any) -> list[tuple[str, int, int, int]]:
        seen = []
        parser = module.ParserCreate()
        parser.StartElementHandler = lambda name, attributes: seen.append(
            (name, parser.CurrentLineNumber, parser.CurrentColumnNumber, parser.CurrentByteIndex)
        )
        parser.Parse(data, True)
        return seen

    assert run(expat) == run(pyexpat) == [("a", 1, 0, 0), ("b", 2, 2, 6), ("c", 3, 2, 13)]


def test_nested_parsers_and_threads(expat: ModuleType) -> None:
    """A handler of one parser parses another document (upcalls within upcalls, each finding
    its own parser); parsers in several threads at once."""
    inner = b"<inner><x a='1'/>deep</inner>"
    outer: list[Event] = []
    parser = expat.ParserCreate()
    record(parser, outer)

    def start(name: str, attributes: dict[str, str]) -> None:
        outer.append(("start", name, attributes))
        outer.append(("nested", tuple(events(expat, inner))))

    parser.StartElementHandler = start
    parser.Parse(b"<a><b/></a>", True)
    nested = ("nested", tuple(events(pyexpat, inner)))
    assert outer == [("start", "a", {}), nested, ("start", "b", {}), nested, ("end", "b"), ("end", "a")]

    data = generated(100_000)
    expected = events(pyexpat, data)
    results: list[list[Event]] = []
    threads = [threading.Thread(target=lambda: results.append(events(expat, data))) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [expected] * 4


def test_closed_parser_and_misuse(expat: ModuleType) -> None:
    parser = expat.ParserCreate()
    parser.close()
    parser.close()
    with pytest.raises(ValueError, match=r"^the parser is closed$"):
        parser.Parse(b"<a/>", True)
    with pytest.raises(ValueError, match=r"^the parser is closed$"):
        parser.StartElementHandler = print
    with pytest.raises(TypeError, match=r"^Parse\(\) needs bytes or str, not int$"):
        expat.ParserCreate().Parse(42)
    with pytest.raises(NotImplementedError, match="namespace processing"):
        expat.ParserCreate(namespace_separator=" ")

    parser = expat.ParserCreate()
    parser.StartElementHandler = lambda name, attributes: parser.close()
    with pytest.raises(RuntimeError, match=r"^close\(\) called from a handler of the parser, while it"):
        parser.Parse(b"<a/>", True)
    parser.close()
    parser = expat.ParserCreate()
    parser.StartElementHandler = lambda name, attributes: parser.Parse(b"<b/>")
    with pytest.raises(RuntimeError, match=r"^Parse\(\) called from a handler of the same parser"):
        parser.Parse(b"<a/>", True)
    parser.close()


def test_every_parser_is_freed(expat: ModuleType) -> None:
    """XML_ParserFree runs on close(), at the end of a with block, and when a parser is
    collected (after an error, after a handler raised, with handlers that refer back to the
    parser); the C heap stays flat."""
    data = generated(50_000)

    def cycle() -> weakref.ref[Any]:
        assert len(events(expat, data)) > 1000  # dropped unclosed
        with expat.ParserCreate() as parser:
            parser.Parse(data[:20_000])
        events(expat, data + b"<unclosed>")
        parser = expat.ParserCreate()
        parser.StartElementHandler = lambda name, attributes: parser.close()
        with pytest.raises(RuntimeError):
            parser.Parse(data, True)
        cyclic = expat.ParserCreate()  # cyclic -> its handler -> cyclic
        cyclic.StartElementHandler = lambda name, attributes: cyclic.CurrentLineNumber
        cyclic.Parse(data[:20_000])
        return weakref.ref(cyclic)

    cycle()
    gc.collect()
    before = malloc_in_use()
    for _ in range(30):
        collected = cycle()
        gc.collect()
        assert collected() is None
    assert malloc_in_use() - before < 1_000_000  # a leaked parser per cycle is more than that


def test_benchmark_script_runs(expat_site: Path) -> None:
    """benchmarks/bench_expat.py (as ``make demo`` runs it, small size, one repeat) prints its
    row with both throughputs and their ratio, and the report's goals block takes it."""
    import os
    import subprocess

    from support import ROOT

    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench_expat.py"), "--repeat", "1", "--max-size", "16384"],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(expat_site), str(ROOT)])},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    rows = [line for line in result.stdout.splitlines() if line.startswith("| ") and "workload" not in line]
    assert len(rows) == 1, result.stdout
    assert all(float(row.split(" | ")[-1].rstrip("x |")) > 0 for row in rows), result.stdout
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import report
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    (goal,) = [line for line in report.goals({"bench_expat.py": result.stdout}).splitlines()[2:]]
    assert goal.startswith("| bench_expat.py | parse 16 KiB document, a handler per event | ")
    assert goal.endswith(("| >= 1.0x | met |", "| >= 1.0x | not met |")), goal
