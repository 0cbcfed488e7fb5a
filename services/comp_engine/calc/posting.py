"""Posting: what the ledger should hold against what it holds, as new lines. Pure.

The ledger is append-only, so a recalculation never edits a line: per key (and currency)
it posts `expected - already posted` when that is not zero. Recomputing twice or replaying
the whole stream therefore posts nothing the second time, and a changed deal posts exactly
its consequences (its own line, and the later deals of its period whose tiers moved).

A difference whose key's period is closed posts into the first open period after it, as a
prior-period adjustment that keeps the period it was earned in (Xactly's prior-period
processing: a closed period is never reopened). The difference's trace is the expected
line's trace plus a `posting` part (expected, posted before, difference), so it recomputes
like any other line; a key no longer expected is reversed with `no_longer_expected`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from services.comp_engine.calc.lines import Line, LineKey
from shared.periods import parse_period

ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class Posted:
    key: LineKey
    amount: Decimal
    currency: str


@dataclass(frozen=True, slots=True)
class Posting:
    key: LineKey
    amount: Decimal
    currency: str
    posted_period: str
    """`key.period` when it is open, else the first open period after it."""
    trace: dict[str, Any]

    @property
    def prior_period(self) -> bool:
        return self.posted_period != self.key.period


def differences(
    expected: Sequence[Line], posted: Iterable[Posted], *, closed: Collection[str]
) -> list[Posting]:
    want: dict[tuple[LineKey, str], Decimal] = defaultdict(lambda: ZERO)
    last: dict[tuple[LineKey, str], Line] = {}
    several: dict[tuple[LineKey, str], list[Line]] = {}
    for line in expected:
        k = (line.key, line.currency)
        want[k] += line.amount
        if k in last:
            several.setdefault(k, [last[k]]).append(line)
        last[k] = line
    have: dict[tuple[LineKey, str], Decimal] = defaultdict(lambda: ZERO)
    for p in posted:
        have[(p.key, p.currency)] += p.amount
    postings = []
    for key, currency in sorted(set(want) | set(have)):
        difference = want[(key, currency)] - have[(key, currency)]
        if not difference:
            continue
        # Only a difference reads its line's trace: the lines a recompute leaves as they
        # are never build theirs (`traces.py`).
        wanted = last.get((key, currency))
        trace: dict[str, Any] = {
            **(wanted.trace if wanted is not None else {"no_longer_expected": True}),
            **_parts(several.get((key, currency))),
            "posting": {
                "expected": str(want[(key, currency)]),
                "posted_before": str(have[(key, currency)]),
                "difference": str(difference),
            },
        }
        period = first_open(key.period, closed)
        postings.append(Posting(key, difference, currency, period, trace))
    return postings


def _parts(lines: Sequence[Line] | None) -> dict[str, Any]:
    """A key the calculation gives several lines (a booking's commission and, in the same
    period, the reversal of a clawback that reduces attainment): the posting carries each
    line's trace under `parts`, which add up to what the key expects; the trace's other
    members stay the last line's, which the statement reads (attainment after it)."""
    return {} if lines is None else {"parts": [line.trace for line in lines]}


def first_open(label: str, closed: Collection[str]) -> str:
    period = parse_period(label)
    while period.label in closed:
        period = period.next()
    return period.label
