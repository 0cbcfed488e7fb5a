"""Traces built when first read: a line's trace, or what builds it.

A full recompute produces a million lines and compares them with the ledger; only the
differences are posted with their traces, so building every trace (a few dozen Decimal
strings and dicts per line) was most of the walk's work for nothing. A step, a raw amount
and a line therefore keep what their trace is made of and build it on first read; the
trace is the same dict either way, built by the same code from the same values.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Trace = dict[str, Any]
TraceSource = Trace | Callable[[], Trace]
"""A trace, or a function (no arguments) that builds it."""


def built(source: TraceSource) -> Trace:
    return source() if callable(source) else source
