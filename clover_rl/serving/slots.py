"""Which model variant runs on which MIG slice: the one rule shared by the replay simulator
(``serving/simulator.py``, ``serving/replay.py``) and the live worker pool (``serving/live/pool.py``),
so a reconfiguration reloads the same slices in replay as live."""
from __future__ import annotations

from collections.abc import Mapping

from clover_rl.mig.catalog import GpuModel, get_gpu
from clover_rl.mig.config import Configuration
from clover_rl.mig.partition import Slice


def slice_id(gpu_index: int, slc: Slice) -> str:
    """Stable per-slice key used in utilisation and downtime maps: ``gpu0/3g.20gb@4``."""
    return f"gpu{gpu_index}/{slc.profile}@{slc.start}"


def slot_assignment(
    config: Configuration,
    gpu: GpuModel | None = None,
    previous: Mapping[tuple[str, int], str] | None = None,
) -> tuple[tuple[Slice, str], ...]:
    """Which variant runs on which placed slice of one GPU (every GPU gets the same).

    A configuration names (profile, variant) pairs but not which slice of a profile holds
    which variant. Slices whose (profile, start) existed in ``previous`` keep their old
    variant when the new configuration still needs it there (no needless model reload);
    the rest take the remaining variants in canonical order, slices in start order.
    """
    gpu = gpu or get_gpu(config.gpu)
    part = config.partition(gpu)
    remaining: dict[str, list[str]] = {}
    for p, v in config.pairs:
        remaining.setdefault(p, []).append(v)
    chosen: dict[int, str] = {}
    if previous:
        for s in part.slices:
            old = previous.get((s.profile, s.start))
            if old is not None and old in remaining[s.profile]:
                remaining[s.profile].remove(old)
                chosen[s.start] = old
    out = []
    for s in part.slices:
        v = chosen.get(s.start)
        if v is None:
            v = remaining[s.profile].pop(0)
        out.append((s, v))
    return tuple(out)
