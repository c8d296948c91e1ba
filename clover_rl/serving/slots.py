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


_PLANS: dict[tuple[int, Configuration], tuple] = {}  # by (id(gpu), configuration): see _plan
_PLANS_MAX = 50_000


def _plan(config: Configuration, gpu: GpuModel) -> tuple:
    """(gpu, slices in start order, the assignment without a previous one, variants per profile
    in canonical order) of ``config`` on ``gpu``: found once per configuration (the env asks
    at every switch)."""
    key = (id(gpu), config)
    hit = _PLANS.get(key)
    if hit is not None and hit[0] is gpu:
        return hit
    slices = config.partition(gpu).slices
    groups: dict[str, list[str]] = {}
    for p, v in config.pairs:
        groups.setdefault(p, []).append(v)
    remaining = {p: list(vs) for p, vs in groups.items()}
    fresh = tuple((s, remaining[s.profile].pop(0)) for s in slices)
    if len(_PLANS) >= _PLANS_MAX:
        _PLANS.clear()
    hit = _PLANS[key] = (gpu, slices, fresh, {p: tuple(vs) for p, vs in groups.items()})
    return hit


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
    _, slices, fresh, groups = _plan(config, gpu or get_gpu(config.gpu))
    if not previous:
        return fresh
    remaining = {p: list(vs) for p, vs in groups.items()}
    chosen: dict[int, str] = {}
    for s in slices:
        old = previous.get((s.profile, s.start))
        if old is not None:
            left = remaining[s.profile]
            if old in left:
                left.remove(old)
                chosen[s.start] = old
    if not chosen:
        return fresh
    out = []
    for s in slices:
        v = chosen.get(s.start)
        if v is None:
            v = remaining[s.profile].pop(0)
        out.append((s, v))
    return tuple(out)
