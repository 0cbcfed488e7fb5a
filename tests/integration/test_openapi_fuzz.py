"""Schemathesis against the composed stack's OpenAPI, over real HTTP: every operation, a
fixed seed, bounded examples, and zero server errors, undocumented statuses or responses
that break their documented schema.

Key-protected operations run twice: with the admin key (the handlers' own answers) and
without a key (the edge's 401s). The operations come from the served schema, so routes
added later are fuzzed without touching this file. The admin run is dealt out into
`ADMIN_PARTS` parts by operation (every `ADMIN_PARTS`-th of the sorted ids), `AT_ONCE`
parts to a test, so that each test stays well inside the per-test timeout as routes are
added: generating cases for the large request schemas (plans, simulations) is what costs,
on the fuzzer's side. It runs as the session's last test (see conftest), because it writes
random sources and events into the shared stack.
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
MAX_EXAMPLES = 30
ADMIN_PARTS = 10
AT_ONCE = 2
WITHOUT_A_KEY = ("--max-examples", "5", "--phases", "examples,fuzzing")
"""The edge answers 401 before reading a body, so a few requests per operation show it; the
coverage phase's thousands of body variants would only test the fuzzer (later options win)."""
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


async def _operations(stack_url: str, *, key_protected: bool) -> list[str]:
    # The first request builds the whole document: seconds on a busy machine.
    async with httpx.AsyncClient(base_url=stack_url, timeout=60) as client:
        spec = (await client.get("/openapi.json")).raise_for_status().json()
    return sorted(
        operation["operationId"]
        for methods in spec["paths"].values()
        for operation in methods.values()
        if operation.get("security") or not key_protected
    )


def _only(operations: list[str]) -> list[str]:
    return [arg for op in operations for arg in ("--include-operation-id", op)]


@pytest.mark.parametrize("first", range(0, ADMIN_PARTS, AT_ONCE))
async def test_every_operation_with_the_admin_key(
    stack_url: str, tmp_path: Path, first: int
) -> None:
    """`AT_ONCE` parts side by side: the fuzzer's generation is the cost and runs in a
    process of its own, so two keep both cores busy against the one stack."""
    operations = await _operations(stack_url, key_protected=False)
    parts = [operations[part::ADMIN_PARTS] for part in range(first, first + AT_ONCE)]
    assert all(parts), "a part has no operation: lower ADMIN_PARTS"
    runs = await asyncio.gather(
        *(
            _schemathesis(
                stack_url,
                _own(tmp_path, n),
                "--header",
                f"Authorization: Bearer {ADMIN_KEY}",
                *_only(part),
            )
            for n, part in enumerate(parts)
        )
    )
    for status, output in runs:
        assert status == 0, output[-20000:]


def _own(tmp_path: Path, n: int) -> Path:
    workdir = tmp_path / str(n)
    workdir.mkdir()
    return workdir


async def test_every_key_protected_operation_without_a_key(stack_url: str, tmp_path: Path) -> None:
    operations = await _operations(stack_url, key_protected=True)
    assert operations, "no operation declares a security requirement"
    status, output = await _schemathesis(stack_url, tmp_path, *WITHOUT_A_KEY, *_only(operations))
    assert status == 0, output[-20000:]
