"""The forecast worker's published API keeps its operations where clients found them."""

from __future__ import annotations

from services.forecast_worker.app import create_app


def test_the_dead_letter_operations_are_tagged_deals_and_operations() -> None:
    paths = create_app().openapi()["paths"]
    assert paths["/v1/forecast/dead-letters"]["get"]["tags"] == ["deals", "operations"]
    replay = paths["/v1/forecast/dead-letters/{letter_id}/replay"]["post"]
    assert replay["tags"] == ["deals", "operations"]
