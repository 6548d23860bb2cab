"""Stub images: linked when the wheel is built (_link), checked and placed at run time
(_image, _loader); anything malformed is refused, never a write outside the image."""

from __future__ import annotations

import ctypes
import re
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from llvmlite import ir

from ffm_runtime import (
    ADDRESS,
    JAVA_INT,
    JAVA_LONG,
    FunctionDescriptor,
    StubLoadError,
    _elf,
    _reloc_x86_64,
    registration_key,
)
from ffm_runtime._bootstrap import resolve_import
from ffm_runtime._descriptor import upcall_key
from ffm_runtime._image import LINK_PAGE, MAGIC, Image, ImageError, decode, encode
from ffm_runtime._link import LinkError, link
from ffm_runtime._loader import load_image, load_object
from hatch_ffm._compile import compile_image, compile_object
from hatch_ffm._ir import build_stub_module, stub_symbol
from hatch_ffm._lowering import lower, lower_upcall

TRIPLE = "x86_64-unknown-linux-gnu"
X86 = _elf.EM_X86_64
SUM = FunctionDescriptor.of(JAVA_LONG, JAVA_LONG, JAVA_LONG)
CALLBACK = FunctionDescriptor.of(JAVA_INT, ADDRESS)


@pytest.fixture(scope="module")
def stub_object() -> bytes:
    """Two downcall shapes and an upcall shape (whose slots are writable data)."""
    sigs = [lower(registration_key(d), d, ()) for d in (SUM, FunctionDescriptor.of(JAVA_INT, JAVA_INT))]
    upcall = lower_upcall(upcall_key(CALLBACK), CALLBACK)
    return compile_object(str(build_stub_module(sigs, TRIPLE, [upcall], 4)), TRIPLE)


@pytest.fixture(scope="module")
def image_file(stub_object: bytes) -> bytes:
    return encode(link(stub_object, X86))


def maps_permissions(address: int) -> str:
    for line in Path("/proc/self/maps").read_text().splitlines():
        span, perms = line.split()[:2]
        start, end = (int(x, 16) for x in span.split("-"))
        if start <= address < end:
            return perms
    raise AssertionError(f"{address:#x} is not mapped")


def test_an_image_is_its_objects_layout_with_only_addresses_left(stub_object: bytes) -> None:
    image = link(stub_object, X86)
    assert decode(encode(image), X86) == image
    # what is left: the interpreter's functions (GOT slots) and the runtime's cells
    names = {name for _offset, name, _addend in image.imports}
    assert {"PyErr_Occurred", "ffm_rt_offsets"} <= names
    assert all(name for name in names)
    # slots of the upcall pool: writable, on pages of their own
    assert image.data_offset % LINK_PAGE == 0 and image.code_size <= image.data_offset < image.total_size
    symbols = dict(image.symbols)
    slots = symbols[stub_symbol(upcall_key(CALLBACK)) + "_slots"]
    assert slots >= image.data_offset
    assert symbols[stub_symbol(registration_key(SUM)) + "_b"] < image.code_size


def test_a_placed_image_runs_and_keeps_code_and_data_apart(image_file: bytes) -> None:
    loaded = load_image(image_file, resolve_import, "mem.img", X86)
    unbound = loaded.symbols[stub_symbol(registration_key(SUM)) + "_u"]
    slots = loaded.symbols[stub_symbol(upcall_key(CALLBACK)) + "_slots"]
    assert maps_permissions(unbound) == "r-xp"
    assert maps_permissions(slots) == "rw-p"
    # the GOT holds what the resolver gives (read through the code's own slot table)
    image = decode(image_file, X86)
    base = loaded.region.address
    for offset, name, addend in image.imports:
        assert ctypes.c_uint64.from_address(base + offset).value == resolve_import(name) + addend


def test_the_same_object_loads_alike_as_object_and_as_image(stub_object: bytes, image_file: bytes) -> None:
    """Format-2 wheels carry objects, linked as they load: the same code as the image."""
    from_object = load_object(stub_object, resolve_import, "mem.o", X86)
    from_image = load_image(image_file, resolve_import, "mem.img", X86)
    assert {n: a - from_object.region.address for n, a in from_object.symbols.items()} == {
        n: a - from_image.region.address for n, a in from_image.symbols.items()
    }
    image = decode(image_file, X86)

    def code(region_address: int) -> bytes:
        """The code part, with the load address taken out of the relative words again."""
        data = bytearray(ctypes.string_at(region_address, image.code_size))
        for offset in image.relatives:
            if offset + 8 <= image.code_size:
                value = int.from_bytes(data[offset : offset + 8], "little") - region_address
                data[offset : offset + 8] = value.to_bytes(8, "little")
        return bytes(data)

    assert code(from_object.region.address) == code(from_image.region.address)


