"""Every module of a service imports on its own, whichever is imported first.

The CRM packages and `sources/` refer to each other (a source has a CRM kind; a CRM reads
a source), so a runtime import in the wrong direction leaves a module "partially
initialized" only when something happens to import it first: a worker, a script or a test
that starts there. Each module is imported first here, in a fresh interpreter.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ("services.pipeline_api", "services.forecast_worker")

_IMPORT_EACH_FIRST = """
import importlib, sys
failures = []
for name in sys.argv[1:]:
    for loaded in [m for m in sys.modules if m == "services" or m.startswith("services.")]:
        del sys.modules[loaded]
    try:
        importlib.import_module(name)
    except Exception as exc:
        failures.append(f"{name}: {type(exc).__name__}: {exc}")
print("\\n".join(failures))
sys.exit(1 if failures else 0)
"""


def _modules(package: str) -> list[str]:
    base = ROOT.joinpath(*package.split("."))
    names = []
    for path in sorted(base.rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


@pytest.mark.parametrize("package", SERVICES)
def test_each_module_imports_first_in_a_fresh_interpreter(package: str) -> None:
    modules = _modules(package)
    assert len(modules) > 10, "the walk found the package's modules"
    result = subprocess.run(
        [sys.executable, "-c", _IMPORT_EACH_FIRST, *modules],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
