"""MIG partitions of one GPU, enumerated from the placement rules (never typed in).

Rules: slices sit at their profile's placements without overlapping memory slices, the
compute slices add up to at most the board's, and no profile appears more often than its
``max_instances`` (a ``+me`` profile at most once per GPU).
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from functools import cache

from clover_rl.errors import ConfigError
from clover_rl.mig.catalog import GpuModel, MigProfile


@dataclass(frozen=True, order=True)
class Slice:
    """One GPU instance: a profile placed at a memory-slice offset."""

    start: int
    profile: str
    size: int


@dataclass(frozen=True)
class Partition:
    """The slices of one GPU, ordered by placement start."""

    gpu: str
    slices: tuple[Slice, ...]

    @property
    def multiset(self) -> tuple[str, ...]:
        """Slice profile names, largest first: the placement-free identity."""
        return tuple(sorted((s.profile for s in self.slices), key=_profile_sort_key))


def _profile_sort_key(name: str) -> tuple[int, str]:
    return (-int(name.split("g")[0]), name)


def _fits(used: int, start: int, size: int, slots: int) -> bool:
    mask = ((1 << size) - 1) << start
    return start + size <= slots and not used & mask


def _can_add(gpu: GpuModel, gpu_profiles: tuple[MigProfile, ...], used: int, compute: int,
             counts: Counter[str]) -> bool:
    for p in gpu_profiles:
        if compute + p.compute_slices > gpu.compute_slices or counts[p.name] >= p.max_instances:
            continue
        if any(_fits(used, s, z, gpu.memory_slices) for s, z in p.placements):
            return True
    return False


@cache
def enumerate_partitions(gpu: GpuModel, extended: bool = False, maximal: bool = True) -> tuple[Partition, ...]:
    """All placement-distinct partitions; ``maximal`` keeps those that admit no further slice.

    Slices are placed in increasing start order so each set of placements is produced once.
    """
    profiles = gpu.base_profiles(extended)
    out: list[Partition] = []
    counts: Counter[str] = Counter()

    def rec(used: int, compute: int, min_start: int, acc: list[Slice]) -> None:
        if acc and (not maximal or not _can_add(gpu, profiles, used, compute, counts)):
            out.append(Partition(gpu.name, tuple(acc)))
        for p in profiles:
            if compute + p.compute_slices > gpu.compute_slices or counts[p.name] >= p.max_instances:
                continue
            for start, size in p.placements:
                if start < min_start or not _fits(used, start, size, gpu.memory_slices):
                    continue
                acc.append(Slice(start, p.name, size))
                counts[p.name] += 1
                rec(used | (((1 << size) - 1) << start), compute + p.compute_slices, start + 1, acc)
                counts[p.name] -= 1
                acc.pop()

    rec(0, 0, 0, [])
    return tuple(out)


@cache
def slice_multisets(gpu: GpuModel, extended: bool = False) -> tuple[tuple[str, ...], ...]:
    """Distinct slice multisets of the maximal partitions, in a stable order."""
    seen: dict[tuple[str, ...], None] = {}
    for part in enumerate_partitions(gpu, extended):
        seen.setdefault(part.multiset, None)
    return tuple(sorted(seen, key=lambda m: [_profile_sort_key(x) for x in m]))


def place(gpu: GpuModel, profiles: list[str] | tuple[str, ...]) -> Partition:
    """Find placements for a multiset of profiles, or raise naming why it cannot exist."""
    resolved = [gpu.profile(p) for p in profiles]
    total = sum(p.compute_slices for p in resolved)
    names = "+".join(p.name for p in resolved)
    if total > gpu.compute_slices:
        raise ConfigError(
            f"partition {names} needs {total} compute slices; {gpu.name} has {gpu.compute_slices}"
        )
    check_instance_limits(gpu, Counter(p.name for p in resolved), f"partition {names}")
    order = sorted(resolved, key=lambda p: (-p.memory_slices, -p.compute_slices, p.name))

    def rec(i: int, used: int, acc: list[Slice]) -> list[Slice] | None:
        if i == len(order):
            return list(acc)
        p = order[i]
        for start, size in p.placements:
            if _fits(used, start, size, gpu.memory_slices):
                acc.append(Slice(start, p.name, size))
                found = rec(i + 1, used | (((1 << size) - 1) << start), acc)
                acc.pop()
                if found is not None:
                    return found
        return None

    found = rec(0, 0, [])
    if found is None:
        raise ConfigError(f"partition {names} breaks the MIG placement rules of {gpu.name}")
    return Partition(gpu.name, tuple(sorted(found)))


def check_instance_limits(gpu: GpuModel, counts: Counter[str] | dict[str, int], what: str) -> None:
    """Raise naming the first profile used more often than the driver allows on ``gpu``."""
    for name, n in counts.items():
        p = gpu.profile(name)
        if n > p.max_instances:
            raise ConfigError(f"{what}: {n} x {p.name} on {gpu.name}, at most {p.max_instances} "
                              f"per GPU (nvidia-smi mig -lgip Instances Total)")


def count_by_profile(partition: Partition) -> Counter[str]:
    return Counter(s.profile for s in partition.slices)