def test_compile_image_is_what_the_hook_ships(stub_object: bytes) -> None:
    descriptor = FunctionDescriptor.of(JAVA_INT, JAVA_INT)
    sig = lower(registration_key(descriptor), descriptor, ())
    data = compile_image(str(build_stub_module([sig], TRIPLE)), TRIPLE)
    assert data.startswith(MAGIC)
    assert stub_symbol(registration_key(descriptor)) + "_b" in dict(decode(data, X86).symbols)


def _header(data: bytes) -> list[int]:
    return list(struct.unpack_from("<8sHHIIIIIIIII", data))


def _with_header(data: bytes, index: int, value: object) -> bytes:
    fields = _header(data)
    fields[index] = value  # type: ignore[call-overload]
    return struct.pack("<8sHHIIIIIIIII", *fields) + data[struct.calcsize("<8sHHIIIIIIIII") :]


HEADER_DAMAGE = {
    "magic": (0, b"\x7fELF\x02\x01\x01\x00", r"not a stub image \(bad magic\)"),
    "version": (1, 2, "stub image version 2; this runtime reads version 1"),
    "machine": (2, _elf.EM_AARCH64, "stub image for ELF machine 183, not 62"),
    "code larger than data offset": (3, 1 << 30, "inconsistent sizes"),
    "data offset past the end": (4, 1 << 29, "inconsistent sizes"),
    "huge": (5, 1 << 30, "the image would map 1073741824 bytes"),
    "content past the end": (6, 1 << 28, "inconsistent sizes|describes"),
    "more symbols": (7, 10**6, "the image file has .* bytes; its header describes"),
    "more imports": (9, 3, "the image file has .* bytes; its header describes"),
    "longer names": (11, 1 << 31, "the image file has .* bytes; its header describes"),
}


@pytest.mark.parametrize("damage", HEADER_DAMAGE, ids=list(HEADER_DAMAGE))
def test_a_damaged_header_is_refused(image_file: bytes, damage: str) -> None:
    index, value, message = HEADER_DAMAGE[damage]
    with pytest.raises(StubLoadError, match=rf"cannot load stub image bad\.img: .*({message})"):
        load_image(_with_header(image_file, index, value), resolve_import, "bad.img", X86)


def test_a_writable_part_sharing_a_page_with_code_is_refused(image_file: bytes) -> None:
    fields = _header(image_file)
    fields[4] = fields[4] - 4096  # the data offset, now inside a 64 KiB page of code
    fields[3] = min(fields[3], fields[4])
    data = struct.pack("<8sHHIIIIIIIII", *fields) + image_file[struct.calcsize("<8sHHIIIIIIIII") :]
    with pytest.raises(ImageError, match=r"the writable part starts at .*, not on a 0x10000 boundary"):
        decode(data, X86)


def _tables(image: Image) -> tuple[Image, ...]:
    """Images whose tables point outside the image or at bad names."""
    total = image.total_size
    first = image.imports[0]
    return (
        Image(*_fields(image, symbols=(("far", total + 1),))),
        Image(*_fields(image, imports=((total - 7, first[1], 0),))),
        Image(*_fields(image, relatives=(total - 4,))),
        Image(*_fields(image, sections=((".text", total + 8),))),
    )


def _fields(image: Image, **changes: object) -> tuple[object, ...]:
    values = {name: getattr(image, name) for name in Image.__slots__}
    values.update(changes)
    order = (
        "machine",
        "content",
        "code_size",
        "data_offset",
        "total_size",
        "symbols",
        "imports",
        "relatives",
    )
    return (*(values[name] for name in order), values["sections"])


