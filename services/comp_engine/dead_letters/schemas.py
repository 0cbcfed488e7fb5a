"""The comp engine's dead letters as the API serves them, with stable CSV columns."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

CSV_COLUMNS = ("id", "rep_id", "subject", "reason", "since")


class CompDeadLetterOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    rep_id: str = Field(description="The rep whose ledger waits")
    subject: str = Field(description="What waits: a deal id, or `period:<label>`, ...")
    reason: str
    since: datetime = Field(description="Since when it has waited")


class CompDeadLetterPage(BaseModel):
    items: list[CompDeadLetterOut]
    next_cursor: str | None


class CompReplayOut(BaseModel):
    letter: CompDeadLetterOut
    recalculation: str = Field(
        description="'queued': the rep is marked for recalculation, which posts the lines "
        "and ends the wait if what was missing has arrived, else lists it again"
    )
