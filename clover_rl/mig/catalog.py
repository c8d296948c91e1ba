"""MIG profile catalogs per board, read from ``boards.yaml`` (the fallback when NVML is absent).

Every figure is what the driver reports (``nvidia-smi mig -lgip`` / ``-lgipp``), with its
source noted per board in the data file: profile name, compute and memory slices, memory in
MiB, SM count, the ``-lgip`` profile ID, the NVML profile index passed to
``nvmlDeviceGetGpuInstanceProfileInfo``, the most instances of the profile one GPU holds
(``+me`` profiles: 1) and the allowed placements (start, size) in memory slices. The same
profile name can mean different memory on different boards (H200's 1g.18gb is 16.00 GiB,
GH200-144GB's 17.50 GiB), so nothing is derived from names.

Profiles marked ``extended`` (``+me`` media-engine and double-memory 1g variants) exist on
the hardware but are not used when enumerating partitions unless asked for, matching the
paper's 1g/2g/3g/4g/7g geometry.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from clover_rl.config_io import load_yaml_mapping
from clover_rl.errors import ConfigError

BOARDS_FILE = Path(__file__).with_name("boards.yaml")


@dataclass(frozen=True)
class MigProfile:
    name: str  # e.g. "3g.20gb"
    compute_slices: int
    memory_slices: int
    memory_mb: int  # MiB as the driver reports it
    sm_count: int
    profile_id: int  # nvidia-smi mig -lgip ID
    nvml_index: int  # NVML_GPU_INSTANCE_PROFILE_* constant
    placements: tuple[tuple[int, int], ...]  # (start, size) in memory slices
    extended: bool = False
    max_instances: int = 7  # the "Instances Total" column of -lgip

    @property
    def short(self) -> str:
        """The compute-size prefix (``3g``); a label only when it names this profile alone
        (see :meth:`GpuModel.label`)."""
        return self.name.split(".")[0]


@dataclass(frozen=True)
class GpuModel:
    name: str  # canonical key, e.g. "a100-40gb"
    product: str  # NVML product name fragment
    memory_mb: int
    sm_count: int
    tdp_w: float
    idle_w: float
    profiles: tuple[MigProfile, ...] = field(default_factory=tuple)
    memory_slices: int = 8
    compute_slices: int = 7
    source: str = ""
    pci_device_ids: tuple[str, ...] = ()

    def profile(self, name: str) -> MigProfile:
        """Look up a profile by full name (``3g.20gb``) or short name (``3g``)."""
        for p in self.profiles:
            if p.name == name:
                return p
        basic = [p for p in self.profiles if p.short == name and not p.extended]
        if len(basic) == 1:
            return basic[0]
        known = ", ".join(p.name for p in self.profiles)
        raise ConfigError(f"unknown MIG profile {name!r} for GPU {self.name} (known: {known})")

    def label(self, profile: str) -> str:
        """The shortest name that parses back to ``profile``: ``3g`` for 3g.20gb, but the
        full ``1g.10gb`` / ``1g.5gb+me`` where ``1g`` would mean another profile."""
        p = self.profile(profile)
        try:
            return p.short if self.profile(p.short) == p else p.name
        except ConfigError:
            return p.name

    def base_profiles(self, extended: bool = False) -> tuple[MigProfile, ...]:
        return tuple(p for p in self.profiles if extended or not p.extended)

    @property
    def whole(self) -> MigProfile:
        """The profile that spans the whole GPU (7g; 4g on A30)."""
        return max(self.base_profiles(), key=lambda p: p.compute_slices)


def _board(key: str, d: dict[str, Any]) -> GpuModel:
    where = f"{BOARDS_FILE.name}: {key}"
    try:
        ext = set(d.get("extended", []))
        profiles = []
        for pname, row in d["profiles"].items():
            pid, idx, comp, mem, mib, sms, most, starts = row
            profiles.append(MigProfile(pname, comp, mem, mib, sms, pid, idx,
                                       tuple((int(s), mem) for s in starts), pname in ext, most))
        return GpuModel(key, d["product"], int(d["memory_mib"]), int(d["sm_count"]),
                        float(d["tdp_w"]), float(d["idle_w"]), tuple(profiles),
                        int(d["memory_slices"]), int(d["compute_slices"]), d["source"],
                        tuple(d.get("pci_device_ids", ())))
    except (KeyError, TypeError, ValueError) as e:
        raise ConfigError(f"{where}: malformed board entry ({type(e).__name__}: {e})") from None


@cache
def _load() -> dict[str, GpuModel]:
    data = load_yaml_mapping(BOARDS_FILE)
    return {k: _board(k, v) for k, v in data.items()}


GPUS: dict[str, GpuModel] = _load()

_ALIASES = {"a100": "a100-40gb", "a100-sxm4-40gb": "a100-40gb", "a100-sxm4-80gb": "a100-80gb",
            "h100": "h100-80gb", "h200": "h200-141gb", "a30": "a30-24gb", "h100-nvl": "h100-nvl-94gb",
            "gh200": "gh200-96gb"}


def get_gpu(name: str) -> GpuModel:
    key = name.strip().lower()
    key = _ALIASES.get(key, key)
    if key not in GPUS:
        raise ConfigError(f"unknown GPU model {name!r} (known: {', '.join(GPUS)})")
    return GPUS[key]
