"""`calc/slots.setters`: fields found by name, every one required."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from services.comp_engine.calc.slots import setters


@dataclass(frozen=True, slots=True)
class _Pair:
    left: str
    right: str


def test_setters_follow_the_names_not_the_class_order() -> None:
    set_right, set_left = setters(_Pair, "right", "left")
    pair = object.__new__(_Pair)
    set_right(pair, "r")
    set_left(pair, "l")
    assert pair == _Pair("l", "r")


@pytest.mark.parametrize("names", [("left",), ("left", "right", "extra"), ("left", "left")])
def test_setters_refuse_anything_but_every_field_once(names: tuple[str, ...]) -> None:
    with pytest.raises(TypeError, match="_Pair has the fields"):
        setters(_Pair, *names)
