"""The configuration as the roll-ups read it: stage rules looked up by pipeline and stage.

Pure. Names match without regard to case, as `deals.projection.StageRules` matches won and
lost stage names, because CRMs and people spell the same stage differently. A deal without
a pipeline is read against the default pipeline. A stage the configuration does not know
has no rule: the caller lists such a deal apart rather than guessing its category.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from services.forecast_worker.config.schemas import ForecastConfig
from shared.deal_fields import DealStatus, ForecastCategory


@dataclass(frozen=True)
class StageRule:
    pipeline: str
    stage: str
    order: int
    probability: Decimal
    """Percent, 0 to 100."""
    forecast_category: ForecastCategory
    status: DealStatus
    required_fields: tuple[str, ...]


@dataclass(frozen=True)
class StageTable:
    rules: Mapping[tuple[str, str], StageRule]
    """By (pipeline, stage), both case-folded."""
    default_pipeline: str | None

    @classmethod
    def of(cls, config: ForecastConfig) -> StageTable:
        rules = {
            (pipeline.name.casefold(), stage.name.casefold()): StageRule(
                pipeline=pipeline.name,
                stage=stage.name,
                order=stage.order,
                probability=stage.probability,
                forecast_category=stage.forecast_category,
                status=stage.status,
                required_fields=tuple(stage.required_fields),
            )
            for pipeline in config.pipelines
            for stage in pipeline.stages
        }
        return cls(rules, config.default_pipeline)

    @property
    def configured(self) -> bool:
        """Whether any pipeline is configured: an unconfigured deployment checks no stage."""
        return bool(self.rules)

    def knows_pipeline(self, pipeline: str | None) -> bool:
        """Whether `pipeline` (the default pipeline when None) is configured."""
        name = pipeline or self.default_pipeline
        return name is not None and any(p == name.casefold() for p, _ in self.rules)

    def lookup(self, pipeline: str | None, stage: str | None) -> StageRule | None:
        """The rule for a deal's stage; None when the stage, or its pipeline, is unknown."""
        name = pipeline or self.default_pipeline
        if name is None or stage is None:
            return None
        return self.rules.get((name.casefold(), stage.casefold()))

    def stage_names(self) -> dict[str, str]:
        """Each configured stage's name by its lower-case form, the form the SQL of the
        roll-ups compares: reports that key by stage alone (across pipelines) spell a stage
        as configured, the default pipeline's spelling first."""
        default = (self.default_pipeline or "").casefold()
        ordered = sorted(self.rules.items(), key=lambda item: item[0][0] == default)
        return {rule.stage.lower(): rule.stage for _, rule in ordered}

    def category_of(self, deal: Mapping[str, Any]) -> ForecastCategory | None:
        """The deal's forecast category: its own when it has one (a rep's call on the deal
        overrides the stage's default), else its stage's, else None (unmapped)."""
        explicit: ForecastCategory | None = deal.get("forecast_category")
        if explicit is not None:
            return explicit
        rule = self.lookup(deal.get("pipeline"), deal.get("stage"))
        return None if rule is None else rule.forecast_category
