"""The forecast configuration's SQL: read the current document, replace it whole."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, func, insert, select, true
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.forecast_worker.config.models import ForecastSettings, StageConfig
from services.forecast_worker.config.schemas import ForecastConfig

_SETTINGS_ROW = 1


async def load_config(session: AsyncSession) -> ForecastConfig:
    """The stored document, or the empty `ForecastConfig()` when none was ever stored.

    One statement, so that a replacement committing meanwhile is seen whole or not at all.
    """
    rows = (
        await session.execute(
            select(ForecastSettings, StageConfig)
            .outerjoin(StageConfig, true())
            .order_by(StageConfig.pipeline_position, StageConfig.stage_order)
        )
    ).all()
    if not rows:
        return ForecastConfig()
    settings = rows[0][0]
    pipelines: dict[str, list[dict[str, Any]]] = {}
    for _, stage in rows:
        if stage is not None:
            pipelines.setdefault(stage.pipeline, []).append(
                {
                    "name": stage.stage,
                    "order": stage.stage_order,
                    "probability": stage.probability,
                    "forecast_category": stage.forecast_category,
                    "status": stage.status,
                    "required_fields": stage.required_fields,
                }
            )
    return ForecastConfig.model_validate(
        {
            "fiscal_year_start_month": settings.fiscal_year_start_month,
            "default_pipeline": settings.default_pipeline,
            "pipelines": [{"name": name, "stages": stages} for name, stages in pipelines.items()],
        }
    )


async def replace_config(session: AsyncSession, *, config: ForecastConfig) -> ForecastConfig:
    """Store `config` in place of the current document, in the caller's transaction, and
    answer it as stored.

    The settings row is written first: its row lock makes a concurrent replacement wait
    until this one commits, so two replacements never interleave their stage rows.
    """
    values = {
        "fiscal_year_start_month": config.fiscal_year_start_month,
        "default_pipeline": config.default_pipeline,
    }
    await session.execute(
        pg_insert(ForecastSettings)
        .values(id=_SETTINGS_ROW, **values)
        .on_conflict_do_update(index_elements=["id"], set_={**values, "updated_at": func.now()})
    )
    await session.execute(delete(StageConfig))
    stages = [
        {
            "pipeline": pipeline.name,
            "stage": stage.name,
            "pipeline_position": position,
            "stage_order": stage.order,
            "probability": stage.probability,
            "forecast_category": stage.forecast_category,
            "status": stage.status,
            "required_fields": stage.required_fields,
        }
        for position, pipeline in enumerate(config.pipelines)
        for stage in pipeline.stages
    ]
    if stages:
        await session.execute(insert(StageConfig), stages)
    return await load_config(session)
