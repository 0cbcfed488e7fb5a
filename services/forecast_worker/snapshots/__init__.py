"""Snapshots: the roll-up frozen at an instant (weekly, at period end, on demand, backfilled)
and the trend across them.

A snapshot is computed with the `as_of` roll-up (`rollup/compute.py`) at its instant, for
all four groupings, and stored per group, never per deal: at 1,000,000 deals a snapshot is
four aggregate statements (plus the calls and adjustments) and about as many rows as there
are reps, teams, managers and regions, so a quarter of weekly snapshots is a few thousand
rows per currency, and a trend reads only those.
"""
