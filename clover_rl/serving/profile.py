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

import math
from dataclasses import dataclass, field
from functools import cached_property
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


def _num(path: Path, where: str, x: object, positive: bool = False) -> float:
    try:
        v = float(x)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ConfigError(f"{path}: {where} is not a number: {x!r}") from None
    if not math.isfinite(v) or v < 0 or (positive and v == 0):
        raise ConfigError(f"{path}: {where} must be {'positive' if positive else 'non-negative'}, got {x!r}")
    return v


def _source(path: Path, where: str, d: dict) -> bool:
    """True when the section says ``source: estimated``."""
    src = d.get("source", "measured")
    if src not in ("measured", "estimated"):
        raise ConfigError(f"{path}: {where}.source must be measured or estimated, got {src!r}")
    return src == "estimated"


def _spread(path: Path, where: str, d: object) -> Spread:
    if not isinstance(d, dict):
        raise ConfigError(f"{path}: {where} must be a mapping with mean, p50, p95")
    return Spread(*(_num(path, f"{where}.{k}", d.get(k)) for k in ("mean", "p50", "p95")))


def _overhead(path: Path, d: object) -> Overhead | None:
    if d is None:
        return None
    if not isinstance(d, dict) or not isinstance(d.get("points"), list) or not d["points"]:
        raise ConfigError(f"{path}: overhead needs a non-empty 'points' list")
    pts = []
    for i, p in enumerate(d["points"]):
        w = f"overhead.points[{i}]"
        if not isinstance(p, dict):
            raise ConfigError(f"{path}: {w} must be a mapping")
        pts.append(OverheadPoint(
            int(_num(path, f"{w}.payload_bytes", p.get("payload_bytes"))),
            _spread(path, f"{w}.frontend_ms", p.get("frontend_ms")),
            _spread(path, f"{w}.dispatch_ms", p.get("dispatch_ms")),
            _spread(path, f"{w}.client_ms", p.get("client_ms", {"mean": 0, "p50": 0, "p95": 0})),
            int(_num(path, f"{w}.samples", p.get("samples", 0))),
        ))
    return Overhead(tuple(sorted(pts, key=lambda p: p.payload_bytes)), _source(path, "overhead", d))


def _downtime(path: Path, d: object) -> Downtime | None:
    if d is None:
        return None
    if not isinstance(d, dict):
        raise ConfigError(f"{path}: downtime must be a mapping")
    mbb = d.get("make_before_break")
    if not isinstance(mbb, bool):
        raise ConfigError(f"{path}: downtime.make_before_break must be true or false, got {mbb!r}")
    return Downtime(mbb, _num(path, "downtime.switch_s", d.get("switch_s", 0.0)),
                    _num(path, "downtime.worker_restart_s", d.get("worker_restart_s", 0.0)),
                    _source(path, "downtime", d))


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
        payload_bytes=int(_num(path, "payload_bytes", d["payload_bytes"])) if "payload_bytes" in d else None,
        overhead=_overhead(path, d.get("overhead")),
        downtime=_downtime(path, d.get("downtime")),
        # files written before the field existed said so only in ``method``
        energy_estimated=bool(d["energy_estimated"]) if "energy_estimated" in d
        else ("energy ESTIMATED" in str(d.get("method", "")) or None),
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