def test_tables_pointing_outside_the_image_are_refused(image_file: bytes) -> None:
    image = decode(image_file, X86)
    messages = ("symbol at .* is outside the image", "import at .* writes outside the image",
                "relative word at .* is outside the image", "section at .* is outside the image")  # fmt: skip
    for bad, message in zip(_tables(image), messages, strict=True):
        with pytest.raises(ImageError, match=message):
            encode(bad)  # (encode checks what it wrote)


@pytest.mark.parametrize(
    ("name", "message"),
    [("Py\nErr", "has characters a symbol cannot have"), ("", "outside the name table")],
)
def test_bad_names_are_refused(image_file: bytes, name: str, message: str) -> None:
    image = decode(image_file, X86)
    with pytest.raises(ImageError, match=message):
        encode(Image(*_fields(image, imports=((0, name, 0),))))


def test_an_import_the_runtime_does_not_allow_is_refused(image_file: bytes) -> None:
    image = decode(image_file, X86)
    offset = image.imports[0][0]
    data = encode(Image(*_fields(image, imports=((offset, "system", 0),))))
    with pytest.raises(StubLoadError, match="undefined symbol 'system' is not allowed in stubs or not found"):
        load_image(data, resolve_import, "evil.img", X86)


def test_random_damage_to_the_tables_never_crashes(tmp_path: Path, image_file: bytes) -> None:
    """Flipped bytes in the header and tables: each load is refused or maps the image (it
    is not called): in a child, so that a crash would show."""
    path = tmp_path / "stubs.img"
    path.write_bytes(image_file)
    content = struct.unpack_from("<8sHHIIIIIIIII", image_file)[6]
    script = f"""
import random
from ffm_runtime import StubLoadError
from ffm_runtime._bootstrap import resolve_import
from ffm_runtime._loader import load_image
data = open({str(path)!r}, "rb").read()
rng = random.Random(1)
head, tables = 44, 44 + {content}
outcomes = {{"refused": 0, "loaded": 0}}
for _ in range(400):
    mutant = bytearray(data)
    for _ in range(rng.randrange(1, 4)):
        where = rng.choice([rng.randrange(head), rng.randrange(tables, len(data))])
        mutant[where] ^= 1 << rng.randrange(8)
    try:
        load_image(bytes(mutant), resolve_import, "mutant.img", 62).region.release()
        outcomes["loaded"] += 1
    except StubLoadError:
        outcomes["refused"] += 1
print(outcomes)
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "'refused': " in result.stdout and "'refused': 0," not in result.stdout


def _module_using_external_data(dso_local: bool) -> str:
    """A function returning an int of the interpreter (``dso_local``: as if it were in the
    same object, which LLVM then reaches PC-relative)."""
    return f"""target triple = "{TRIPLE}"
