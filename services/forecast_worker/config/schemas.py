"""The forecast configuration document, as the API and the YAML file carry it.

Validation names where a document is wrong: the 422 lists each error with its location
(`pipelines.0.stages.2`), and the message says what is wrong there. Stage and pipeline
names are matched without regard to case (deals' stage names come from several CRMs), so
two names that differ only in case are the same name.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from shared.deal_fields import FIELD_NAMES, DealStatus, ForecastCategory

PROPERTY_PREFIX = "properties."
CLOSED_CATEGORIES: frozenset[ForecastCategory] = frozenset({"closed", "omitted"})


def _known_field(name: str) -> str:
    if name in FIELD_NAMES or (
        name.startswith(PROPERTY_PREFIX) and len(name) > len(PROPERTY_PREFIX)
    ):
        return name
    raise ValueError(
        f"{name!r} is not a deal field: expected one of {', '.join(FIELD_NAMES)}, "
        f"or {PROPERTY_PREFIX}<key> for a CRM property"
    )


RequiredField = Annotated[str, AfterValidator(_known_field)]
Name = Annotated[str, Field(min_length=1, max_length=200)]


class StageConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name
    order: Annotated[
        int, Field(ge=0, le=2**31 - 1, description="Position in the pipeline, unique in it")
    ]
    probability: Annotated[
        Decimal, Field(ge=0, le=100, decimal_places=4, description="Percent, 0 to 100")
    ]
    forecast_category: ForecastCategory
    status: DealStatus
    required_fields: list[RequiredField] = Field(
        default_factory=list,
        description="The exit criteria: deal fields, or properties.<key>, a deal in this "
        "stage should have",
    )

    @model_validator(mode="after")
    def _closed_stages_are_not_forecast(self) -> StageConfig:
        if self.status != "open" and self.forecast_category not in CLOSED_CATEGORIES:
            raise ValueError(
                f"stage {self.name!r} is {self.status}, so its forecast_category must be "
                f"closed or omitted, not {self.forecast_category!r}"
            )
        return self


class PipelineConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name
    stages: Annotated[list[StageConfig], Field(min_length=1, description="Answered in their order")]

    @field_validator("stages")
    @classmethod
    def _stages_are_distinct(cls, stages: list[StageConfig]) -> list[StageConfig]:
        _refuse_repeats("stage name", [s.name for s in stages], str.casefold)
        _refuse_repeats("stage order", [s.order for s in stages], int)
        return sorted(stages, key=lambda s: s.order)


class ForecastConfig(BaseModel):
    """Empty (no pipelines, fiscal year from January) until one is stored: every deal's
    stage is then unknown to the roll-ups, which list such deals apart."""

    model_config = ConfigDict(extra="forbid")

    fiscal_year_start_month: Annotated[
        int, Field(ge=1, le=12, description="1 = January; FY2026 ends in calendar 2026")
    ] = 1
    pipelines: list[PipelineConfig] = Field(default_factory=list)
    default_pipeline: Name | None = Field(
        default=None,
        validate_default=True,
        description="The pipeline a deal without one is read against; the first when omitted",
    )

    @field_validator("pipelines")
    @classmethod
    def _pipelines_are_distinct(cls, pipelines: list[PipelineConfig]) -> list[PipelineConfig]:
        _refuse_repeats("pipeline name", [p.name for p in pipelines], str.casefold)
        return pipelines

    @field_validator("default_pipeline")
    @classmethod
    def _default_is_a_pipeline(cls, name: str | None, info: ValidationInfo) -> str | None:
        pipelines: list[PipelineConfig] | None = info.data.get("pipelines")
        if pipelines is None:  # refused already, with its own error
            return name
        names = [p.name for p in pipelines]
        if name is None:
            return names[0] if names else None
        if name.casefold() not in {n.casefold() for n in names}:
            raise ValueError(
                f"{name!r} is not one of the pipelines ({', '.join(map(repr, names)) or 'none'})"
            )
        return name


def _refuse_repeats(what: str, values: Sequence[object], key: Callable[[Any], object]) -> None:
    """A ValueError naming the first repeated value and every position it is at (from 0,
    as in the error's location)."""
    counted = Counter(key(v) for v in values)
    for value in values:
        if counted[key(value)] > 1:
            at = [str(i) for i, v in enumerate(values) if key(v) == key(value)]
            raise ValueError(f"{what} {value!r} is repeated, at positions {' and '.join(at)}")


class ReplayStatus(BaseModel):
    """Where the replay of the dead letters a stored configuration may mend stands."""

    version: datetime | None = Field(
        description="When the configuration was last stored; null: never"
    )
    replayed_for: datetime | None = Field(
        description="The version whose dead-letter replay last finished"
    )
    pending: bool = Field(description="Whether the letters of `version` still wait for it")
