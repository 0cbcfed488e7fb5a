"""Forecast calls (a rep's own numbers) and adjustments (a manager's overrides): append-only."""
