"""Pay on cash as ledger lines: earned at booking, payable as the deal's invoices are paid. Pure.

A rule paid on cash (the plan's `payment.timing`, or its component's `payment_timing`) still
earns its lines at booking, so attainment, tiers and statements show the deal where it was
won. Beside them, per deal, rule, booking and credit role:

- a `payable_deferral` line in the booking's period withholds the deal's earned lines of
  that rule there (the negative of their sum);
- per period in which `invoice.paid` events arrived for the deal, a `payable_release` line
  releases `round(E x share after) - round(E x share before)`, where E is the sum withheld
  and the share is the paid amount over the deal's credited amount, capped at 1 (10,000
  sold, 5,000 paid: half is payable, frappe/erpnext#25239), so the releases add up to E
  exactly once the deal is paid in full;
- payments after the booking was clawed back release nothing; a clawback on the original
  rate takes back everything earned, so the unreleased rest is released in the clawback's
  period (rule `<rule>:settled`) and the two net to what the rep keeps.

Amounts are the rounded lines' (payout currency), so the deferral cancels its earned lines
to the cent; `basis_for_draws` gives the same shares over the unrounded plan-currency amounts
for the draw. Every line's trace holds the invoices (ids, amounts, rates), the earned lines
and the shares, and `recompute_deferral` / `recompute_release` redo it from them.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from services.comp_engine.calc.credits import Credit
from services.comp_engine.calc.inputs import Inputs, MissingRate
from services.comp_engine.calc.lines import Kind, Line, LineKey, rounded
from services.comp_engine.calc.segments import Segment, segment_at
from services.comp_engine.plans.document import PlanDocument
from shared.periods import Period, PeriodKind, period_containing

ZERO = Decimal(0)
ONE = Decimal(1)
DEFERRED = frozenset({Kind.COMMISSION, Kind.ACCELERATOR, Kind.SPIFF})
GroupKey = tuple[str, str, str, int, str]
"""(period, rule, deal, booking, role) of the earned lines one deferral withholds."""


def timing_of(document: PlanDocument, rule: str) -> tuple[str, str]:
    """The timing of a rule's lines and where it was set ('component' or 'plan')."""
    for component in document.components:
        if component.id == rule and component.payment_timing is not None:
            return component.payment_timing, "component"
    return document.payment.timing, "plan"


@dataclass(frozen=True, slots=True)
class Release:
    """What one period's paid invoices release of a deal's withheld earnings."""

    period: Period
    index: int | None
    """The rep's segment the release falls in, if any (the draw counts it there)."""
    invoices: tuple[dict[str, str], ...]
    paid_before: Decimal
    """In the deal's currency, before this period."""
    paid_in: Decimal
    """In the deal's currency, by this period's invoices."""
    settled: bool = False
    """A clawback on the original rate settled the deal: the rest is released."""

    def shares(self, deal_amount: Decimal) -> tuple[Decimal, Decimal]:
        return shares(deal_amount, self.paid_before, self.paid_in, self.settled)


def shares(
    deal_amount: Decimal, paid_before: Decimal, paid_now: Decimal, settled: bool
) -> tuple[Decimal, Decimal]:
    """The paid share before and after a release, each within 0..1."""
    if deal_amount <= 0:
        return ZERO, ONE if settled else ZERO
    paid = paid_before + paid_now
    before = min(max(paid_before / deal_amount, ZERO), ONE)
    after = ONE if settled else min(max(paid / deal_amount, ZERO), ONE)
    return before, after


def paid_in(invoices: Iterable[dict[str, str]]) -> Decimal:
    """What invoices paid, in the deal's currency at each payment day's rate."""
    return sum((Decimal(i["amount"]) * Decimal(i["fx_rate_to_deal"]) for i in invoices), ZERO)


