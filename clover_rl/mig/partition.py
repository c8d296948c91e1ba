"""MIG partitions of one GPU, enumerated from the placement rules (never typed in)."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from functools import cache

from clover_rl.errors import ConfigError
from clover_rl.mig.catalog import COMPUTE_SLICES, MEMORY_SLOTS, GpuModel, MigProfile


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


def _fits(used: int, start: int, size: int) -> bool:
    mask = ((1 << size) - 1) << start
    return start + size <= MEMORY_SLOTS and not used & mask


def _can_add(gpu_profiles: tuple[MigProfile, ...], used: int, compute: int) -> bool:
    for p in gpu_profiles:
        if compute + p.compute_slices > COMPUTE_SLICES:
            continue
        if any(_fits(used, s, z) for s, z in p.placements):
            return True
    return False


@cache
def enumerate_partitions(gpu: GpuModel, extended: bool = False, maximal: bool = True) -> tuple[Partition, ...]:
    """All placement-distinct partitions; ``maximal`` keeps those that admit no further slice.

    Slices are placed in increasing start order so each set of placements is produced once.
    """
    profiles = gpu.base_profiles(extended)
    out: list[Partition] = []

    def rec(used: int, compute: int, min_start: int, acc: list[Slice]) -> None:
        if acc and (not maximal or not _can_add(profiles, used, compute)):
            out.append(Partition(gpu.name, tuple(acc)))
        for p in profiles:
            if compute + p.compute_slices > COMPUTE_SLICES:
                continue
            for start, size in p.placements:
                if start < min_start or not _fits(used, start, size):
                    continue
                acc.append(Slice(start, p.name, size))
                rec(used | (((1 << size) - 1) << start), compute + p.compute_slices, start + 1, acc)
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
    if total > COMPUTE_SLICES:
        raise ConfigError(
            f"partition {names} needs {total} compute slices; {gpu.name} has {COMPUTE_SLICES}"
        )
    order = sorted(resolved, key=lambda p: (-p.memory_slices, -p.compute_slices, p.name))

    def rec(i: int, used: int, acc: list[Slice]) -> list[Slice] | None:
        if i == len(order):
            return list(acc)
        p = order[i]
        for start, size in p.placements:
            if _fits(used, start, size):
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


def count_by_profile(partition: Partition) -> Counter[str]:
    return Counter(s.profile for s in partition.slices)
