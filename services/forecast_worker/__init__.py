"""Consumes deal and activity events into the deal projection (current state + history)."""
