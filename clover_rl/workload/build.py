"""Workloads from configuration: the one builder behind scenarios, the env, evaluation,
training and the deploy load generator.

Config form (scenario ``workload:`` block; every key is documented in ``WorkloadSpec``)::

    {kind: constant, rate_rps: 2.5}                  # or inter_arrival_s: 0.4
    {kind: diurnal, mean_rps: 2.5, amplitude: 0.5, peak_hour: 14}
    {kind: trace, path: rates.csv}                   # rate trace: timestamp,rate (units: rps|rpm|rph)
    {kind: trace, path: requests.csv}                # per-request trace: TIMESTAMP,... one row each
    {kind: trace, rates: [2.0, 3.5, 1.0], interval_s: 3600}   # inline rate trace
    # any kind: scale: 1.5  (multiplies the rate)

``format`` (auto, rates, requests) says what a trace file holds; ``auto`` takes a file with a
rate column (``rate``, ``rps``, ``qps``, ``req...``) or a single column of numbers as rates, and a
file with a timestamp column but no rate column as one row per request.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, StrictBool, model_validator

from clover_rl.config_io import Finite as _Num
from clover_rl.config_io import parse_model
from clover_rl.errors import ConfigError, TraceError
from clover_rl.workload.rate_trace import RATE_VALUE_NAMES, RateTrace, load_rate_trace, rate_units
from clover_rl.workload.request_trace import (
    TIME_NAMES,
    RequestReplay,
    _read_text,
    load_request_times,
)
from clover_rl.workload.workload import ConstantRate, DiurnalRate, TraceRate, Workload

# a rate column: a word rate/rps/qps/rpm/rph/requests_per (not "GeneratedTokens", which contains "rate")
_RATE_WORD = re.compile(r"(^|[^a-z])(rate|rps|qps|rpm|rph|req|requests?_per)([^a-z]|$)")


def detect_format(path: Path) -> str:
    """``rates`` or ``requests`` for a trace file (see the module docstring)."""
    lines = [ln for ln in _read_text(path).splitlines() if ln.strip() and not ln.startswith("#")]
    if not lines:
        raise TraceError(f"{path}: empty file (no header and no data rows)")
    header = [c.strip().lower() for c in lines[0].split(",")]
    has_rate = any(c in RATE_VALUE_NAMES or _RATE_WORD.search(c) for c in header)
    has_time = any(c in TIME_NAMES for c in header)
    return "requests" if has_time and not has_rate else "rates"


class WorkloadSpec(BaseModel):
    """The request load as data (the scenario's ``workload:`` block, env ``options["workload"]``,
    ``Workload.to_config()``); :meth:`build` makes the :class:`Workload`. Fields of other kinds
    are ignored (a serialised scenario carries all of them, mostly None)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: Literal["constant", "diurnal", "trace"] = Field(description="constant, diurnal or trace")
    rate_rps: _Num | None = Field(None, gt=0, description="constant: req/s")
    inter_arrival_s: _Num | None = Field(None, gt=0, description="constant: mean gap (s), instead of rate_rps")
    mean_rps: _Num | None = Field(None, gt=0, description="diurnal: mean req/s")
    amplitude: _Num | None = Field(None, ge=0, le=1, description="diurnal: relative swing (default 0.5)")
    peak_hour: _Num = Field(14.0, ge=0, lt=24, description="diurnal: hour of the peak (UTC of the carbon trace)")
    start_hour: _Num = Field(0.0, ge=0, lt=24, description="diurnal: hour of day at t = 0")
    path: str | None = Field(None, description="trace: CSV path (relative to the scenario file)")
    format: Literal["auto", "rates", "requests"] | None = Field(
        None, description="trace: rates (timestamp,rate) or requests (one row per request); default auto")
    units: str | None = Field(None, description="rate trace: rps, rpm or rph (default: as the file says, else rps)")
    value_column: str | None = Field(None, description="rate trace: the rate column")
    time_column: str | None = Field(None, description="trace: the timestamp column")
    interval_s: _Num | None = Field(None, ge=1, description="rate trace without timestamps: step (s, default 3600)")
    bin_s: _Num | None = Field(None, gt=0, description="request trace: rate aggregation bin (s, default 60)")
    replay: Literal["arrivals", "rates"] | None = Field(
        None, description="request trace: replay the recorded arrivals (default) or Poisson at the binned rate")
    wrap: StrictBool | None = Field(None, description="trace: repeat past the end (default true)")
    rates: list[Annotated[float, Field(ge=0, allow_inf_nan=False)]] | None = Field(
        None, min_length=1, description="trace: inline rates (req/s), interval_s apart")
    scale: _Num | None = Field(None, ge=0, description="multiplies the rate")

    @model_validator(mode="after")
    def _kind_fields(self) -> WorkloadSpec:
        if self.kind == "constant":
            if self.rate_rps is not None and self.inter_arrival_s is not None:
                raise ConfigError("give rate_rps or inter_arrival_s, not both")
            if self.rate_rps is None and self.inter_arrival_s is None:
                raise ConfigError("rate_rps: required for kind 'constant' (or inter_arrival_s)")
        elif self.kind == "diurnal" and self.mean_rps is None:
            raise ConfigError("mean_rps: required for kind 'diurnal'")
        elif self.kind == "trace":
            if self.path is not None and self.rates is not None:
                raise ConfigError("give path or rates, not both")
            if self.path is None and self.rates is None:
                raise ConfigError("path: required for kind 'trace' (or inline rates)")
            if self.units is not None:
                rate_units(self.units, "units")
        return self

    @classmethod
    def parse(cls, cfg: object, where: str = "workload") -> WorkloadSpec:
        """Validate a mapping; a problem is a one-line ConfigError ``{where}: field F: ...``."""
        if isinstance(cfg, WorkloadSpec):
            return cfg
        if hasattr(cfg, "model_dump"):
            cfg = cfg.model_dump()
        if not isinstance(cfg, Mapping):
            raise ConfigError(f"{where}: expected a mapping with a 'kind' (got {cfg!r})")
        return parse_model(cls, cfg, where)

    def build(self, base_dir: str | Path | None = None, where: str = "workload") -> Workload:
        """The workload (cached; a trace file is read once per path). A relative trace ``path``
        is resolved against ``base_dir`` when that file exists."""
        key = (self.model_dump_json(), str(base_dir))
        if key not in _WORKLOADS:
            _WORKLOADS[key] = _build(self, base_dir, where)
        return _WORKLOADS[key]

    def mean_rate(self) -> float:
        """The nominal rate (req/s) the SLA and the references are measured at."""
        return self.build().nominal_rate()


