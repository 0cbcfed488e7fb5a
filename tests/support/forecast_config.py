"""Forecast configuration documents for tests: stages with every field, overridable."""

from __future__ import annotations

from typing import Any


def stage(name: str, order: int, **overrides: Any) -> dict[str, Any]:
    """An open pipeline-category stage at 10 %, unless `overrides` say otherwise."""
    return {
        "name": name,
        "order": order,
        "probability": "10",
        "forecast_category": "pipeline",
        "status": "open",
        "required_fields": [],
        **overrides,
    }
