"""Source secrets sealed at rest in a real PostgreSQL: the table holds no secret in clear,
the service reads them back whole, and a missing or wrong key fails loudly."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from services.cli import run_migrations
from services.pipeline_api.sources import repository
from services.pipeline_api.sources.schemas import SourceIn
from services.pipeline_api.sources.secret_box import (
    INFO_KEY,
    SecretBox,
    SecretBoxError,
    new_key,
)
from shared.db import create_engine, create_sessionmaker
from shared.embedded import scratch_database
from tests.support.infra import query

ROOT = Path(__file__).resolve().parents[2]
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
        await repository.upsert_source(session, source=source)
        await repository.store_refresh_token(session, source_id=source.id, token="rotated-t0ken")
    try:
        await check_sealed(engine, database_url, source, key)
    finally:  # the running service shares this database and has no key
        async with sealed() as session, session.begin():
            await repository.delete_source(session, source_id=source.id)


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
        back = await repository.get_source(s, source_id=source.id)
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
                await repository.get_source(session, source_id=source.id)


def run_cli(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "services.cli", *args],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_reseal_moves_every_secret_to_the_first_key(database_url: str) -> None:
    """On a database of its own: the running stack shares the suite's, and has no key."""
    old_key, new = new_key(), new_key()
    sealed_source, clear_source = salesforce_source(), salesforce_source()
    with scratch_database(database_url, prefix="salesops_reseal") as url:
        run_migrations(url)
        asyncio.run(store(url, SecretBox([old_key]), sealed_source))
        asyncio.run(store(url, SecretBox(), clear_source))

        env = {"SALESOPS_DATABASE_URL": url, "SALESOPS_SECRETS_KEYS": f'["{new}", "{old_key}"]'}
        before = run_cli("secrets", "reseal", "--check", **env)
        assert before.returncode == 1, before.stderr
        said = " ".join(before.stderr.split())
        assert "2 sources hold secrets not sealed under the first key" in said
        assert sealed_source.id in said
        assert clear_source.id in said
        with pytest.raises(SecretBoxError, match=f"source '{sealed_source.id}': "):
            asyncio.run(read(url, SecretBox([new]), sealed_source.id))

        done = run_cli("secrets", "reseal", **env)
        assert done.returncode == 0, done.stderr
        assert "re-sealed the secrets of 2 sources" in " ".join(done.stderr.split())
        after = run_cli("secrets", "reseal", "--check", **env)
        assert after.returncode == 0, after.stderr
        assert "0 sources hold secrets not sealed" in " ".join(after.stderr.split())

        for source in (sealed_source, clear_source):
            assert asyncio.run(read(url, SecretBox([new]), source.id)) == SECRETS[0]
            with pytest.raises(SecretBoxError):
                asyncio.run(read(url, SecretBox([old_key]), source.id))

        unkeyed = run_cli(
            "secrets", "reseal", SALESOPS_DATABASE_URL=url, SALESOPS_SECRETS_KEYS="[]"
        )
        assert unkeyed.returncode == 1
        assert "SALESOPS_SECRETS_KEYS is not set" in unkeyed.stderr


async def store(url: str, box: SecretBox, source: SourceIn) -> None:
    engine = create_engine(url, application_name="reseal-test")
    try:
        async with create_sessionmaker(engine, info={INFO_KEY: box})() as s, s.begin():
            await repository.upsert_source(s, source=source)
    finally:
        await engine.dispose()


async def read(url: str, box: SecretBox, source_id: str) -> str:
    engine = create_engine(url, application_name="reseal-test")
    try:
        async with create_sessionmaker(engine, info={INFO_KEY: box})() as session:
            source = await repository.get_source(session, source_id=source_id)
    finally:
        await engine.dispose()
    assert source is not None
    return source.secrets.candidates()[0]


@pytest.mark.parametrize("command", [("secrets", "key"), ("secrets-key",)])
def test_a_new_key_is_printed_by_either_name(command: tuple[str, ...]) -> None:
    done = run_cli(*command)
    assert done.returncode == 0, done.stderr
    SecretBox([done.stdout.strip()])  # a valid Fernet key
