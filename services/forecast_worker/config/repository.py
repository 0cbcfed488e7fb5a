"""The forecast configuration's SQL: read the current document, replace it whole, find the
deals a replacement restates."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, insert, select, text, true, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from services.forecast_worker.config.models import ForecastSettings, StageConfig
from services.forecast_worker.config.schemas import ForecastConfig

_SETTINGS_ROW = 1


async def load_config(db: AsyncSession | AsyncConnection) -> ForecastConfig:
    """The stored document, or the empty `ForecastConfig()` when none was ever stored.

    One statement, so that a replacement committing meanwhile is seen whole or not at all.
    """
    rows = (
        await db.execute(
            select(
                ForecastSettings.fiscal_year_start_month,
                ForecastSettings.default_pipeline,
                StageConfig.pipeline,
                StageConfig.stage,
                StageConfig.stage_order,
                StageConfig.probability,
                StageConfig.forecast_category,
                StageConfig.status,
                StageConfig.required_fields,
            )
            .select_from(ForecastSettings)
            .outerjoin(StageConfig, true())
            .order_by(StageConfig.pipeline_position, StageConfig.stage_order)
        )
    ).all()
    if not rows:
        return ForecastConfig()
    pipelines: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        if row.pipeline is not None:
            pipelines.setdefault(row.pipeline, []).append(
                {
                    "name": row.stage,
                    "order": row.stage_order,
                    "probability": row.probability,
                    "forecast_category": row.forecast_category,
                    "status": row.status,
                    "required_fields": row.required_fields,
                }
            )
    return ForecastConfig.model_validate(
        {
            "fiscal_year_start_month": rows[0].fiscal_year_start_month,
            "default_pipeline": rows[0].default_pipeline,
            "pipelines": [{"name": name, "stages": stages} for name, stages in pipelines.items()],
        }
    )


async def held_version(conn: AsyncConnection) -> datetime | None:
    """When the stored document was last replaced (None: never), with the settings row
    share-locked until the caller's transaction ends.

    A replacement updates that row first (`replace_config`), so it waits for the caller to
    commit, and the caller for it: what the caller decides against the version it read
    commits before any replacement, never beside one. Before the first document there is
    no row and nothing is locked: the first document does not wait, and need not, since an
    unconfigured deployment refuses nothing that it could mend."""
    return (
        await conn.execute(
            select(ForecastSettings.updated_at)
            .where(ForecastSettings.id == _SETTINGS_ROW)
            .with_for_update(read=True)
        )
    ).scalar_one_or_none()


@dataclass(frozen=True)
class ReplayState:
    version: datetime | None
    """The stored document's version; None: none was ever stored."""
    replayed_for: datetime | None
    """The version whose dead-letter replay last finished."""

    @property
    def pending(self) -> bool:
        return self.version is not None and self.version != self.replayed_for


async def replay_state(db: AsyncSession | AsyncConnection) -> ReplayState:
    """Whether the dead letters of the stored version were replayed; locks nothing."""
    row = (
        await db.execute(
            select(ForecastSettings.updated_at, ForecastSettings.replayed_for).where(
                ForecastSettings.id == _SETTINGS_ROW
            )
        )
    ).one_or_none()
    return ReplayState(None, None) if row is None else ReplayState(*row)


async def mark_replayed_for(conn: AsyncConnection, *, version: datetime) -> None:
    """Record that the replay for `version` finished; nothing if a newer one is stored."""
    await conn.execute(
        update(ForecastSettings)
        .where(ForecastSettings.id == _SETTINGS_ROW, ForecastSettings.updated_at == version)
        .values(replayed_for=version)
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


@dataclass(frozen=True)
class DealPage:
    last: str | None
    """The page's last deal; None: no deal is left after the one asked from."""
    stale: list[str]
    """The page's deals with a version whose status is not what its place says."""


_STALE_DEALS = text(
    "WITH page AS (SELECT deal_id FROM forecast.deals WHERE deal_id > :after "
    "ORDER BY deal_id LIMIT :size) "
    "SELECT p.deal_id, bool_or(v.status IS DISTINCT FROM CASE "
    "WHEN c.status IS NOT NULL THEN c.status "
    "WHEN lower(v.stage) = ANY(CAST(:won AS text[])) THEN 'won' "
    "WHEN lower(v.stage) = ANY(CAST(:lost AS text[])) THEN 'lost' "
    "ELSE 'open' END) AS stale "
    "FROM page AS p LEFT JOIN forecast.deal_versions AS v USING (deal_id) "
    "LEFT JOIN forecast.forecast_settings AS s ON s.id = 1 "
    "LEFT JOIN forecast.stage_config AS c "
    "ON lower(c.pipeline) = lower(coalesce(nullif(v.pipeline, ''), s.default_pipeline)) "
    "AND lower(c.stage) = lower(v.stage) "
    "GROUP BY p.deal_id ORDER BY p.deal_id"
)


async def stale_deals(
    conn: AsyncConnection, *, after: str, size: int, won: Iterable[str], lost: Iterable[str]
) -> DealPage:
    """The next `size` deals after `after`, and those of them whose history the stored
    configuration restates: a version whose status differs from the one its stage, in its
    pipeline, is configured with (the stage names `won` / `lost`, lower case, for a stage
    the configuration does not know), as `deals.projection.StageRules` decides it.

    A status the deal's events set explicitly differs too, so such a deal is rebuilt to the
    same history: a superset, never a miss, since a status the fold derived always equals
    its version's rule (it is derived whenever the stage or pipeline changes)."""
    rows = (
        await conn.execute(
            _STALE_DEALS, {"after": after, "size": size, "won": list(won), "lost": list(lost)}
        )
    ).all()
    return DealPage(rows[-1].deal_id if rows else None, [r.deal_id for r in rows if r.stale])
