"""What the intake API answers."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field


class RejectedEvent(BaseModel):
    index: int = Field(description="Position of the event in the request (0-based)")
    id: str | None = Field(None, description="The event's id, when it had one")
    reason: str = Field(description="What was wrong and where, e.g. `data.amount: ...`")


class IntakeResult(BaseModel):
    accepted: int = Field(description="Events newly stored in the event log")
    duplicates: int = Field(description="Events already stored under the same (source, id)")
    rejected: list[RejectedEvent]


class StoredEventOut(BaseModel):
    seq: int
    source: str
    id: str
    type: str
    subject: str
    topic: str
    partition_key: str
    time: datetime
    received_at: datetime
    published: bool
    published_at: datetime | None
    event: dict[str, Any]
