"""Performance and power profiles: the one file format the replay backend reads and the
live profiler writes.

A profile holds, per (slice profile, variant) on one GPU model, the service-time
distribution of one request (as quantiles, so measured and estimated profiles share a
format) and the power drawn above idle while that slice serves; per GPU the idle power;
and reconfiguration times. Measured profiles also hold the whole request path outside the
worker (:class:`Overhead`, by request payload size) and the reconfiguration downtime the
live plane was seen to pay (:class:`Downtime`); both are optional (older files load with
``None``: the replay then adds no overhead and uses the partition/model-load formula).
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Annotated, Literal

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, StrictBool, field_validator

from clover_rl.config_io import NonNegFinite as _NonNeg
from clover_rl.config_io import load_yaml_mapping, parse_model
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

    @cached_property
    def mean_ms(self) -> float:
        """Mean of the piecewise-linear inverse CDF through the stored quantiles."""
        q = np.asarray(QUANTILE_LEVELS)
        v = np.asarray(self.service_ms)
        return float(np.sum(np.diff(q) * (v[1:] + v[:-1]) / 2))

    @property
    def energy_per_request_j(self) -> float:
        return self.active_power_w * self.mean_ms / 1000.0


@dataclass(frozen=True)
class Spread:
    """Mean, median and 95th percentile of a per-request time, ms."""

    mean_ms: float
    p50_ms: float
    p95_ms: float

    @classmethod
    def of(cls, samples_ms: np.ndarray | list[float]) -> Spread:
        x = np.asarray(samples_ms, dtype=float)
        if x.size == 0:
            return cls(0.0, 0.0, 0.0)
        p50, p95 = np.percentile(x, [50.0, 95.0])
        return cls(float(x.mean()), float(p50), float(p95))

    def to_dict(self) -> dict:
        return {"mean": round(self.mean_ms, 4), "p50": round(self.p50_ms, 4), "p95": round(self.p95_ms, 4)}


@dataclass(frozen=True)
class OverheadPoint:
    """Per-request time outside the worker's service time, at one request payload size.

    ``frontend``: request accepted by the front end to queued, plus answer to response sent
    (decode, checks, encode, event loop) -- adds latency, does not hold a slice.
    ``dispatch``: central-queue hand-off to the slice's feeder and the transfer to the worker
    process and back, minus the worker's service time -- holds the slice (the feeder takes
    the next request only after the answer is back). ``client``: client latency minus server
    latency (HTTP both ways, the load generator's own delays) -- outside the server-side
    latency definition, kept for comparison.
    """

    payload_bytes: int
    frontend: Spread
    dispatch: Spread
    client: Spread
    samples: int


@dataclass(frozen=True)
class Overhead:
    """Overhead by payload size; :meth:`at` interpolates linearly in log(payload)."""

    points: tuple[OverheadPoint, ...]  # sorted by payload_bytes
    estimated: bool = False

    def at(self, payload_bytes: int | None = None) -> tuple[float, float]:
        """(frontend mean, dispatch mean) in seconds at ``payload_bytes`` (default: the first
        point); clamped to the measured range."""
        pts = self.points
        if payload_bytes is None or len(pts) == 1:
            p = pts[0]
            return p.frontend.mean_ms / 1e3, p.dispatch.mean_ms / 1e3
        x = np.log([max(1, p.payload_bytes) for p in pts])
        xi = math.log(max(1, payload_bytes))
        fe = float(np.interp(xi, x, [p.frontend.mean_ms for p in pts]))
        di = float(np.interp(xi, x, [p.dispatch.mean_ms for p in pts]))
        return fe / 1e3, di / 1e3


@dataclass(frozen=True)
class Downtime:
    """Reconfiguration behaviour observed on the live plane.

    ``make_before_break``: new workers start while the old ones serve, so a changed slice is
    not unavailable (CPU emulation); otherwise (MIG) the slice is down for the partition
    change and model load. ``switch_s``: unavailability observed for a slice that changed
    variant (~0 with make-before-break). ``worker_restart_s``: a crashed worker back in service.
    """

    make_before_break: bool
    switch_s: float
    worker_restart_s: float
    estimated: bool = False


@dataclass(frozen=True)
class Profile:
    gpu: str
    service: str
    idle_power_w: float  # per physical GPU
    partition_change_s: float  # MIG re-partition time of the affected slices
    model_load_s: dict[str, float]  # per variant: load + warm-up before serving
    entries: dict[tuple[str, str], ProfileEntry]
    estimated: bool = True  # the service times (latency) were estimated, not measured
    method: str = ""
    path: str | None = field(default=None, compare=False)
    payload_bytes: int | None = None  # request body size the service times were measured with
    overhead: Overhead | None = None
    downtime: Downtime | None = None
    energy_estimated: bool | None = None  # None: as ``estimated`` (a CPU profile measures latency only)

    def overhead_s(self) -> tuple[float, float]:
        """(frontend, dispatch) mean overhead per request, seconds, at this profile's payload;
        (0, 0) when the profile has none (estimated profiles fold it into service time)."""
        if self.overhead is None:
            return 0.0, 0.0
        return self.overhead.at(self.payload_bytes)

    def entry(self, slice_profile: str, variant: str) -> ProfileEntry:
        try:
            return self.entries[(slice_profile, variant)]
        except KeyError:
            where = f" ({self.path})" if self.path else ""
            raise ConfigError(
                f"profile{where} has no entry for variant {variant!r} on slice {slice_profile!r} "
                f"of {self.gpu}"
            ) from None

    @property
    def energy_is_estimated(self) -> bool:
        return self.estimated if self.energy_estimated is None else self.energy_estimated

    def figures(self) -> dict[str, str]:
        """How each kind of figure was obtained: ``{"latency": ..., "energy": ...}``, each
        ``measured`` or ``estimated``."""
        def word(est: bool) -> str:
            return "estimated" if est else "measured"

        return {"latency": word(self.estimated), "energy": word(self.energy_is_estimated)}

    def label(self) -> str:
        """``estimated``, ``measured``, or per figure (``measured latency, estimated energy``)."""
        f = self.figures()
        if f["latency"] == f["energy"]:
            return f["latency"]
        return f"{f['latency']} latency, {f['energy']} energy"

    def to_dict(self) -> dict:
        d: dict = {
            "format": FORMAT,
            "gpu": self.gpu,
            "service": self.service,
            "estimated": self.estimated,
            "energy_estimated": self.energy_is_estimated,
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
        if self.payload_bytes is not None:
            d["payload_bytes"] = int(self.payload_bytes)
        if self.overhead is not None:
            d["overhead"] = {
                "source": "estimated" if self.overhead.estimated else "measured",
                "points": [{"payload_bytes": p.payload_bytes, "frontend_ms": p.frontend.to_dict(),
                            "dispatch_ms": p.dispatch.to_dict(), "client_ms": p.client.to_dict(),
                            "samples": p.samples} for p in self.overhead.points],
            }
        if self.downtime is not None:
            t = self.downtime
            d["downtime"] = {"source": "estimated" if t.estimated else "measured",
                             "make_before_break": t.make_before_break, "switch_s": round(t.switch_s, 3),
                             "worker_restart_s": round(t.worker_restart_s, 3)}
        return d

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(self.to_dict(), sort_keys=False, width=120))
        return path


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True)


class SpreadFile(_Section):
    """:class:`Spread` on file (ms)."""

    mean: _NonNeg
    p50: _NonNeg
    p95: _NonNeg

    def build(self) -> Spread:
        return Spread(self.mean, self.p50, self.p95)


class OverheadPointFile(_Section):
    payload_bytes: int = Field(ge=0, description="request body size of this point")
    frontend_ms: SpreadFile
    dispatch_ms: SpreadFile
    client_ms: SpreadFile = SpreadFile(mean=0, p50=0, p95=0)
    samples: int = Field(0, ge=0)


class OverheadFile(_Section):
    """:class:`Overhead` on file."""

    source: Literal["measured", "estimated"] = "measured"
    points: list[OverheadPointFile] = Field(min_length=1)

    def build(self) -> Overhead:
        pts = [OverheadPoint(p.payload_bytes, p.frontend_ms.build(), p.dispatch_ms.build(), p.client_ms.build(),
                             p.samples) for p in self.points]
        return Overhead(tuple(sorted(pts, key=lambda p: p.payload_bytes)), self.source == "estimated")


class DowntimeFile(_Section):
    """:class:`Downtime` on file."""

    source: Literal["measured", "estimated"] = "measured"
    make_before_break: StrictBool
    switch_s: _NonNeg = 0.0
    worker_restart_s: _NonNeg = 0.0

    def build(self) -> Downtime:
        return Downtime(self.make_before_break, self.switch_s, self.worker_restart_s, self.source == "estimated")


class EntryFile(_Section):
    """One :class:`ProfileEntry` on file."""

    slice: str = Field(description="MIG profile name, e.g. 3g.20gb")
    variant: str
    service_ms: list[Annotated[float, Field(gt=0, allow_inf_nan=False)]] = Field(
        description="service time of one request (ms) at quantile_levels, non-decreasing")
    active_power_w: _NonNeg = Field(description="power above idle while the slice is busy (W)")
    samples: int = Field(0, ge=0, description="measured requests behind the figures (0 = estimated)")

    @field_validator("service_ms")
    @classmethod
    def _quantiles(cls, v: list[float]) -> list[float]:
        if len(v) != len(QUANTILE_LEVELS):
            raise ConfigError(f"must list {len(QUANTILE_LEVELS)} quantiles (at {list(QUANTILE_LEVELS)})")
        if any(b < a for a, b in itertools.pairwise(v)):
            raise ConfigError("quantiles must be non-decreasing")
        return v


class ProfileFile(_Section):
    """The profile file format (``FORMAT``); :meth:`build` gives the :class:`Profile`."""

    format: Literal["clover-rl/profile/v1"]
    gpu: str
    service: str
    idle_power_w: _NonNeg = Field(description="per physical GPU (W)")
    partition_change_s: _NonNeg = Field(0.0, description="MIG re-partition time of the affected slices (s)")
    model_load_s: dict[str, _NonNeg] = Field(default_factory=dict, description="per variant: load + warm-up (s)")
    quantile_levels: list[float] = Field(list(QUANTILE_LEVELS), description="must be QUANTILE_LEVELS")
    entries: list[EntryFile] = Field(min_length=1)
    estimated: StrictBool = Field(True, description="the service times were estimated, not measured")
    energy_estimated: StrictBool | None = Field(None, description="default: as estimated")
    method: str = ""
    payload_bytes: int | None = Field(None, ge=0, description="request body size of the service times")
    overhead: OverheadFile | None = None
    downtime: DowntimeFile | None = None

    @field_validator("quantile_levels")
    @classmethod
    def _levels(cls, v: list[float]) -> list[float]:
        if tuple(v) != QUANTILE_LEVELS:
            raise ConfigError(f"must be {list(QUANTILE_LEVELS)}")
        return v

    def build(self, path: str | None = None) -> Profile:
        entries = {(e.slice, e.variant): ProfileEntry(e.slice, e.variant, tuple(e.service_ms), e.active_power_w,
                                                      e.samples) for e in self.entries}
        return Profile(
            gpu=self.gpu, service=self.service, idle_power_w=self.idle_power_w,
            partition_change_s=self.partition_change_s, model_load_s=dict(self.model_load_s), entries=entries,
            estimated=self.estimated, method=self.method, path=path, payload_bytes=self.payload_bytes,
            overhead=self.overhead.build() if self.overhead else None,
            downtime=self.downtime.build() if self.downtime else None,
            # files written before the field existed said so only in ``method``
            energy_estimated=self.energy_estimated if self.energy_estimated is not None
            else ("energy ESTIMATED" in self.method or None),
        )


def load_profile(path: str | Path) -> Profile:
    """Read a profile file; any problem is a one-line ConfigError naming the file and field."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"profile file not found: {path}")
    d = load_yaml_mapping(path)
    if d.get("format") != FORMAT:
        raise ConfigError(f"{path}: not a clover-rl profile (expected format: {FORMAT})")
    return parse_model(ProfileFile, d, str(path)).build(str(path))


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