_WORKLOADS: dict[tuple[str, str], Workload] = {}


def _build(spec: WorkloadSpec, base_dir: str | Path | None, where: str) -> Workload:
    w: Workload
    if spec.kind == "constant":
        w = ConstantRate(spec.rate_rps if spec.rate_rps is not None else 1.0 / spec.inter_arrival_s)  # type: ignore[operator]
    elif spec.kind == "diurnal":
        w = DiurnalRate(mean_rps=spec.mean_rps, amplitude=0.5 if spec.amplitude is None else spec.amplitude,  # type: ignore[arg-type]
                        peak_hour=spec.peak_hour, start_hour=spec.start_hour)
    else:
        w = _trace(spec, base_dir, where)
    if spec.scale is not None and spec.scale != 1.0:
        w = w.scale(spec.scale)
    return w


def _trace(spec: WorkloadSpec, base_dir: str | Path | None, where: str) -> Workload:
    wrap = True if spec.wrap is None else spec.wrap
    if spec.rates is not None:
        vals = np.asarray(spec.rates, dtype=float)
        step = spec.interval_s or 3600.0
        times = np.datetime64("2000-01-01T00:00:00", "s") + (np.arange(len(vals)) * step).astype("timedelta64[s]")
        return TraceRate(RateTrace(times, vals, "inline", "inline rates"), wrap=wrap)
    path = Path(str(spec.path)).expanduser()
    if base_dir is not None and not path.is_absolute() and (Path(base_dir) / path).exists():
        path = Path(base_dir) / path
    if not path.exists():
        raise ConfigError(f"field {where}.path: {path}: file not found")
    path = path.resolve()
    fmt = spec.format or "auto"
    if fmt == "auto":
        fmt = detect_format(path)
    if fmt == "requests":
        opts = {"time_column": spec.time_column} if spec.time_column is not None else {}
        times = load_request_times(path, time_column=spec.time_column)
        return RequestReplay(times, bin_s=spec.bin_s or 60.0, replay=spec.replay or "arrivals", wrap=wrap,
                             options=opts)
    opts = {k: v for k, v in (("value_column", spec.value_column), ("time_column", spec.time_column),
                              ("interval_s", spec.interval_s)) if v is not None}
    units = None if spec.units is None else rate_units(spec.units)
    tr = load_rate_trace(path, value_column=spec.value_column, time_column=spec.time_column, units=units,
                         interval_s=spec.interval_s or 3600.0)
    if units is not None:  # else the file itself says (comment line or column name), again on reload
        opts["units"] = units
    return TraceRate(tr, wrap=wrap, source=str(path), options=opts)


def workload_from_config(cfg: Mapping[str, Any] | Any, *, base_dir: str | Path | None = None,
                         where: str = "workload") -> Workload:
    """A Workload from a config mapping (or a :class:`WorkloadSpec` / an existing Workload).

    Unknown keys, a missing file and invalid values raise ConfigError/TraceError naming the
    field; the built workload's ``to_config()`` holds the absolute path, so it reloads anywhere.
    """
    if isinstance(cfg, Workload):
        return cfg
    return WorkloadSpec.parse(cfg, where).build(base_dir, where)
