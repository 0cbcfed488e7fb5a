"""Wait until the database schema is at the Alembic head that this image ships.

Used as the init container of the Kubernetes Deployments: `kubectl apply -k` creates the
migration Job and the Deployments at the same moment, and a forecast worker that starts
consuming before the Job has created its tables fails for good. This blocks the pod until
the Job has done its work, without running migrations from every pod.

Exit 0 once the database is at head (or at a revision this image does not know, which means
a newer image already migrated it: a rollback must not be blocked); exit 1 after
SALESOPS_SCHEMA_WAIT_SECONDS (default 300) so the pod shows why it is not starting and the
kubelet retries it. It reads SALESOPS_DATABASE_URL exactly as the services do.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time

from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from services.cli import PROJECT_ROOT
from shared.settings import Settings


def _image_heads() -> set[str]:
    config = Config(str(PROJECT_ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(PROJECT_ROOT / "migrations"))
    return set(ScriptDirectory.from_config(config).get_heads())


def _known_revisions() -> set[str]:
    config = Config(str(PROJECT_ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(PROJECT_ROOT / "migrations"))
    return {rev.revision for rev in ScriptDirectory.from_config(config).walk_revisions()}


def _current(connection: Connection) -> set[str]:
    return set(MigrationContext.configure(connection).get_current_heads())


async def _database_heads(url: str) -> set[str]:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            return await conn.run_sync(_current)
    finally:
        await engine.dispose()


def main() -> int:
    url = Settings().require_database_url()
    wanted = _image_heads()
    known = _known_revisions()
    deadline = time.monotonic() + float(os.environ.get("SALESOPS_SCHEMA_WAIT_SECONDS", "300"))
    last = "not checked yet"
    while True:
        try:
            current = asyncio.run(_database_heads(url))
        except Exception as exc:  # database not up yet: keep waiting, say why at the end
            last = f"database unreachable ({type(exc).__name__}: {exc})"
        else:
            if current == wanted:
                print(f"schema at head {sorted(wanted)}", flush=True)
                return 0
            if current and not current & known:
                print(
                    f"schema at {sorted(current)}, unknown to this image (head {sorted(wanted)});"
                    " assuming a newer release migrated it",
                    flush=True,
                )
                return 0
            last = f"schema at {sorted(current) or 'nothing'}, waiting for {sorted(wanted)}"
        if time.monotonic() >= deadline:
            print(f"gave up waiting for migrations: {last}", file=sys.stderr, flush=True)
            return 1
        print(last, flush=True)
        time.sleep(3)


if __name__ == "__main__":
    sys.exit(main())
