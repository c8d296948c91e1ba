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
from typing import Any

import numpy as np

from clover_rl.errors import ConfigError, TraceError
from clover_rl.workload.rate_trace import RATE_VALUE_NAMES, RateTrace, load_rate_trace, rate_units
from clover_rl.workload.request_trace import (
    TIME_NAMES,
    RequestReplay,
    _read_text,
    load_request_times,
)
from clover_rl.workload.workload import ConstantRate, DiurnalRate, TraceRate, Workload, _num

_KEYS = {
    "constant": {"rate_rps", "inter_arrival_s"},
    "diurnal": {"mean_rps", "amplitude", "peak_hour", "start_hour"},
    "trace": {"path", "format", "wrap", "value_column", "time_column", "units", "interval_s",
              "bin_s", "replay", "rates"},
}
_ALL_KEYS = {"kind", "scale"} | set().union(*_KEYS.values())
FORMATS = ("auto", "rates", "requests")
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


def _trace(cfg: Mapping[str, Any], get: Any, where: str, base_dir: str | Path | None) -> Workload:
    wrap = get("wrap", True)
    if not isinstance(wrap, bool):
        raise ConfigError(f"{where}.wrap: expected true or false (got {wrap!r})")
    inline = get("rates")
    if inline is not None:
        if get("path") is not None:
            raise ConfigError(f"{where}: give path or rates, not both")
        if not isinstance(inline, (list, tuple)) or not inline:
            raise ConfigError(f"{where}.rates: expected a non-empty list of req/s (got {inline!r})")
        vals = np.array([_num(f"{where}.rates[{i}]", v, lo=0.0) for i, v in enumerate(inline)])
        step = _num(f"{where}.interval_s", get("interval_s", 3600.0), lo=1.0)
        times = np.datetime64("2000-01-01T00:00:00", "s") + (np.arange(len(vals)) * step).astype("timedelta64[s]")
        return TraceRate(RateTrace(times, vals, "inline", "inline rates"), wrap=wrap)
    raw_path = get("path", required=True)
    if not isinstance(raw_path, (str, Path)):
        raise ConfigError(f"{where}.path: expected a file path (got {raw_path!r})")
    path = Path(raw_path).expanduser()
    if base_dir is not None and not path.is_absolute() and (Path(base_dir) / path).exists():
        path = Path(base_dir) / path
    if not path.exists():
        raise ConfigError(f"{where}.path: {path}: file not found")
    path = path.resolve()
    fmt = get("format", "auto")
    if fmt not in FORMATS:
        raise ConfigError(f"{where}.format: expected one of {', '.join(FORMATS)} (got {fmt!r})")
    if fmt == "auto":
        fmt = detect_format(path)
    if fmt == "requests":
        opts = {k: cfg[k] for k in ("time_column",) if cfg.get(k) is not None}
        times = load_request_times(path, time_column=get("time_column"))
        return RequestReplay(times, bin_s=_num(f"{where}.bin_s", get("bin_s", 60.0), lo=1e-3),
                             replay=str(get("replay", "arrivals")), wrap=wrap, options=opts)
    units = get("units")
    opts = {k: cfg[k] for k in ("value_column", "time_column", "interval_s") if cfg.get(k) is not None}
    tr = load_rate_trace(path, value_column=get("value_column"), time_column=get("time_column"),
                         units=None if units is None else rate_units(units, f"{where}.units"),
                         interval_s=get("interval_s", 3600.0))
    if units is not None:  # else the file itself says (comment line or column name), again on reload
        opts["units"] = rate_units(units)
    return TraceRate(tr, wrap=wrap, source=str(path), options=opts)


def workload_from_config(cfg: Mapping[str, Any] | Any, *, base_dir: str | Path | None = None,
                         where: str = "workload") -> Workload:
    """A Workload from a config mapping (or a pydantic model / an existing Workload).

    Keys of other kinds are ignored (a serialised scenario carries all of them, mostly None);
    unknown keys, a missing file and invalid values raise ConfigError/TraceError naming the
    field. A relative trace ``path`` is resolved against ``base_dir`` when that file exists;
    the built workload's ``to_config()`` holds the absolute path, so it reloads anywhere.
    """
    if isinstance(cfg, Workload):
        return cfg
    if hasattr(cfg, "model_dump"):
        cfg = cfg.model_dump()
    if not isinstance(cfg, Mapping):
        raise ConfigError(f"{where}: expected a mapping with a 'kind' (got {cfg!r})")
    unknown = sorted(str(k) for k in cfg if k not in _ALL_KEYS)
    if unknown:
        raise ConfigError(f"{where}.{unknown[0]}: unknown field (known: {', '.join(sorted(_ALL_KEYS))})")
    kind = cfg.get("kind")
    if kind not in _KEYS:
        raise ConfigError(f"{where}.kind: expected one of {', '.join(_KEYS)} (got {kind!r})")

    def get(key: str, default: Any = None, *, required: bool = False) -> Any:
        v = cfg.get(key)
        if v is None:
            if required:
                raise ConfigError(f"{where}.{key}: required for kind {kind!r}")
            return default
        return v

    w: Workload
    if kind == "constant":
        rate, ia = get("rate_rps"), get("inter_arrival_s")
        if rate is not None and ia is not None:
            raise ConfigError(f"{where}: give rate_rps or inter_arrival_s, not both")
        if ia is not None:
            rate = 1.0 / _num(f"{where}.inter_arrival_s", ia, lo=0.0, lo_open=True)
        elif rate is None:
            raise ConfigError(f"{where}.rate_rps: required for kind 'constant' (or inter_arrival_s)")
        w = ConstantRate(_num(f"{where}.rate_rps", rate, lo=0.0))
    elif kind == "diurnal":
        w = DiurnalRate(
            mean_rps=_num(f"{where}.mean_rps", get("mean_rps", required=True), lo=0.0),
            amplitude=_num(f"{where}.amplitude", get("amplitude", 0.5), lo=0.0, hi=1.0),
            peak_hour=_num(f"{where}.peak_hour", get("peak_hour", 14.0), lo=0.0, hi=24.0, hi_open=True),
            start_hour=_num(f"{where}.start_hour", get("start_hour", 0.0), lo=0.0, hi=24.0, hi_open=True),
        )
    else:
        w = _trace(cfg, get, where, base_dir)
    factor = get("scale")
    if factor is not None and float(factor) != 1.0:
        w = w.scale(_num(f"{where}.scale", factor, lo=0.0))
    return w
