"""What the intake API answers, and what operators see of events the relay set aside."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, Field, model_validator

from shared.tables import MAX_ID


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


class UnpublishableEvent(BaseModel):
    seq: int = Field(description="Position in the event log")
    source: str
    id: str
    type: str
    topic: str
    partition_key: str
    time: datetime
    received_at: datetime
    unpublishable_at: datetime
    error: str = Field(description="Why the broker refused it")
    size: int = Field(description="Bytes of the stored CloudEvent (JSON)")


class UnpublishablePage(BaseModel):
    items: list[UnpublishableEvent]
    next_cursor: str | None


class ReplayUnpublishableIn(BaseModel):
    """Which events: `seqs`, or `all`, said explicitly (an empty body replays nothing)."""

    seqs: list[Annotated[int, Field(ge=1, le=MAX_ID)]] | None = Field(
        None, max_length=1000, description="Which events, by seq"
    )
    all: bool = Field(False, description="Every unpublishable event (instead of `seqs`)")

    @model_validator(mode="after")
    def _one_choice(self) -> ReplayUnpublishableIn:
        if (self.seqs is None) == (not self.all):
            raise ValueError('give either "seqs" or "all": true')
        return self


class ReplayUnpublishableOut(BaseModel):
    replayed: int = Field(description="Events handed back to the relay")
