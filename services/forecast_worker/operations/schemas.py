"""What the operations API answers about the worker's dead letters."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict


class DeadLetterOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    topic: str
    partition: int
    offset: int
    event_source: str | None
    event_id: str | None
    reason: str
    payload: str
    created_at: datetime
    replayed_at: datetime | None


class DeadLetterPage(BaseModel):
    items: list[DeadLetterOut]
    next_cursor: str | None
