"""Commission plans, credits and the ledger: a consumer of the deal and reference streams,
a recalculation that posts what each change means for each rep, and the comp API.

Where a won deal becomes a ledger line: `intake/handler.py` stores it and marks its reps
dirty, `recalc/recalculator.py` computes their lines with `calc/engine.py` and posts the
differences (`calc/posting.py`) into `comp.ledger_lines`."""
