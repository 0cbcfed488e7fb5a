"""The CloudEvents 1.0 envelope every event travels in, from intake to every consumer.

Structured JSON mode only: the whole event, attributes and `data`, is one JSON object, so
the event log can store exactly what was published and republish it byte-for-byte.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from shared.values import UtcDatetime


class CloudEvent(BaseModel):
    """A canonical event. `time` is when the change happened in the CRM, not when we got it.

    `sequence` (an extension attribute) breaks ties between changes with the same `time`;
    CRMs such as Salesforce order changes inside one transaction this way. Other extension
    attributes are kept as they came.
    """

    model_config = ConfigDict(extra="allow", frozen=True)

    specversion: Literal["1.0"]
    id: str = Field(min_length=1, max_length=256)
    source: str = Field(min_length=1, max_length=512)
    type: str = Field(min_length=1, max_length=256)
    subject: str | None = Field(default=None, max_length=256)
    time: UtcDatetime
    datacontenttype: Literal["application/json"] = "application/json"
    data: dict[str, Any]
    sequence: int | None = Field(default=None, ge=0, le=10**30)

    @field_validator("sequence", mode="before")
    @classmethod
    def _sequence_text(cls, value: Any) -> Any:
        """CloudEvents' sequence extension is a string; accept digits in either form."""
        if isinstance(value, str) and value.isdigit():
            return int(value)
        return value
