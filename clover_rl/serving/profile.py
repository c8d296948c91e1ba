"""Performance and power profiles: the one file format the replay backend reads and the
live profiler writes.

A profile holds, per (slice profile, variant) on one GPU model, the service-time
distribution of one request (as quantiles, so measured and estimated profiles share a
format) and the power drawn above idle while that slice serves; per GPU the idle power;
and reconfiguration times.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

from clover_rl.errors import ConfigError
from clover_rl.paths import profiles_dir

FORMAT = "clover-rl/profile/v1"
# Probability levels at which service times are stored (0 and 1 are min and max).
QUANTILE_LEVELS: tuple[float, ...] = (0.0, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 1.0)


@dataclass(frozen=True)
class ProfileEntry:
    slice: str  # MIG profile name, e.g. "3g.20gb"
    variant: str
    service_ms: tuple[float, ...]  # service time of one request at QUANTILE_LEVELS
    active_power_w: float  # power above idle while the slice is busy
    samples: int = 0  # measured requests behind the figure (0 = estimated)

    @property
    def mean_ms(self) -> float:
        """Mean of the piecewise-linear inverse CDF through the stored quantiles."""
        q = np.asarray(QUANTILE_LEVELS)
        v = np.asarray(self.service_ms)
        return float(np.sum(np.diff(q) * (v[1:] + v[:-1]) / 2))

    @property
    def energy_per_request_j(self) -> float:
        return self.active_power_w * self.mean_ms / 1000.0


@dataclass(frozen=True)
class Profile:
    gpu: str
    service: str
    idle_power_w: float  # per physical GPU
    partition_change_s: float  # MIG re-partition time of the affected slices
    model_load_s: dict[str, float]  # per variant: load + warm-up before serving
    entries: dict[tuple[str, str], ProfileEntry]
    estimated: bool = True
    method: str = ""
    path: str | None = field(default=None, compare=False)

    def entry(self, slice_profile: str, variant: str) -> ProfileEntry:
        try:
            return self.entries[(slice_profile, variant)]
        except KeyError:
            where = f" ({self.path})" if self.path else ""
            raise ConfigError(
                f"profile{where} has no entry for variant {variant!r} on slice {slice_profile!r} "
                f"of {self.gpu}"
            ) from None

    def label(self) -> str:
        return "estimated" if self.estimated else "measured"

    def to_dict(self) -> dict:
        return {
            "format": FORMAT,
            "gpu": self.gpu,
            "service": self.service,
            "estimated": self.estimated,
            "method": self.method,
            "idle_power_w": round(self.idle_power_w, 3),
            "partition_change_s": self.partition_change_s,
            "model_load_s": dict(self.model_load_s),
            "quantile_levels": list(QUANTILE_LEVELS),
            "entries": [
                {
                    "slice": e.slice,
                    "variant": e.variant,
                    "service_ms": [round(x, 4) for x in e.service_ms],
                    "active_power_w": round(e.active_power_w, 3),
                    "samples": e.samples,
                }
                for e in self.entries.values()
            ],
        }

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(self.to_dict(), sort_keys=False, width=120))
        return path


def _num(path: Path, where: str, x: object, positive: bool = False) -> float:
    try:
        v = float(x)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ConfigError(f"{path}: {where} is not a number: {x!r}") from None
    if not math.isfinite(v) or v < 0 or (positive and v == 0):
        raise ConfigError(f"{path}: {where} must be {'positive' if positive else 'non-negative'}, got {x!r}")
    return v


def load_profile(path: str | Path) -> Profile:
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"profile file not found: {path}")
    try:
        d = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML ({str(e).splitlines()[0]})") from None
    if not isinstance(d, dict) or d.get("format") != FORMAT:
        raise ConfigError(f"{path}: not a clover-rl profile (expected format: {FORMAT})")
    for key in ("gpu", "service", "idle_power_w", "entries"):
        if key not in d:
            raise ConfigError(f"{path}: missing field {key!r}")
    levels = tuple(float(x) for x in d.get("quantile_levels", QUANTILE_LEVELS))
    if levels != QUANTILE_LEVELS:
        raise ConfigError(f"{path}: quantile_levels must be {list(QUANTILE_LEVELS)}")
    entries: dict[tuple[str, str], ProfileEntry] = {}
    for i, e in enumerate(d["entries"] or []):
        where = f"entries[{i}]"
        if not isinstance(e, dict) or "slice" not in e or "variant" not in e:
            raise ConfigError(f"{path}: {where} needs 'slice' and 'variant'")
        svc = e.get("service_ms")
        if not isinstance(svc, list) or len(svc) != len(QUANTILE_LEVELS):
            raise ConfigError(f"{path}: {where}.service_ms must list {len(QUANTILE_LEVELS)} quantiles")
        vals = tuple(_num(path, f"{where}.service_ms", x, positive=True) for x in svc)
        if any(b < a for a, b in zip(vals, vals[1:])):
            raise ConfigError(f"{path}: {where}.service_ms quantiles must be non-decreasing")
        entries[(str(e["slice"]), str(e["variant"]))] = ProfileEntry(
            str(e["slice"]), str(e["variant"]), vals,
            _num(path, f"{where}.active_power_w", e.get("active_power_w")),
            int(e.get("samples", 0)),
        )
    if not entries:
        raise ConfigError(f"{path}: no entries")
    return Profile(
        gpu=str(d["gpu"]),
        service=str(d["service"]),
        idle_power_w=_num(path, "idle_power_w", d["idle_power_w"]),
        partition_change_s=_num(path, "partition_change_s", d.get("partition_change_s", 0.0)),
        model_load_s={str(k): _num(path, f"model_load_s.{k}", v) for k, v in (d.get("model_load_s") or {}).items()},
        entries=entries,
        estimated=bool(d.get("estimated", True)),
        method=str(d.get("method", "")),
        path=str(path),
    )


def default_profile_path(service: str, gpu: str) -> Path:
    return profiles_dir() / f"{service}_{gpu}.yaml"


def load_default_profile(service: str, gpu: str) -> Profile:
    p = default_profile_path(service, gpu)
    if not p.exists():
        raise ConfigError(
            f"no shipped profile for service {service!r} on {gpu}; pass --profile FILE "
            f"(measure one with `clover-rl profile`)"
        )
    return load_profile(p)
