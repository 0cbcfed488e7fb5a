"""`salesops`: the composition root, the only module that imports every service.

`dev` runs the whole stack in one process on one base URL, starting embedded PostgreSQL and
Tansu for whatever is not configured (and restarting that broker whenever it exits or the
relay finds it wedged); `serve` runs one service as a production process;
`migrate` brings the database schema to the latest revision.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import warnings
from collections.abc import Awaitable, Callable
from enum import StrEnum
from pathlib import Path
from typing import Annotated, TypeVar

import typer
import uvicorn
import yaml
from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse
from rich.console import Console
from rich.table import Table
from sqlalchemy.ext.asyncio import AsyncSession

from services.comp_engine.app import SPEC as COMP_ENGINE
from services.forecast_worker.app import SPEC as FORECAST_WORKER
from services.pipeline_api.app import SPEC as PIPELINE_API
from services.pipeline_api.crm.outbound import OutboundPolicy, OutboundRefused
from services.pipeline_api.repository import (
    reseal_sources,
    sources_not_under_first_key,
    upsert_source,
)
from services.pipeline_api.sources.schemas import SourceIn, load_yaml
from services.pipeline_api.sources.secret_box import (
    INFO_KEY,
    SecretBoxError,
    new_key,
    secret_box,
)
from shared.db import create_engine, create_sessionmaker
from shared.embedded import BrokerSupervisor, EmbeddedBroker, embedded_postgres, port_open
from shared.logging import configure_logging
from shared.service import ServiceSpec, build_app
from shared.settings import Settings

T = TypeVar("T")
SERVICES: dict[str, ServiceSpec] = {s.name: s for s in (PIPELINE_API, FORECAST_WORKER, COMP_ENGINE)}
PROJECT_ROOT = Path(__file__).resolve().parents[1]

app = typer.Typer(
    help="Revenue-operations backend: pipeline, forecast and commissions.", no_args_is_help=True
)
console = Console(stderr=True)


class ServiceName(StrEnum):
    pipeline_api = "pipeline_api"
    forecast_worker = "forecast_worker"
    comp_engine = "comp_engine"


def run_migrations(database_url: str) -> None:
    """Upgrade the schema to head (Alembic runs its own event loop, so call this outside one)."""
    from alembic import command
    from alembic.config import Config

    config = Config(str(PROJECT_ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(PROJECT_ROOT / "migrations"))
    config.attributes["url"] = database_url
    command.upgrade(config, "head")


def compose_all(settings: Settings) -> FastAPI:
    """Every service on one app, plus each service's own OpenAPI under /services/<name>/."""
    combined = build_app(settings, list(SERVICES.values()), title="salesops (all services)")
    for spec in SERVICES.values():
        _mount_service_docs(combined, settings, spec)
    return combined


def _mount_service_docs(combined: FastAPI, settings: Settings, spec: ServiceSpec) -> None:
    standalone = build_app(settings, [spec], title=spec.title)
    base = f"/services/{spec.name}"

    async def openapi() -> JSONResponse:
        return JSONResponse(standalone.openapi())

    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url=f"{base}/openapi.json", title=spec.title)

    combined.add_api_route(f"{base}/openapi.json", openapi, include_in_schema=False)
    combined.add_api_route(f"{base}/docs", docs, include_in_schema=False)


def _dev_api_key(settings: Settings, data_dir: Path) -> str:
    if settings.dev_api_key is not None:
        return settings.dev_api_key.get_secret_value()
    key_file = data_dir / "dev-api-key"
    if key_file.exists():
        return key_file.read_text().strip()
    key = "dev_" + secrets.token_urlsafe(24)
    key_file.write_text(key + "\n")
    key_file.chmod(0o600)
    return key


def _banner(base: str, key: str, settings: Settings, key_file: Path) -> None:
    table = Table(title="salesops dev stack", show_header=False)
    table.add_row("API (all services)", base)
    table.add_row("OpenAPI / docs", f"{base}/openapi.json  {base}/docs")
    for name in SERVICES:
        table.add_row(f"  {name}", f"{base}/services/{name}/docs")
    table.add_row("health", f"{base}/healthz  {base}/readyz  {base}/metrics")
    table.add_row("admin API key", f"{key}  (also in {key_file})")
    table.add_row("database", str(settings.database_url).split("?")[0])
    table.add_row("broker", str(settings.kafka_bootstrap_servers))
    console.print(table)
    console.print("Ctrl-C stops everything; data stays in the data folder for the next run.")


