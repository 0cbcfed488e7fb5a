"""`salesops dataset load` run as a process against a test stack."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


async def load_dataset(stack_url: str, directory: Path, api_key: str) -> tuple[int, str]:
    """The CLI as a process (the stack serves in this event loop, so it must not block)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "services.cli",
        "dataset",
        "load",
        str(directory),
        "--base-url",
        stack_url,
        "--api-key",
        api_key,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), timeout=600)
    return await process.wait(), " ".join(output.decode().split())