class Cash:
    """One rep's on-cash deals: which lines they withhold and when their cash arrived."""

    def __init__(
        self, rep_credits: Sequence[Credit], rep_segments: Sequence[Segment], inputs: Inputs
    ) -> None:
        self.segments = rep_segments
        self.inputs = inputs
        self.missing: list[tuple[str, str]] = []
        """(deal id, reason) of payments that cannot be converted yet: they release nothing."""
        self._releases: dict[tuple[str, int, str], list[Release]] = {}
        self.active = any(
            document.payment.timing == "on_cash"
            or any(c.payment_timing == "on_cash" for c in document.components)
            for document in (s.version.document for s in rep_segments)
        )
        self.credits = (
            {(c.booking.deal_id, c.booking.number, c.role): c for c in rep_credits}
            if self.active
            else {}
        )

    def group(self, key: LineKey) -> tuple[GroupKey, Credit, int, str] | None:
        """The group an earned line is withheld in, its credit, booking segment and where
        the timing was set; `None` for a line payable on booking."""
        if not self.active or key.kind not in DEFERRED or not key.deal_id:
            return None
        credit = self.credits.get((key.deal_id, key.booking, key.role))
        if credit is None:
            return None
        index = segment_at(self.segments, credit.booking.booked_on)
        if index is None or self.segments[index].period.label != key.period:
            return None
        timing, source = timing_of(self.segments[index].version.document, key.rule)
        if timing != "on_cash":
            return None
        group = (key.period, key.rule, key.deal_id, key.booking, key.role)
        return group, credit, index, source

    def releases(self, credit: Credit, index: int) -> list[Release]:
        cache_key = (credit.booking.deal_id, credit.booking.number, credit.role)
        if cache_key not in self._releases:
            self._releases[cache_key] = self._schedule(credit, index)
        return self._releases[cache_key]

    def _schedule(self, credit: Credit, index: int) -> list[Release]:
        booking = credit.booking
        own = self.segments[index]
        kind = PeriodKind(own.version.document.period.value)
        currency = booking.state.currency or own.currency
        ending = booking.ending
        by_period: dict[str, list[dict[str, str]]] = defaultdict(list)
        periods: dict[str, tuple[Period, int | None]] = {}
        for payment in self.inputs.payments_of(booking.deal_id):
            if ending is not None and payment.paid_at > ending.at:
                continue
            try:
                rate = self.inputs.fx.rate(payment.currency, currency, payment.paid_at.date())
            except MissingRate as exc:
                self.missing.append((booking.deal_id, f"invoice {payment.invoice_id}: {exc}"))
                continue
            period, at = self._period_of(max(payment.paid_at.date(), booking.booked_on), kind)
            periods.setdefault(period.label, (period, at))
            by_period[period.label].append(
                {
                    "invoice_id": payment.invoice_id,
                    "paid_at": payment.paid_at.isoformat(),
                    "amount": str(payment.amount),
                    "currency": payment.currency,
                    "fx_rate_to_deal": str(rate),
                }
            )
        found = []
        paid = ZERO
        for label, (period, at) in sorted(periods.items(), key=lambda p: p[1][0].start):
            invoices = tuple(by_period[label])
            now = paid_in(invoices)
            found.append(Release(period, at, invoices, paid, now))
            paid += now
        policy = own.version.document.clawback
        if ending is not None and policy is not None and policy.base == "original_rate":
            period, at = self._period_of(max(ending.at.date(), booking.booked_on), kind)
            found.append(Release(period, at, (), paid, ZERO, settled=True))
        return found

    def _period_of(self, day: date, kind: PeriodKind) -> tuple[Period, int | None]:
        index = segment_at(self.segments, day)
        if index is None:
            return period_containing(day, kind), None
        return self.segments[index].period, index

    def basis_for_draws(
        self, raws_by_segment: Mapping[int, Sequence[Any]]
    ) -> dict[int, tuple[Decimal, Decimal]]:
        """Per segment, (withheld, released) in the plan's currency, unrounded: what the
        draw subtracts from and adds to the segment's earnings when it pays on cash."""
        if not self.active or all(s.version.document.draw is None for s in self.segments):
            return {}
        earned: dict[GroupKey, Decimal] = defaultdict(lambda: ZERO)
        where: dict[GroupKey, tuple[Credit, int]] = {}
        for raws in raws_by_segment.values():
            for raw in raws:
                found = self.group(raw.key)
                if found is not None:
                    earned[found[0]] += raw.amount
                    where[found[0]] = (found[1], found[2])
        basis: dict[int, tuple[Decimal, Decimal]] = defaultdict(lambda: (ZERO, ZERO))
        for group, total in earned.items():
            credit, index = where[group]
            withheld, released = basis[index]
            basis[index] = (withheld + total, released)
            amount = credit.booking.state.amount or ZERO
            for release in self.releases(credit, index):
                if release.index is None:
                    continue
                before, after = release.shares(amount)
                withheld, released = basis[release.index]
                basis[release.index] = (withheld, released + total * (after - before))
        return dict(basis)

    def lines(self, rep_lines: Sequence[Line]) -> list[Line]:
        """The deferral and release lines of the rep's on-cash earned lines."""
        if not self.active:
            return []
        earned: dict[tuple[GroupKey, str], list[Line]] = defaultdict(list)
        where: dict[GroupKey, tuple[Credit, int, str]] = {}
        for line in rep_lines:
            found = self.group(line.key)
            if found is not None:
                earned[(found[0], line.currency)].append(line)
                where[found[0]] = (found[1], found[2], found[3])
        out = []
        for (group, currency), group_lines in sorted(earned.items()):
            credit, index, source = where[group]
            out += self._group_lines(group, currency, group_lines, credit, index, source)
        return out

    def _group_lines(
        self,
        group: GroupKey,
        currency: str,
        group_lines: Sequence[Line],
        credit: Credit,
        index: int,
        source: str,
    ) -> list[Line]:
        period, rule, deal_id, booking, role = group
        rep_id = credit.rep_id
        total = sum((line.amount for line in group_lines), ZERO)
        state = credit.booking.state
        about = {
            "rule": rule,
            "deal_id": deal_id,
            "booking": booking,
            "role": role,
            "earned_period": period,
            "timing_set_by": source,
            "plan": self.segments[index].version.ref(),
        }
        deferral = {
            "cash_deferral": {
                **about,
                "earned_lines": [
                    {"kind": line.key.kind.value, "amount": str(line.amount)}
                    for line in group_lines
                ],
                "withheld": str(total),
            },
            "payout_currency": currency,
        }
        key = LineKey(rep_id, period, Kind.PAYABLE_DEFERRAL, rule, deal_id, booking, role)
        out = [Line(key, -total, currency, deferral)] if total else []
        deal_amount = state.amount or ZERO
        cumulative = ZERO
        for release in self.releases(credit, index):
            before, after = release.shares(deal_amount)
            amount = rounded(total * after, currency) - rounded(total * before, currency)
            cumulative += amount
            in_period = release.paid_in
            trace = {
                "cash_release": {
                    **about,
                    "withheld": str(total),
                    "deal_amount": str(deal_amount),
                    "deal_currency": state.currency,
                    "invoices": list(release.invoices),
                    "paid_before": str(release.paid_before),
                    "paid_in_period": str(in_period),
                    "paid_cumulative": str(release.paid_before + in_period),
                    "share_before": str(before),
                    "share_after": str(after),
                    "settled_by_clawback": release.settled,
                    "released_cumulative": str(cumulative),
                },
                "payout_currency": currency,
            }
            tag = f"{rule}:settled" if release.settled else rule
            key = LineKey(
                rep_id, release.period.label, Kind.PAYABLE_RELEASE, tag, deal_id, booking, role
            )
            if amount:
                out.append(Line(key, amount, currency, trace))
        return out


def recompute_deferral(trace: dict[str, Any]) -> Decimal:
    """Minus the sum of the earned lines it withholds."""
    lines = trace["cash_deferral"]["earned_lines"]
    return -sum((Decimal(line["amount"]) for line in lines), ZERO)


def recompute_release(trace: dict[str, Any]) -> Decimal:
    """`round(withheld x share after) - round(withheld x share before)`, the shares redone
    from the deal's amount, what was paid before and this period's invoices."""
    r = trace["cash_release"]
    before, after = shares(
        Decimal(r["deal_amount"]),
        Decimal(r["paid_before"]),
        paid_in(r["invoices"]),
        r["settled_by_clawback"],
    )
    withheld, currency = Decimal(r["withheld"]), trace["payout_currency"]
    return rounded(withheld * after, currency) - rounded(withheld * before, currency)
