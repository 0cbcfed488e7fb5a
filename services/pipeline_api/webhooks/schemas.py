"""What the webhook endpoints, the webhook archive and the parked-change (intake DLQ)
endpoints take and answer."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from annotated_types import Interval
from pydantic import BaseModel, Field, model_validator

from services.pipeline_api.webhooks.ingest import IngestOutcome
from shared.values import INT64_MAX, Id64


class WebhookResult(BaseModel):
    accepted: int
    duplicates: int
    parked: int
    unsupported: int
    ignored: int = Field(
        0, description="Items acknowledged that change nothing we keep (noted on the archive)"
    )
    resync_jobs: list[int]

    @classmethod
    def of(cls, outcomes: list[IngestOutcome]) -> WebhookResult:
        return cls(
            accepted=sum(o.accepted for o in outcomes),
            duplicates=sum(o.duplicates for o in outcomes),
            parked=sum(o.parked for o in outcomes),
            unsupported=sum(o.unsupported for o in outcomes),
            ignored=sum(o.ignored for o in outcomes),
            resync_jobs=[j for o in outcomes for j in o.resync_jobs],
        )


class ArchivedRequest(BaseModel):
    id: int
    source_id: str | None
    kind: str
    received_at: datetime
    headers: dict[str, Any]
    size: int = Field(description="Bytes in the body")
    ignored: list[str] | None = Field(
        None, description="Why items of the body were acknowledged but neither stored nor parked"
    )


class ArchivedRequestPage(BaseModel):
    items: list[ArchivedRequest]
    next_cursor: str | None


class ArchivedRequestWithBody(ArchivedRequest):
    body: str
    body_encoding: Literal["utf-8", "base64"]


class ReplayRequestsIn(BaseModel):
    ids: list[Id64] | None = Field(None, max_length=1000, description="Archived request ids")
    source_id: str | None = Field(None, description="Or: a source's requests, oldest first")
    after_id: Annotated[int, Interval(ge=0, le=INT64_MAX)] | None = Field(
        None, description="With source_id: start after this id"
    )
    limit: int = Field(100, ge=1, le=1000, description="With source_id: at most this many")

    @model_validator(mode="after")
    def _one_selection(self) -> ReplayRequestsIn:
        if (self.ids is None) == (self.source_id is None):
            raise ValueError("name the requests by ids, or a source by source_id (not both)")
        return self


class ReplayFailure(BaseModel):
    id: int
    reason: str


class ReplayRequestsOut(WebhookResult):
    """What the replayed requests produced, counted as their webhook answers count it."""

    requests: int
    failed: list[ReplayFailure]
    next_after_id: int | None = Field(
        description="With source_id: pass as after_id for the next page; null at the end"
    )


class ParkedOut(BaseModel):
    id: int
    source_id: str
    request_id: int | None
    reason: str
    replayable: bool
    change: dict[str, Any]
    created_at: datetime
    replayed_at: datetime | None


class ParkedPage(BaseModel):
    items: list[ParkedOut]
    next_cursor: str | None


class ReplayIn(BaseModel):
    source_id: str | None = None
    ids: list[Id64] | None = None


class ReplayOut(BaseModel):
    replayed: int = Field(description="Stored in the event log, or queued as a re-sync job.")
    still_parked: int
    duplicates: int
    settled: int = Field(
        description="Left the DLQ with nothing to store: they change nothing kept today."
    )
