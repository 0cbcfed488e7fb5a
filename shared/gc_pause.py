"""Pausing Python's cyclic garbage collector around a large batch computation.

A full recompute allocates millions of small containers (histories, traces, lines, tier
steps) that all live until the batch ends. The collector, triggered by allocation counts,
keeps walking that growing, still-live heap: about a third of a recompute chunk's time,
measured. The batch makes no reference cycles worth collecting before it ends, so pausing
the collector for it (it runs again on its own schedule after) costs no memory the batch
does not already hold.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def gc_paused() -> Iterator[None]:
    """The collector paused for the block, and restored after only by the block that paused
    it, so nested or concurrent batches leave it as they found it."""
    paused = gc.isenabled()
    if paused:
        gc.disable()
    try:
        yield
    finally:
        if paused:
            gc.enable()
