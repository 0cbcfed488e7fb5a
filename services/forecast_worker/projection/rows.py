"""The projection's rows from what the queries summed. Pure.

Rates are kept per (stage, due): an open deal due in the period, overdue, due later or
undated converts differently, and the Maven sample's open deals have no close date at all.
Each group learns from its own past periods; where it had no pipeline in a (stage, due)
in any of them, the company's rate in that currency is used and the rate says so. A
(stage, due) nobody ever had is `unprojected`. The company row learns from everyone's
history pooled (so it is not the sum of the group rows' projections).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Literal

from services.forecast_worker.projection.model import (
    CENT,
    ZERO,
    History,
    PastPeriod,
    learn,
    project,
    with_fallback,
)
from services.forecast_worker.projection.repository import (
    CohortRow,
    Due,
    NewWonRow,
    PipelineRow,
)
from services.forecast_worker.projection.schemas import ProjectionRow, RateOut, RateSource
from services.forecast_worker.rollup.figures import figures
from services.forecast_worker.rollup.grouping import GroupKey, row_order
from services.forecast_worker.rollup.repository import GroupRow

Cohort = tuple[str | None, Due]
_DUE_ORDER: dict[str, int] = {"in_period": 0, "overdue": 1, "later": 2, "undated": 3}


def _money() -> defaultdict[Cohort, Decimal]:
    return defaultdict(lambda: ZERO)


@dataclass
class _Books:
    """Everything summed for one group (or the company) in one currency."""

    opened: defaultdict[int, defaultdict[Cohort, Decimal]] = field(
        default_factory=lambda: defaultdict(_money)
    )
    won: defaultdict[int, defaultdict[Cohort, Decimal]] = field(
        default_factory=lambda: defaultdict(_money)
    )
    new: defaultdict[int, Decimal] = field(default_factory=lambda: defaultdict(lambda: ZERO))
    now: defaultdict[Cohort, Decimal] = field(default_factory=_money)
    closed_won: Decimal = ZERO
    bottom_up_commit: Decimal = ZERO
    bottom_up_best_case: Decimal = ZERO

    def history(self, periods: Sequence[int]) -> History[Cohort]:
        return learn(PastPeriod(self.opened[i], self.won[i], self.new[i]) for i in periods)


def _rates(
    books: _Books, history: History[Cohort], own: History[Cohort], fallback: History[Cohort]
) -> list[RateOut]:
    out = []
    for stage, due in sorted(books.now, key=lambda c: (c[0] or "", _DUE_ORDER[c[1]])):
        amount = books.now[(stage, due)]
        rate = history.rates.get((stage, due))
        source: RateSource | None = None
        if (stage, due) in own.rates:
            source = "own"
        elif (stage, due) in fallback.rates:
            source = "company"
        out.append(
            RateOut(
                stage=stage,
                due=due,
                open_amount=amount,
                rate=rate,
                rate_source=source,
                projected=None if rate is None else (amount * rate).quantize(CENT),
            )
        )
    return out


def _row(
    scope: Literal["group", "company"],
    key: GroupKey,
    books: _Books,
    own: History[Cohort],
    fallback: History[Cohort],
) -> ProjectionRow:
    history = with_fallback(own, fallback)
    result = project(
        closed_won=books.closed_won,
        open_by_stage=books.now,
        history=history,
        bottom_up=books.bottom_up_commit,
    )
    return ProjectionRow(
        scope=scope,
        group=key[0],
        currency=key[1],
        closed_won=result.closed_won,
        from_pipeline=result.from_pipeline,
        expected_new=result.expected_new,
        unprojected=result.unprojected,
        projected=result.projected,
        bottom_up_commit=books.bottom_up_commit,
        bottom_up_best_case=books.bottom_up_best_case,
        gap=result.projected - books.bottom_up_commit,
        gap_best_case=result.projected - books.bottom_up_best_case,
        open_pipeline=sum(books.now.values(), ZERO),
        rates=_rates(books, history, own, fallback),
    )


def stage_spelling(
    spellings: Sequence[str | None], configured: Mapping[str, str]
) -> dict[str | None, str | None]:
    """One name per stage whatever its letter case, since stage names match without regard
    to case (a CRM's `engaging` is the configuration's `Engaging`): the configured name
    (`configured`, by lower-case form), else the first of the spellings seen in code-point
    order, so the answer does not depend on the order of the rows."""
    seen: dict[str, str] = {}
    for name in sorted(s for s in spellings if s is not None):
        seen.setdefault(name.lower(), name)
    out: dict[str | None, str | None] = {None: None}
    for spelled in spellings:
        if spelled is not None:
            lower = spelled.lower()
            out[spelled] = configured.get(lower, seen[lower])
    return out


def projection_rows(
    *,
    periods: Sequence[int],
    cohorts: Sequence[CohortRow],
    new_won: Sequence[NewWonRow],
    pipeline: Sequence[PipelineRow],
    sums: Sequence[GroupRow],
    stage_names: Mapping[str, str] | None = None,
) -> list[ProjectionRow]:
    """One row per (group, currency) seen in any of the inputs, then one company row per
    currency; `periods` are the indices of the past periods learnt from. A stage's cohorts
    meet however its name is cased (`stage_spelling`, with the configured `stage_names`)."""
    name = stage_spelling(
        [*(c.stage for c in cohorts), *(p.stage for p in pipeline)], stage_names or {}
    )
    groups: defaultdict[GroupKey, _Books] = defaultdict(_Books)
    company: defaultdict[str | None, _Books] = defaultdict(_Books)
    for c in cohorts:
        for books in (groups[(c.group, c.currency)], company[c.currency]):
            books.opened[c.index][(name[c.stage], c.due)] += c.open_amount
            books.won[c.index][(name[c.stage], c.due)] += c.won_amount
    for n in new_won:
        for books in (groups[(n.group, n.currency)], company[n.currency]):
            books.new[n.index] += n.amount
    for p in pipeline:
        for books in (groups[(p.group, p.currency)], company[p.currency]):
            books.now[(name[p.stage], p.due)] += p.amount
    for s in sums:
        numbers = figures(s.sums)
        for books in (groups[(s.group, s.currency)], company[s.currency]):
            books.closed_won += numbers.closed_won
            books.bottom_up_commit += numbers.commit_plus_closed
            books.bottom_up_best_case += numbers.best_case_plus_commit_plus_closed
    pooled = {currency: books.history(periods) for currency, books in company.items()}
    rows = [
        _row("group", key, groups[key], groups[key].history(periods), pooled[key[1]])
        for key in sorted(groups, key=row_order)
    ]
    nothing: History[Cohort] = learn([])
    rows += [
        _row("company", (None, currency), company[currency], pooled[currency], nothing)
        for currency in sorted(company, key=lambda c: (c is None, c or ""))
    ]
    return rows