@app.command()
def dev(
    host: Annotated[str, typer.Option(help="Interface to serve on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port of the single base URL")] = 8000,
    data_dir: Annotated[Path | None, typer.Option(help="Where embedded data lives")] = None,
) -> None:
    """Run the whole stack on embedded defaults under one base URL."""
    warnings.filterwarnings("ignore", module="platformdirs")
    if port_open(host if host != "0.0.0.0" else "127.0.0.1", port):
        console.print(
            f"[red]Port {port} is already in use.[/red] Stop what holds it or pass --port."
        )
        raise typer.Exit(code=1)
    settings = Settings()
    data = (data_dir or settings.data_dir).resolve()
    data.mkdir(parents=True, exist_ok=True)
    configure_logging(settings.log_level, json=False)
    with contextlib.ExitStack() as stack:
        if not settings.database_url:
            console.print(f"Starting embedded PostgreSQL in {data / 'postgres'} ...")
            url = stack.enter_context(embedded_postgres(data / "postgres"))
            settings = settings.model_copy(update={"database_url": url})
        if not settings.kafka_bootstrap_servers:
            broker = EmbeddedBroker(
                9092 if not port_open("127.0.0.1", 9092) else None, log_path=data / "tansu.log"
            )
            console.print(f"Starting the embedded Tansu broker on {broker.bootstrap} ...")
            supervisor = BrokerSupervisor(broker, restart_file=data / "tansu.restart")
            supervisor.start()
            stack.callback(supervisor.stop)
            settings = settings.model_copy(
                update={
                    "kafka_bootstrap_servers": broker.bootstrap,
                    "embedded_broker_restart_file": data / "tansu.restart",
                }
            )
        console.print("Migrating the database ...")
        run_migrations(settings.require_database_url())
        key = _dev_api_key(settings, data)
        settings = settings.model_copy(update={"api_keys": {**settings.api_keys, key: ["admin"]}})
        _banner(f"http://{host}:{port}", key, settings, data / "dev-api-key")
        uvicorn.run(compose_all(settings), host=host, port=port, log_config=None, access_log=False)


@app.command()
def serve(
    service: Annotated[ServiceName, typer.Argument(help="Which service to run")],
    host: Annotated[str, typer.Option()] = "0.0.0.0",
    port: Annotated[int, typer.Option()] = 8000,
) -> None:
    """Run one service (its API and background work) as a production process."""
    settings = Settings()
    configure_logging(settings.log_level, json=settings.log_json)
    spec = SERVICES[service.value]
    uvicorn.run(
        build_app(settings, [spec], title=spec.title),
        host=host,
        port=port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=10,
    )


@app.command()
def migrate() -> None:
    """Upgrade the database (SALESOPS_DATABASE_URL) to the latest schema."""
    settings = Settings()
    configure_logging(settings.log_level, json=settings.log_json)
    run_migrations(settings.require_database_url())
    logging.getLogger("salesops").info("database migrated to head")


sources_app = typer.Typer(help="Connected CRM accounts.", no_args_is_help=True)
app.add_typer(sources_app, name="sources")


@sources_app.command("load")
def load_sources(
    path: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="YAML with sources:")],
) -> None:
    """Create or replace the sources a YAML file declares (see deploy/sources.example.yaml)."""
    settings = Settings()
    configure_logging(settings.log_level, json=False)
    policy = OutboundPolicy.of(settings)

    async def verify(sources: list[SourceIn]) -> None:
        for source in sources:  # as PUT /v1/sources does, DNS included
            await policy.verify_source(source)

    try:
        sources = load_yaml(path)
        asyncio.run(verify(sources))
    except (ValueError, yaml.YAMLError, OutboundRefused) as exc:
        console.print(f"[red]{path} is not a valid sources file:[/red] {exc}")
        raise typer.Exit(code=1) from exc

    async def store(session: AsyncSession) -> list[tuple[str, bool]]:
        return [(s.id, await upsert_source(session, s)) for s in sources]

    for source_id, created in asyncio.run(_in_transaction(settings, store)):
        console.print(f"{'created' if created else 'updated'} source {source_id}")


async def _in_transaction(settings: Settings, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    """`work` in one transaction on the configured database, secrets sealed as configured."""
    engine = create_engine(settings.require_database_url(), application_name="salesops-cli")
    try:
        sessions = create_sessionmaker(engine, info={INFO_KEY: secret_box(settings)})
        async with sessions() as session, session.begin():
            return await work(session)
    finally:
        await engine.dispose()


secrets_app = typer.Typer(help="Keys sealing CRM secrets at rest.", no_args_is_help=True)
app.add_typer(secrets_app, name="secrets")


@secrets_app.command("key")
@app.command("secrets-key", hidden=True)
def secrets_key() -> None:
    """Print a new key for SALESOPS_SECRETS_KEYS (CRM secrets sealed at rest)."""
    typer.echo(new_key())


@secrets_app.command("reseal")
def secrets_reseal(
    check: Annotated[
        bool,
        typer.Option(
            "--check",
            help="Change nothing; list the sources whose secrets are not yet sealed under the "
            "first key, and exit 1 if there are any",
        ),
    ] = False,
) -> None:
    """Re-seal every stored CRM secret under the first key of SALESOPS_SECRETS_KEYS.

    Key rotation: roll out `[new, old]` to every replica, run this, check with `--check`,
    then drop the old key. Secrets stored before any key was set are sealed too."""
    settings = Settings()
    configure_logging(settings.log_level, json=False)
    box = secret_box(settings)
    if not box.seals:
        console.print("[red]SALESOPS_SECRETS_KEYS is not set:[/red] nothing to seal with.")
        raise typer.Exit(code=1)
    if check:
        behind = asyncio.run(_in_transaction(settings, sources_not_under_first_key))
        console.print(
            f"{len(behind)} sources hold secrets not sealed under the first key"
            + (f": {', '.join(behind)}" if behind else "")
        )
        raise typer.Exit(code=1 if behind else 0)
    try:
        count = asyncio.run(_in_transaction(settings, reseal_sources))
    except SecretBoxError as exc:
        console.print(f"[red]Nothing was re-sealed:[/red] {exc}")
        raise typer.Exit(code=1) from exc
    console.print(f"re-sealed the secrets of {count} sources under the first key")


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    app()
