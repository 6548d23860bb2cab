"""The contract between native code and the runtime (ffm_runtime._contract): what the
bootstrap fills and checks before the first native object is loaded."""

from __future__ import annotations

from types import MappingProxyType

import pytest

import ffm_runtime
from ffm_runtime import UnsupportedPlatformError, _bootstrap, _contract


def test_cells_are_the_cell_constants_in_order() -> None:
    names = [name for name in vars(_contract) if name.startswith("CELL_")]
    assert tuple(getattr(_contract, name) for name in names) == _contract.RUNTIME_CELLS
    assert len(set(_contract.RUNTIME_CELLS)) == len(_contract.RUNTIME_CELLS) == 30


def test_the_struct_upcall_cells_hold_the_methods_as_installed() -> None:
    """An upcall's struct arguments' arena is opened and closed by the accelerators, when
    they are in use (the cells are filled after they are installed)."""
    import ctypes

    from ffm_runtime import Arena

    _bootstrap.ensure()
    assert ffm_runtime.accelerated()
    for name, method in (
        (_contract.CELL_OPEN_CONFINED, Arena.of_confined),
        (_contract.CELL_CLOSE_ARENA, Arena.close),
    ):
        assert ctypes.c_void_p.from_address(_bootstrap.cell_address(name)).value == id(method)


def test_offsets_are_the_fields_class_by_class() -> None:
    assert _contract.OFFSETS[:3] == ("ob_type", "segment.weakrefs", "list.ob_size")
    assert _contract.OFFSETS[3:] == tuple(
        f"{role}.{name}" for role, names in _contract.FIELDS.items() for name in names
    )


def test_every_cell_holds_its_object_and_every_offset_was_found() -> None:
    import ctypes

    _bootstrap.ensure()
    for name in _contract.RUNTIME_CELLS:
        assert ctypes.c_void_p.from_address(_bootstrap.cell_address(name)).value, name
    table = _bootstrap.resolve_import(_contract.OFFSETS_SYMBOL)
    assert table is not None
    offsets = [ctypes.c_int64.from_address(table + 8 * i).value for i in range(len(_contract.OFFSETS))]
    assert all(offset > 0 for offset in offsets[1:]), offsets
    assert offsets[1] == ffm_runtime.MemorySegment.__weakrefoffset__
    assert ffm_runtime.accelerated()


def test_a_field_the_class_lacks_stops_the_bootstrap(monkeypatch: pytest.MonkeyPatch) -> None:
    fields = dict(_contract.FIELDS)
    fields["segment"] = (*fields["segment"], "_no_such_field")
    monkeypatch.setattr(_contract, "FIELDS", MappingProxyType(fields))
    with pytest.raises(
        UnsupportedPlatformError,
        match=r"the contract names fields \['_no_such_field'\] that MemorySegment "
        r"does not have",
    ):
        _bootstrap.bootstrap()


def test_a_cell_without_an_object_stops_the_bootstrap(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_contract, "RUNTIME_CELLS", (*_contract.RUNTIME_CELLS, "ffm_rt_new"))
    with pytest.raises(
        UnsupportedPlatformError, match="ffm_runtime's cells or classes do not match its contract"
    ):
        _bootstrap.bootstrap()
