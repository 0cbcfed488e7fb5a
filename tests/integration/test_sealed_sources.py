"""Source secrets sealed at rest in a real PostgreSQL: the table holds no secret in clear,
the service reads them back whole, and a missing or wrong key fails loudly."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from services.pipeline_api import repository
from services.pipeline_api.secret_box import INFO_KEY, SecretBox, SecretBoxError, new_key
from services.pipeline_api.sources import SourceIn
from shared.db import create_engine, create_sessionmaker
from tests.support.infra import query

SECRETS = ("relay-s3cret", "old-s3cret", "api-t0ken", "client-s3cret", "refresh-t0ken")


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database_url, application_name="sealed-test")
    yield engine
    await engine.dispose()


def salesforce_source() -> SourceIn:
    org = "00D" + uuid.uuid4().hex[:12].upper()
    return SourceIn.model_validate(
        {
            "id": f"sf-sealed-{org.lower()}",
            "kind": "salesforce",
            "account_id": org,
            "secrets": {"current": SECRETS[0], "previous": SECRETS[1]},
            "api_base_url": "https://example.my.salesforce.com",
            "api_token": SECRETS[2],
            "oauth": {
                "client_id": "key",
                "client_secret": SECRETS[3],
                "refresh_token": SECRETS[4],
            },
        }
    )


async def test_sealed_at_rest_and_read_back_whole(engine: AsyncEngine, database_url: str) -> None:
    key = new_key()
    sealed = create_sessionmaker(engine, info={INFO_KEY: SecretBox([key])})
    source = salesforce_source()
    async with sealed() as session, session.begin():
        await repository.upsert_source(session, source)
        await repository.store_refresh_token(session, source.id, "rotated-t0ken")
    try:
        await check_sealed(engine, database_url, source, key)
    finally:  # the running service shares this database and has no key
        async with sealed() as session, session.begin():
            await repository.delete_source(session, source.id)


async def check_sealed(engine: AsyncEngine, database_url: str, source: SourceIn, key: str) -> None:
    (row,) = await query(
        database_url,
        "SELECT config::text AS config FROM pipeline.sources WHERE id = :id",
        id=source.id,
    )
    for secret in (*SECRETS, "rotated-t0ken"):
        assert secret not in row.config
    assert row.config.count("sealed:v1:") == 5

    rotated_key = new_key()
    async with create_sessionmaker(engine, info={INFO_KEY: SecretBox([rotated_key, key])})() as s:
        back = await repository.get_source(s, source.id)
    assert back is not None
    assert back.secrets.candidates() == [SECRETS[0], SECRETS[1]]
    assert back.api_token is not None
    assert back.api_token.get_secret_value() == SECRETS[2]
    assert back.oauth is not None
    assert back.oauth.refresh_token is not None
    assert back.oauth.refresh_token.get_secret_value() == "rotated-t0ken"

    for box in (SecretBox(), SecretBox([new_key()])):
        async with create_sessionmaker(engine, info={INFO_KEY: box})() as session:
            with pytest.raises(SecretBoxError):
                await repository.get_source(session, source.id)
