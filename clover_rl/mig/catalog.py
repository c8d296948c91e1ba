"""Static MIG profile catalogs (the fallback when NVML is unavailable).

Figures follow NVIDIA's MIG user guide: profile name, compute slices, memory slices, memory
size, SM count, the ``nvidia-smi mig -lgip`` profile ID, the NVML profile index passed to
``nvmlDeviceGetGpuInstanceProfileInfo`` and the allowed placements (start, size), both in
memory-slice units. Every listed GPU has 8 memory slices and 7 compute slices.
Profiles marked ``extended`` (``+me`` media-engine and double-memory 1g variants) exist on
the hardware but are not used when enumerating partitions unless asked for, matching the
paper's 1g/2g/3g/4g/7g geometry.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from clover_rl.errors import ConfigError

MEMORY_SLOTS = 8
COMPUTE_SLICES = 7


@dataclass(frozen=True)
class MigProfile:
    name: str  # e.g. "3g.20gb"
    compute_slices: int
    memory_slices: int
    memory_mb: int
    sm_count: int
    profile_id: int  # nvidia-smi mig -lgip ID
    nvml_index: int  # NVML_GPU_INSTANCE_PROFILE_* constant
    placements: tuple[tuple[int, int], ...]  # (start, size) in memory slices
    extended: bool = False

    @property
    def short(self) -> str:
        """The compute-size prefix used in configuration strings (``3g``)."""
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

    def base_profiles(self, extended: bool = False) -> tuple[MigProfile, ...]:
        return tuple(p for p in self.profiles if extended or not p.extended)

    @property
    def whole(self) -> MigProfile:
        """The profile that spans the whole GPU (7g)."""
        return max(self.base_profiles(), key=lambda p: p.compute_slices)


def _placements(starts: tuple[int, ...], size: int) -> tuple[tuple[int, int], ...]:
    return tuple((s, size) for s in starts)


def _standard(mem: dict[str, int], sms: dict[str, int], names: dict[str, str]) -> tuple[MigProfile, ...]:
    """The A100/H100/H200 MIG geometry; only names, memory sizes and SM counts differ."""
    spec = [
        # key, compute, mem slices, profile id, nvml index, placements, extended
        ("1g", 1, 1, 19, 0, _placements(tuple(range(7)), 1), False),
        ("1g+me", 1, 1, 20, 7, _placements(tuple(range(7)), 1), True),
        ("1g2", 1, 2, 15, 9, _placements((0, 2, 4, 6), 2), True),
        ("2g", 2, 2, 14, 1, _placements((0, 2, 4), 2), False),
        ("3g", 3, 4, 9, 2, _placements((0, 4), 4), False),
        ("4g", 4, 4, 5, 3, _placements((0,), 4), False),
        ("7g", 7, 8, 0, 4, _placements((0,), 8), False),
    ]
    return tuple(
        MigProfile(names[k], c, m, mem[k], sms[k], pid, idx, pl, ext)
        for k, c, m, pid, idx, pl, ext in spec
    )


_A100_SMS = {"1g": 14, "1g+me": 14, "1g2": 14, "2g": 28, "3g": 42, "4g": 56, "7g": 98}
_H100_SMS = {"1g": 16, "1g+me": 16, "1g2": 26, "2g": 32, "3g": 60, "4g": 64, "7g": 132}

GPUS: dict[str, GpuModel] = {
    "a100-40gb": GpuModel(
        "a100-40gb", "A100-SXM4-40GB", 40960, 108, 400.0, 38.0,
        _standard(
            {"1g": 4864, "1g+me": 4864, "1g2": 9856, "2g": 9856, "3g": 19968, "4g": 19968, "7g": 40192},
            _A100_SMS,
            {"1g": "1g.5gb", "1g+me": "1g.5gb+me", "1g2": "1g.10gb", "2g": "2g.10gb",
             "3g": "3g.20gb", "4g": "4g.20gb", "7g": "7g.40gb"},
        ),
    ),
    "a100-80gb": GpuModel(
        "a100-80gb", "A100-SXM4-80GB", 81920, 108, 400.0, 45.0,
        _standard(
            {"1g": 9728, "1g+me": 9728, "1g2": 19968, "2g": 19968, "3g": 40192, "4g": 40192, "7g": 80896},
            _A100_SMS,
            {"1g": "1g.10gb", "1g+me": "1g.10gb+me", "1g2": "1g.20gb", "2g": "2g.20gb",
             "3g": "3g.40gb", "4g": "4g.40gb", "7g": "7g.80gb"},
        ),
    ),
    "h100-80gb": GpuModel(
        "h100-80gb", "H100 80GB HBM3", 81559, 132, 700.0, 70.0,
        _standard(
            {"1g": 10240, "1g+me": 10240, "1g2": 20480, "2g": 20480, "3g": 40960, "4g": 40960, "7g": 81559},
            _H100_SMS,
            {"1g": "1g.10gb", "1g+me": "1g.10gb+me", "1g2": "1g.20gb", "2g": "2g.20gb",
             "3g": "3g.40gb", "4g": "4g.40gb", "7g": "7g.80gb"},
        ),
    ),
    "h200-141gb": GpuModel(
        "h200-141gb", "H200", 143771, 132, 700.0, 75.0,
        _standard(
            {"1g": 18432, "1g+me": 18432, "1g2": 35840, "2g": 35840, "3g": 72704, "4g": 72704, "7g": 143771},
            _H100_SMS,
            {"1g": "1g.18gb", "1g+me": "1g.18gb+me", "1g2": "1g.35gb", "2g": "2g.35gb",
             "3g": "3g.71gb", "4g": "4g.71gb", "7g": "7g.141gb"},
        ),
    ),
}

_ALIASES = {"a100": "a100-40gb", "a100-sxm4-40gb": "a100-40gb", "a100-sxm4-80gb": "a100-80gb",
            "h100": "h100-80gb", "h200": "h200-141gb"}


def get_gpu(name: str) -> GpuModel:
    key = name.strip().lower()
    key = _ALIASES.get(key, key)
    if key not in GPUS:
        raise ConfigError(f"unknown GPU model {name!r} (known: {', '.join(GPUS)})")
    return GPUS[key]
