"""The `salesops` CLI run as its own process against a stack served in the test's loop."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from tests.conftest import ADMIN_KEY

ROOT = Path(__file__).resolve().parents[2]


async def salesops(stack_url: str, *args: str, key: str = ADMIN_KEY) -> tuple[int, str, str]:
    """Exit code, stdout and stderr (Rich's line wrapping undone) of the CLI run as its own
    process, awaited so that the stack served in this event loop can answer it."""
    env = {**os.environ, "SALESOPS_API_URL": stack_url, "SALESOPS_API_KEY": key}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "services.cli",
        *args,
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    return process.returncode or 0, out.decode(), " ".join(err.decode().split())
