"""Unit tests leave nothing behind: Hypothesis keeps its files in a temporary directory."""

from __future__ import annotations

import atexit
import shutil
import tempfile

from hypothesis import configuration

_HYPOTHESIS_HOME = tempfile.mkdtemp(prefix="salesops-unit-hypothesis-")
configuration.set_hypothesis_home_dir(_HYPOTHESIS_HOME)
atexit.register(shutil.rmtree, _HYPOTHESIS_HOME, ignore_errors=True)
