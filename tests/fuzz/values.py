"""Awkward argument values shared by the tests and the fuzzing drivers."""

from __future__ import annotations


class Index:
    """An object that converts to an int through ``__index__``."""

    def __init__(self, value: int) -> None:
        self.value = value

    def __index__(self) -> int:
        return self.value


class BrokenIndex:
    """``__index__`` raises."""

    def __index__(self) -> int:
        raise ZeroDivisionError("broken __index__")


class BrokenFloat:
    """``__float__`` raises."""

    def __float__(self) -> float:
        raise ZeroDivisionError("broken __float__")


class FloatLike:
    """An object that converts to a float through ``__float__``."""

    def __float__(self) -> float:
        return 2.5


class WrongIndex:
    """``__index__`` returns something that is not an int."""

    def __index__(self) -> object:
        return "not an int"  # noqa: PLE0305 - a broken __index__ on purpose
