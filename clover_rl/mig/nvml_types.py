"""What NVML says about MIG, as plain data: profiles, mode, instances, layouts; and how the
driver's profiles compare with the board catalog (:mod:`clover_rl.mig.catalog`)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from clover_rl.mig.catalog import GPUS, GpuModel, MigProfile
from clover_rl.mig.partition import Partition, Slice


@dataclass(frozen=True)
class NvmlProfile:
    """A GPU-instance profile as the driver (or, as fallback, the catalog) describes it."""

    name: str  # "3g.20gb"
    nvml_index: int  # NVML_GPU_INSTANCE_PROFILE_* constant
    profile_id: int  # nvidia-smi mig -lgip ID, used by create/list calls
    compute_slices: int
    memory_slices: int | None  # None when no placement is known
    memory_mb: int
    sm_count: int
    instance_count: int
    placements: tuple[tuple[int, int], ...]  # (start, size) in memory slices
    source: str = "nvml"  # or "catalog"

    @property
    def short(self) -> str:
        return self.name.split(".")[0]

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "nvml_index": self.nvml_index, "profile_id": self.profile_id,
            "compute_slices": self.compute_slices, "memory_slices": self.memory_slices,
            "memory_mb": self.memory_mb, "sm_count": self.sm_count,
            "instance_count": self.instance_count,
            "placements": [list(p) for p in self.placements], "source": self.source,
        }

    @classmethod
    def from_catalog(cls, p: MigProfile) -> NvmlProfile:
        return cls(p.name, p.nvml_index, p.profile_id, p.compute_slices, p.memory_slices,
                   p.memory_mb, p.sm_count, p.max_instances, p.placements, "catalog")


@dataclass(frozen=True)
class MigMode:
    current: bool
    pending: bool

    @property
    def ready(self) -> bool:
        """MIG is on and no reset is pending, so instances can be changed."""
        return self.current and self.pending

    def to_dict(self) -> dict[str, Any]:
        return {"current": "enabled" if self.current else "disabled",
                "pending": "enabled" if self.pending else "disabled",
                "reset_pending": self.current != self.pending}


@dataclass(frozen=True)
class ComputeInstance:
    id: int
    profile_id: int
    start: int  # in compute slices of its GPU instance
    size: int
    uuid: str | None = None  # the MIG device UUID (CUDA_VISIBLE_DEVICES=MIG-...)
    handle: Any = field(default=None, compare=False, repr=False)  # valid until layout changes

    def to_dict(self) -> dict[str, Any]:
        return {"ci_id": self.id, "profile_id": self.profile_id, "start": self.start,
                "size": self.size, "uuid": self.uuid}


@dataclass(frozen=True)
class GpuInstance:
    id: int
    profile: str
    profile_id: int
    start: int  # placement in memory slices
    size: int
    compute_slices: int
    compute_instances: tuple[ComputeInstance, ...] = ()
    handle: Any = field(default=None, compare=False, repr=False)

    @property
    def label(self) -> str:
        return f"{self.profile}@{self.start}"

    @property
    def is_whole(self) -> bool:
        """Exactly one compute instance spanning the GPU instance (what apply creates)."""
        cis = self.compute_instances
        return len(cis) == 1 and cis[0].size == self.compute_slices

    @property
    def uuid(self) -> str | None:
        """The MIG device UUID when there is exactly one compute instance."""
        cis = self.compute_instances
        return cis[0].uuid if len(cis) == 1 else None

    def to_dict(self) -> dict[str, Any]:
        return {"gi_id": self.id, "profile": self.profile, "profile_id": self.profile_id,
                "start": self.start, "size": self.size, "compute_slices": self.compute_slices,
                "compute_instances": [c.to_dict() for c in self.compute_instances]}


@dataclass(frozen=True)
class MigLayout:
    """GPU instances of one GPU, ordered by placement start."""

    gpu_index: int
    instances: tuple[GpuInstance, ...]

    @property
    def label(self) -> str:
        """``4g.20gb@0+3g.20gb@4`` (``empty`` when there are no instances)."""
        return "+".join(g.label for g in self.instances) or "empty"

    def slices(self) -> tuple[Slice, ...]:
        return tuple(sorted(Slice(g.start, g.profile, g.size) for g in self.instances))

    def as_partition(self, gpu: str) -> Partition:
        return Partition(gpu, self.slices())

    def find(self, profile: str, start: int) -> GpuInstance | None:
        for g in self.instances:
            if g.profile == profile and g.start == start:
                return g
        return None

    def to_dict(self) -> dict[str, Any]:
        return {"label": self.label, "instances": [g.to_dict() for g in self.instances]}


# --------------------------------------------------------------------------- catalog


def _family(product: str) -> str:
    return product.replace("-", " ").split()[0].upper()


def match_catalog_model(device_name: str, memory_mb: int | None) -> GpuModel | None:
    """The catalog GpuModel for an NVML device name, by product name then by memory size.

    Exact product fragments win (``NVIDIA A100-SXM4-40GB``); otherwise a model of the same
    family (A100/H100/H200) whose memory is within 10% of the device's, nearest first, so
    PCIe and SXM boards of one memory size share a catalog.
    """
    upper = device_name.upper()
    for model in GPUS.values():
        if model.product.upper() in upper:
            return model
    if not memory_mb:
        return None
    same_family = [m for m in GPUS.values() if _family(m.product) in upper]
    close = [m for m in same_family if abs(m.memory_mb - memory_mb) <= 0.1 * m.memory_mb]
    return min(close, key=lambda m: abs(m.memory_mb - memory_mb)) if close else None


def compare_with_catalog(profiles: tuple[NvmlProfile, ...], model: GpuModel) -> list[str]:
    """One line per difference between NVML-discovered profiles and the catalog model."""
    out: list[str] = []
    by_index = {p.nvml_index: p for p in profiles}
    cat_index = {p.nvml_index: p for p in model.profiles}
    for idx, cp in sorted(cat_index.items()):
        if idx not in by_index:
            out.append(f"catalog profile {cp.name} (NVML index {idx}) not reported by NVML "
                       f"for {model.name}")
    for idx, np_ in sorted(by_index.items()):
        cp = cat_index.get(idx)
        if cp is None:
            out.append(f"NVML profile {np_.name} (index {idx}, id {np_.profile_id}) "
                       f"missing from catalog {model.name}")
            continue
        checks: list[tuple[str, Any, Any]] = [
            ("name", np_.name, cp.name),
            ("profile_id", np_.profile_id, cp.profile_id),
            ("compute_slices", np_.compute_slices, cp.compute_slices),
            ("memory_slices", np_.memory_slices, cp.memory_slices),
            ("memory_mb", np_.memory_mb, cp.memory_mb),
            ("sm_count", np_.sm_count, cp.sm_count),
            ("placements", list(np_.placements), list(cp.placements)),
            ("max_instances", np_.instance_count, cp.max_instances),
        ]
        for what, got, want in checks:
            if got is not None and got != want:
                out.append(f"{cp.name} (NVML index {idx}): {what} NVML {got} != catalog {want}")
    return out
