"""Traces built when first read: a line's trace, or what builds it.

A full recompute produces a million lines and compares them with the ledger; only the
differences are posted with their traces, so building every trace (a few dozen Decimal
strings and dicts per line) was most of the walk's work for nothing. A step, a raw amount
and a line therefore keep what their trace is made of and build it on first read; the
trace is the same dict either way, built by the same code from the same values.

A builder is an object of a slots dataclass that is called to build (one object per
trace, where a closure is two), and not frozen: a frozen dataclass sets each field through
`object.__setattr__`, which made a builder of a step's ten figures cost five times as much
to make, once per credit. Nothing writes to one after it is made.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

Trace = dict[str, Any]
TraceSource = Trace | Callable[[], Trace]
"""A trace, or a function (no arguments) that builds it."""


def built(source: TraceSource) -> Trace:
    return source() if callable(source) else source


class _Traced(Protocol):
    @property
    def source(self) -> TraceSource: ...


def kept(owner: _Traced) -> Trace:
    """`owner`'s trace, built from its `source` on first read and kept in its place (set
    past a frozen dataclass's guard: the trace is what the source stood for)."""
    source = owner.source
    if callable(source):
        source = source()
        object.__setattr__(owner, "source", source)
    return source
