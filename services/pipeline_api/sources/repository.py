"""SQL of sources: connected CRM accounts, their secrets sealed at rest (secret_box.py)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from asyncpg.exceptions import UniqueViolationError
from sqlalchemy import delete, func, select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from services.pipeline_api.models import Source
from services.pipeline_api.sources.schemas import SourceIn, open_values, secret_values
from services.pipeline_api.sources.secret_box import INFO_KEY, SecretBox, SecretBoxError


def _box(session: AsyncSession) -> SecretBox:
    """The session factory's secret box (see secret_box.py); none seals nothing."""
    box = session.info.get(INFO_KEY)
    return box if isinstance(box, SecretBox) else SecretBox()


def _opened(row: Source, unseal: Callable[[str], str]) -> dict[str, Any]:
    """`open_values` of the row, a secret that does not open naming its source."""
    try:
        return open_values(row.config, unseal)
    except SecretBoxError as exc:
        raise SecretBoxError(f"source {row.id!r}: {exc}") from exc


def _source(session: AsyncSession, row: Source) -> SourceIn:
    return SourceIn.model_validate(_opened(row, _box(session).open))


class SourceConflict(Exception):
    """Another source already has this (kind, account_id): one CRM account is one source."""


_ONE_SOURCE_PER_ACCOUNT = "uq_sources_kind_account_id"


def _violated_constraint(exc: IntegrityError) -> str | None:
    """The name of the constraint PostgreSQL reported, as asyncpg parsed it: SQLAlchemy's
    asyncpg adapter wraps asyncpg's error (`orig`) and chains the original (`__cause__`)."""
    cause = exc.orig.__cause__ if exc.orig is not None else None
    return cause.constraint_name if isinstance(cause, UniqueViolationError) else None


async def upsert_source(session: AsyncSession, *, source: SourceIn) -> bool:
    """Create or replace a source; True when it was new. Raises `SourceConflict` when
    another source has the same CRM account."""
    existed = await session.get(Source, source.id) is not None
    values = {
        "id": source.id,
        "kind": source.kind,
        "account_id": source.account_id,
        "config": secret_values(source, _box(session).seal),
    }
    try:
        await session.execute(
            insert(Source)
            .values(**values)
            .on_conflict_do_update(
                index_elements=[Source.id], set_={**values, "updated_at": func.now()}
            )
        )
    except IntegrityError as exc:
        if _violated_constraint(exc) == _ONE_SOURCE_PER_ACCOUNT:
            raise SourceConflict(
                f"another source already has {source.kind} account {source.account_id!r}"
            ) from exc
        raise
    return not existed


async def reseal_sources(session: AsyncSession) -> int:
    """Re-seal every stored secret under the first key (see secret_box.py); the rows are
    locked meanwhile, so a refresh token rotated concurrently is not lost. Returns how
    many sources were re-sealed."""
    box = _box(session)
    rows = (await session.execute(select(Source).with_for_update())).scalars().all()
    for row in rows:
        row.config = _opened(row, box.reseal)
    return len(rows)


async def sources_not_under_first_key(session: AsyncSession) -> list[str]:
    """The sources holding a secret that `reseal_sources` would still change: in clear,
    or sealed under a key other than the first. Until none, no old key may be dropped."""
    box = _box(session)
    rows = (await session.execute(select(Source).order_by(Source.id))).scalars().all()
    return [row.id for row in rows if not all(_secrets_judged(row, box.under_first_key))]


def _secrets_judged(row: Source, judge: Callable[[str], bool]) -> list[bool]:
    judged: list[bool] = []

    def record(value: str) -> str:
        judged.append(judge(value))
        return value

    open_values(row.config, record)
    return judged


async def get_source_for_update(session: AsyncSession, *, source_id: str) -> SourceIn | None:
    """The source, locked until the transaction ends: a PUT keeps stored secrets, and a
    refresh token rotated meanwhile must not be overwritten by the one it read."""
    row = await session.get(Source, source_id, with_for_update=True, populate_existing=True)
    return _source(session, row) if row is not None else None


async def get_source(session: AsyncSession, *, source_id: str) -> SourceIn | None:
    row = await session.get(Source, source_id)
    return _source(session, row) if row else None


async def list_sources(session: AsyncSession) -> list[SourceIn]:
    rows = (await session.execute(select(Source).order_by(Source.id))).scalars().all()
    return [_source(session, r) for r in rows]


async def delete_source(session: AsyncSession, *, source_id: str) -> bool:
    result = await session.execute(delete(Source).where(Source.id == source_id))
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def sources_of_kind(session: AsyncSession, *, kind: str) -> list[SourceIn]:
    rows = await session.execute(select(Source).where(Source.kind == kind))
    return [_source(session, r) for r in rows.scalars().all()]


async def store_refresh_token(session: AsyncSession, *, source_id: str, token: str) -> None:
    """Keep a rotated Salesforce refresh token: the one it replaced no longer works."""
    await session.execute(
        text(
            "UPDATE pipeline.sources SET updated_at = now(), config = jsonb_set("
            "config, '{oauth,refresh_token}', to_jsonb(CAST(:token AS text))) "
            "WHERE id = :id AND jsonb_typeof(config->'oauth') = 'object'"
        ),
        {"id": source_id, "token": _box(session).seal(token)},
    )
