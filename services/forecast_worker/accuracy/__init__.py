"""Forecast accuracy: every snapshot's call and roll-up against what actually closed."""
