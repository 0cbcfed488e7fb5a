"""Schemathesis against the composed stack's OpenAPI, over real HTTP: every operation, a
fixed seed, bounded examples, and zero server errors, undocumented statuses or responses
that break their documented schema.

Key-protected operations run twice: with the admin key (the handlers' own answers) and
without a key (the edge's 401s). The operations come from the served schema, so routes
added later are fuzzed without touching this file. It runs as the session's last test
(see conftest), because it writes random sources and events into the shared stack.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import httpx
import pytest

from tests.conftest import ADMIN_KEY

pytestmark = [pytest.mark.integration, pytest.mark.fuzz]

SEED = 20261130
MAX_EXAMPLES = 60
CHECKS = "not_a_server_error,status_code_conformance,response_schema_conformance"
SCHEMATHESIS = str(Path(sys.executable).with_name("schemathesis"))


async def _schemathesis(stack_url: str, workdir: Path, *args: str) -> tuple[int, str]:
    """Run the CLI in `workdir`, where it keeps its cache, so every run starts afresh and
    nothing lands in the checkout."""
    process = await asyncio.create_subprocess_exec(
        SCHEMATHESIS,
        "run",
        f"{stack_url}/openapi.json",
        "--checks",
        CHECKS,
        "--seed",
        str(SEED),
        "--max-examples",
        str(MAX_EXAMPLES),
        "--phases",
        "examples,coverage,fuzzing",
        "--workers",
        "1",
        "--generation-database",
        "none",
        "--suppress-health-check",
        "all",
        "--no-color",
        *args,
        cwd=workdir,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await process.communicate()
    return process.returncode or 0, output.decode(errors="replace")


async def _key_protected_operations(stack_url: str) -> list[str]:
    async with httpx.AsyncClient(base_url=stack_url) as client:
        spec = (await client.get("/openapi.json")).raise_for_status().json()
    return sorted(
        operation["operationId"]
        for methods in spec["paths"].values()
        for operation in methods.values()
        if operation.get("security")
    )


async def test_every_operation_with_the_admin_key(stack_url: str, tmp_path: Path) -> None:
    status, output = await _schemathesis(
        stack_url, tmp_path, "--header", f"Authorization: Bearer {ADMIN_KEY}"
    )
    assert status == 0, output[-20000:]


async def test_every_key_protected_operation_without_a_key(stack_url: str, tmp_path: Path) -> None:
    operations = await _key_protected_operations(stack_url)
    assert operations, "no operation declares a security requirement"
    selection = [arg for op in operations for arg in ("--include-operation-id", op)]
    status, output = await _schemathesis(stack_url, tmp_path, *selection)
    assert status == 0, output[-20000:]
