"""Building a frozen slotted dataclass without its `__init__`, where a chunk builds tens of
thousands (deal states, line keys, lines): set through the class's slot descriptors, one
takes half to two thirds of the time of the frozen `__init__`, which looks up
`object.__setattr__` per field."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any


def setters(cls: type, *names: str) -> tuple[Callable[[Any, Any], None], ...]:
    """The slot setters of `cls`'s fields, in the order `names` gives. Every field must be
    named, once: adding a field to the class fails at import rather than leaving it unset,
    and reordering the class's fields changes nothing (they are found by name)."""
    fields = [f.name for f in dataclasses.fields(cls)]
    if sorted(names) != sorted(fields):
        raise TypeError(f"{cls.__name__} has the fields {fields}, not {list(names)}")
    return tuple(vars(cls)[name].__set__ for name in names)
