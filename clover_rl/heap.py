"""Keep the objects of a long set-up out of the cyclic garbage collector's full scans.

A full (generation 2) collection walks every tracked object. After the imports and an
environment's set-up a process holds ~200,000 of them (numpy, numba, gymnasium, pydantic, the
catalog), so each full collection costs ~80 ms, and a loop that keeps new objects (the replay
caches of a training run or a suite case meeting new configurations) triggers one every few
thousand steps: ~25 us per step of a fresh environment, 10-15% of a step that switches to a
configuration never seen (measured with ``gc.callbacks`` on albert; ``benchmarks/env_speed.py``
prints the steps/s). :func:`frozen_setup` moves what is alive on entry to the collector's
permanent generation (``gc.freeze``), so full collections only walk what the loop created.
"""
from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def frozen_setup() -> Iterator[None]:
    """Freeze the objects alive now for the duration of the block (``gc.freeze``), unfreeze on
    exit (``gc.unfreeze``: they are collectable again, nothing leaks past the block).

    Wrap one long loop after its set-up (a training run's ``learn``, a benchmark case's
    episodes). Cyclic garbage among frozen objects is only freed after the block; a nested block
    unfreezes everything on its exit (the outer one then runs unfrozen)."""
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()
