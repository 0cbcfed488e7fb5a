"""A statement as a printable HTML page: every value escaped, no script, no external asset."""

from __future__ import annotations

from html import escape

from services.comp_engine.statements.explain import money
from services.comp_engine.statements.report import TOTALS
from services.comp_engine.statements.schemas import StatementOut

COLUMNS = tuple(t for t in TOTALS if t != "paid_for_earlier")
"""The page's columns: `paid` already shows what was paid for earlier periods."""


def page(s: StatementOut) -> str:
    rows = "".join(
        f"<tr><td>{escape(line.kind)}</td><td>{escape(line.deal_id)}</td>"
        f"<td>{escape(line.earned_in)}</td><td class=n>{escape(money(line.amount))}</td>"
        f"<td>{escape(line.currency)}</td><td>{'held' if line.held else ''}</td>"
        f"<td>{escape(line.explanation)}</td></tr>"
        for line in s.lines
    )
    totals = "".join(
        f"<tr><td>{escape(currency)}</td>"
        + "".join(f"<td class=n>{escape(money(getattr(t, k)))}</td>" for k in COLUMNS)
        + "</tr>"
        for currency, t in s.totals.items()
    )
    words = "".join(
        f"<li>{escape(currency)} {escape(name.replace('_', ' '))}: {escape(sentence)}</li>"
        for currency, t in s.totals.items()
        for name, sentence in t.explained.items()
    )
    heads = "".join(f"<th>{escape(k.replace('_', ' '))}</th>" for k in COLUMNS)
    attainment = ", ".join(f"{escape(k)} {escape(v)}%" for k, v in s.attainment.items())
    state = "closed (final)" if s.closed else "open (may still change)"
    return (
        "<!doctype html><html><head><meta charset=utf-8>"
        f"<title>Statement {escape(s.rep_id)} {escape(s.period)}</title>"
        "<style>body{font:14px sans-serif;margin:2em}table{border-collapse:collapse}"
        "td,th{border:1px solid #999;padding:4px 8px;vertical-align:top}.n{text-align:right}"
        "</style></head><body>"
        f"<h1>Commission statement</h1><p>Rep <b>{escape(s.rep_id)}</b>, period "
        f"<b>{escape(s.period)}</b>, {state}.</p>"
        f"<p>Attainment: {attainment or 'n/a'}. Draw balance: {escape(s.draw_balance or '0')}.</p>"
        f"<table><tr><th>currency</th>{heads}</tr>{totals}</table><ul>{words}</ul><h2>Lines</h2>"
        "<table><tr><th>kind</th><th>deal</th><th>earned in</th><th>amount</th><th>currency</th>"
        f"<th></th><th>how</th></tr>{rows}</table></body></html>"
    )