@PyExc_TypeError = external {"dso_local " if dso_local else ""}global i32
define i32 @read_it() {{
  %value = load i32, ptr @PyExc_TypeError
  ret i32 %value
}}
"""


def test_a_reach_outside_the_image_cannot_be_linked_ahead_of_time() -> None:
    obj = compile_object(_module_using_external_data(dso_local=True), TRIPLE)
    with pytest.raises(
        LinkError, match="against 'PyExc_TypeError', which is not in the object, cannot be linked"
    ):
        link(obj, X86)
    # without dso_local, LLVM goes through the GOT: an import
    image = link(compile_object(_module_using_external_data(dso_local=False), TRIPLE), X86)
    assert [name for _o, name, _a in image.imports] == ["PyExc_TypeError"]


def test_an_absolute_32_bit_address_cannot_be_linked(stub_object: bytes) -> None:
    obj = _elf.parse(stub_object)
    rela = next(s for s in obj.sections if s.name == ".rela.text")
    data = bytearray(stub_object)
    info = struct.unpack_from("<Q", data, rela.offset + 8)[0]
    struct.pack_into("<Q", data, rela.offset + 8, (info & ~0xFFFFFFFF) | _reloc_x86_64.R_X86_64_32)
    with pytest.raises(LinkError, match="R_X86_64_32 needs an absolute 32-bit address"):
        link(bytes(data), X86)


def _pointer_table_module() -> str:
    """A function ``answer`` returning 42 and a writable ``table`` pointing at it."""
    module = ir.Module()
    module.triple = TRIPLE
    fn = ir.Function(module, ir.FunctionType(ir.IntType(32), []), "answer")
    ir.IRBuilder(fn.append_basic_block()).ret(ir.Constant(ir.IntType(32), 42))
    table = ir.GlobalVariable(module, ir.PointerType(), "table")
    table.initializer = fn
    return str(module)


def test_the_placed_bytes_follow_the_relative_words() -> None:
    """A pointer table into the image: its word gets the load address added."""
    image = link(compile_object(_pointer_table_module(), TRIPLE), X86)
    symbols = dict(image.symbols)
    assert symbols["table"] in image.relatives
    assert (
        int.from_bytes(image.content[symbols["table"] : symbols["table"] + 8], "little") == symbols["answer"]
    )
    loaded = load_image(encode(image), resolve_import, "table.img", X86)
    assert ctypes.c_void_p.from_address(loaded.symbols["table"]).value == loaded.symbols["answer"]
    for _ in range(3):  # the same code, wherever it lands
        again = load_image(encode(image), resolve_import, "table.img", X86)
        assert ctypes.CFUNCTYPE(ctypes.c_int)(again.symbols["answer"])() == 42


def test_a_symbol_named_twice_is_refused(image_file: bytes) -> None:
    """Two addresses for one name: the loader cannot know which stub is meant."""
    image = decode(image_file, X86)
    name, offset = image.symbols[0]
    data = encode(Image(*_fields(image, symbols=(*image.symbols, (name, offset + 16)))))
    with pytest.raises(StubLoadError, match=rf"twice\.img: it has two symbols named {name}"):
        load_image(data, resolve_import, "twice.img", X86)


def test_words_filled_in_twice_are_refused(image_file: bytes) -> None:
    """An import and a relative word (or two imports) sharing bytes: refused, whichever is
    written last."""
    image = decode(image_file, X86)
    offset, name, _addend = image.imports[0]
    for changes in (
        {"imports": (*image.imports, (offset + 4, name, 0))},
        {"relatives": (*image.relatives, offset)},
    ):
        with pytest.raises(ImageError, match=rf"the words filled in at {offset:#x} and .* overlap"):
            encode(Image(*_fields(image, **changes)))


def test_a_part_neither_code_nor_writable_is_refused(image_file: bytes) -> None:
    """The writable part starts where the code part ends (or on the next boundary): else
    what lies between would be read+write and not executable, or code that is never sealed."""
    image = decode(image_file, X86)
    assert image.data_offset < image.total_size  # (an upcall pool's slots)
    padded = image.content + bytes(image.total_size - len(image.content))
    for changes in (
        {"code_size": 0},  # nothing sealed
        {"content": padded, "data_offset": image.total_size},  # the slots sealed read+execute
    ):
        with pytest.raises(ImageError, match=r"the writable part starts at .*, not where the code part ends"):
            encode(Image(*_fields(image, **changes)))


def test_content_shorter_than_the_code_is_refused(image_file: bytes) -> None:
    """The code part is all in the file: cut short, the rest would run as zero bytes."""
    image = decode(image_file, X86)
    with pytest.raises(ImageError, match=r"inconsistent sizes: code \d+, data from \d+, content 16,"):
        encode(Image(*_fields(image, content=image.content[:16])))


def test_a_name_outside_ascii_is_an_image_error(image_file: bytes) -> None:
    image = decode(image_file, X86)
    with pytest.raises(ImageError, match="name 'caf\u00e9' has characters a symbol cannot have"):
        encode(Image(*_fields(image, symbols=(("caf\u00e9", 0),))))


def test_a_relative_word_naming_a_place_outside_the_image_is_refused() -> None:
    image = link(compile_object(_pointer_table_module(), TRIPLE), X86)
    (offset,) = image.relatives
    content = bytearray(image.content)
    content[offset : offset + 8] = (1 << 40).to_bytes(8, "little")
    data = encode(Image(*_fields(image, content=bytes(content))))
    message = rf"far\.img: the relative word at {offset:#x} names 0x10000000000, outside the image"
    with pytest.raises(StubLoadError, match=message):
        load_image(data, resolve_import, "far.img", X86)


def test_a_stub_whose_entry_is_not_in_the_code_is_never_called(tmp_path: Path, stub_site: Path) -> None:
    """An installed image (its manifest's digest matching) whose stub symbols point past its
    code: the handle is refused, not made to jump into bytes that are not code (a crash)."""
    import hashlib
    import json
    import os
    import shutil

    site = tmp_path / "site"
    shutil.copytree(stub_site / "ffm_testpkg", site / "ffm_testpkg")
    manifest_path = site / "ffm_testpkg" / "_ffm" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    key = registration_key(FunctionDescriptor.of(JAVA_INT))
    entry = next(o for o in manifest["objects"] if o["target"] == "x86_64-linux")
    image_path = site / "ffm_testpkg" / "_ffm" / entry["file"]
    image = decode(image_path.read_bytes(), X86)
    symbol = stub_symbol(key)
    moved = tuple(
        (name, image.code_size if name.startswith(symbol) else offset) for name, offset in image.symbols
    )
    data = encode(Image(*_fields(image, symbols=moved)))
    image_path.write_bytes(data)
    entry["sha256"] = hashlib.sha256(data).hexdigest()
    manifest_path.write_text(json.dumps(manifest))
    script = f"""
import sys
sys.path.insert(0, {str(site)!r})
import ffm_runtime as ffm
from ffm_runtime import JAVA_INT, FunctionDescriptor, Linker, StubLoadError
getpid = ffm.SymbolLookup.loader_lookup().find("getpid")
try:
    handle = Linker.native_linker().downcall_handle(getpid, FunctionDescriptor.of(JAVA_INT))
except StubLoadError as exc:
    print("refused:", exc)
else:
    print("called:", handle())
"""
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "FFM_ENABLE_NATIVE_ACCESS": "ALL-UNNAMED"},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(
        rf"refused: stub object .*{entry['file']} is damaged: its symbol {symbol}_[bu] is not in its code",
        result.stdout,
    ), result.stdout + result.stderr


def test_an_upcall_pool_outside_its_places_is_refused(tmp_path: Path, stub_site: Path) -> None:
    """An installed image whose upcall slots are named in its code (a write there would crash:
    the code is sealed) or whose trampolines are named in its writable part: the upcall stub
    is refused."""
    import hashlib
    import json
    import os
    import shutil

    from ffm_runtime._manifest import Manifest

    compare = FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS)  # qsort's (registered)
    key = upcall_key(compare)
    symbol = stub_symbol(key)
    outcomes = []
    for moved_name, where in ((symbol + "_slots", "code"), (symbol + "_t0", "data")):
        site = tmp_path / where / "site"
        shutil.copytree(stub_site / "ffm_testpkg", site / "ffm_testpkg")
        manifest_path = site / "ffm_testpkg" / "_ffm" / "manifest.json"
        manifest = json.loads(manifest_path.read_text())
        entry = Manifest.from_json(manifest_path.read_text(), str(manifest_path)).object_for(
            "x86_64-linux", key
        )
        assert entry is not None
        image_path = site / "ffm_testpkg" / "_ffm" / entry.file
        image = decode(image_path.read_bytes(), X86)
        target = 0 if where == "code" else image.data_offset
        moved = tuple((name, target if name == moved_name else offset) for name, offset in image.symbols)
        data = encode(Image(*_fields(image, symbols=moved)))
        image_path.write_bytes(data)
        for raw in manifest["objects"]:
            if raw["file"] == entry.file:
                raw["sha256"] = hashlib.sha256(data).hexdigest()
        manifest_path.write_text(json.dumps(manifest))
        script = f"""
import sys
sys.path.insert(0, {str(site)!r})
from ffm_runtime import ADDRESS, JAVA_INT, Arena, FunctionDescriptor, Linker, StubLoadError
try:
    compare = FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS)
    Linker.native_linker().upcall_stub(lambda a, b: 0, compare, Arena.global_arena())
except StubLoadError as exc:
    print("refused:", exc)
else:
    print("made")
"""
        result = subprocess.run(
            [sys.executable, "-c", script],
            capture_output=True,
            text=True,
            check=False,
            env={**os.environ, "FFM_ENABLE_NATIVE_ACCESS": "ALL-UNNAMED"},
        )
        assert result.returncode == 0, result.stdout + result.stderr
        outcomes.append(result.stdout)
    for outcome in outcomes:
        assert re.search(
            r"refused: stub object .* is damaged: the upcall pool of upcall \(a8a8\)i4 is not where code and "
            r"writable data are; reinstall the package or rebuild its wheel",
            outcome,
        ), outcomes
