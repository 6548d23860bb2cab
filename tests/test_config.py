"""Validation of the hook's TOML options: each message names the option and the table."""

from __future__ import annotations

from typing import Any

import pytest

from hatch_ffm._build import TargetError, resolve_targets
from hatch_ffm._config import DEFAULT_UPCALL_POOL_SIZE, ConfigError, parse_config
from hatch_ffm._tags import wheel_tag

PATH = "tool.hatch.build.targets.wheel.hooks.ffm"


def test_defaults() -> None:
    config = parse_config({}, PATH)
    assert config.features == () and config.entry_points is True
    assert config.package is None and config.targets == ("native",)
    assert config.upcall_pool_size == DEFAULT_UPCALL_POOL_SIZE == 256
    assert parse_config({"upcall-pool-size": 1}, PATH).upcall_pool_size == 1


def test_reserved_hatchling_keys_are_ignored() -> None:
    parse_config(
        {
            "dependencies": ["x"],
            "enable-by-default": False,
            "require-runtime-dependencies": True,
            "require-runtime-features": [],
        },
        PATH,
    )


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"feature": []}, rf"Unknown option `feature` in `{PATH}`; known options: `features`"),
        ({"features": "a:B"}, rf"Option `features` in `{PATH}` must be an array of strings"),
        (
            {"features": ["a:B", 3]},
            rf"Option `features\[1\]` in `{PATH}` must be a string "
            r"\"module:Class\".*not 3",
        ),
        ({"features": ["no_colon"]}, r"Option `features\[0\]`.*not 'no_colon'"),
        ({"features": ["a b:C"]}, r"Option `features\[0\]`"),
        ({"entry-points": "yes"}, rf"Option `entry-points` in `{PATH}` must be a boolean"),
        ({"package": "my-pkg"}, r"Option `package` .* must be the import name of a package"),
        ({"targets": []}, r"Option `targets` .* must be a non-empty array of strings"),
        ({"targets": "native"}, r"Option `targets`"),
        (
            {"enable-native-access": ["__main__"]},
            rf"Option `enable-native-access` in `{PATH}` cannot "
            r"list \"__main__\".*FFM_ENABLE_NATIVE_ACCESS=__main__",
        ),
        (
            {"enable-native-access": ["ALL-UNNAMED"]},
            r"Option `enable-native-access` .* must be an "
            r"array of top-level package names",
        ),
        *(
            (
                {"upcall-pool-size": size},
                rf"Option `upcall-pool-size` in `{PATH}` must be an integer from 1 to 65536 \(how "
                rf"many upcall stubs of one shape can be alive at once; default 256\), not {size!r}",
            )
            for size in (0, 65537, True, "8", 8.0)
        ),
    ],
    ids=lambda x: str(x)[:30],
)
def test_errors_name_option_and_table(config: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_config(config, PATH)


def test_targets() -> None:
    assert resolve_targets(["native"], "x86_64-linux", PATH) == ("x86_64-linux",)
    assert resolve_targets(["native", "x86_64-linux"], "x86_64-linux", PATH) == ("x86_64-linux",)
    with pytest.raises(TargetError, match=r"target 'riscv64-linux' is not supported yet"):
        resolve_targets(["riscv64-linux"], "x86_64-linux", PATH)
    with pytest.raises(
        TargetError,
        match=r"'native' \(the build machine, s390x-linux\) is not "
        r"supported yet",
    ):
        resolve_targets(["native"], "s390x-linux", PATH)


def test_wheel_tag() -> None:
    assert wheel_tag(("x86_64-linux",)) == "cp310-abi3-manylinux_2_17_x86_64.manylinux2014_x86_64"
