"""Carbon-intensity traces: load a file as g/kWh, resample, summarise, save.

Reading and validation (CSV/JSON, ``.gz``, time and value columns, one-line errors naming
file/line/value, small-gap interpolation) live in :mod:`clover_rl.carbon.csv_series`;
published layouts (Electricity Maps, WattTime, SGIP, GB) and the unit plausibility check in
:mod:`clover_rl.carbon.layouts`. Callers take traces through
:func:`clover_rl.carbon.resolve.resolve_trace`, whose spec string
``PATH[,column=NAME][,time_column=NAME][,unit=UNIT]`` carries the choices made here.

Units: g CO2/kWh by default; ``units=``, a recognised layout's unit, or a unit in the value
column's name (``moer_kg_per_kwh``, ``co2_lbs_mwh``) converts kg/kWh (x1000), t/MWh (x1000)
and lbs/MWh (x0.453592, 1 lb = 453.592 g) to g/kWh.

PUE: traces hold grid intensity. Facility overhead is a multiplier applied once by whoever
turns energy into carbon (``carbon = E x CI x PUE``); :func:`apply_pue` exists for callers
that prefer an "effective intensity" trace, and must then not multiply by PUE again.
"""
from __future__ import annotations

import gzip
import io
import math
import re
from datetime import datetime
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from clover_rl.carbon.base import CarbonTrace
from clover_rl.carbon.csv_series import (  # noqa: F401  (re-exported: one import site for callers)
    DEFAULT_START,
    MAX_FILLED_STEPS,
    RawSeries,
    TraceWarning,
    _fmt_time,
    _to_datetime64,
    read_series,
)
from clover_rl.carbon.layouts import Layout, check_plausible, detect_layout
from clover_rl.errors import ConfigError, TraceError

LBS_PER_MWH_IN_G_PER_KWH = 0.453592

UNIT_FACTORS: dict[str, float] = {
    "g/kWh": 1.0,
    "kg/kWh": 1000.0,
    "t/MWh": 1000.0,
    "lbs/MWh": LBS_PER_MWH_IN_G_PER_KWH,
}
_UNIT_ALIASES = {
    "g/kwh": "g/kWh", "gram/kwh": "g/kWh", "grams/kwh": "g/kWh",
    "kg/kwh": "kg/kWh",
    "t/mwh": "t/MWh", "tonne/mwh": "t/MWh", "tonnes/mwh": "t/MWh",
    "lbs/mwh": "lbs/MWh", "lb/mwh": "lbs/MWh",
}

CARBON_VALUE_NAMES = ("g_per_kwh", "carbon_intensity", "intensity", "ci", "moer", "value",
                      "gco2_per_kwh", "co2_intensity", "carbon_intensity_g_per_kwh")
CARBON_VALUE_HINTS = ("intensity", "moer", "co2", "carbon", "kwh", "mwh")
#: how to name a column, said by "cannot tell which column" errors
COLUMN_HINT = "add ',column=NAME' to the trace (e.g. --carbon-trace 'FILE,column=NAME')"

_INTERPOLATED_RE = re.compile(r"interpolated (\d+) missing step")


def canonical_units(units: str) -> str:
    """``'kgCO2/kWh'``, ``'kg_per_kwh'``, ``'lbs_mwh'`` ... -> a key of :data:`UNIT_FACTORS`."""
    s = re.sub(r"co2e?|\s", "", units.strip().lower())
    s = s.replace("_per_", "/").replace("-per-", "/").replace("_", "/").replace("-", "/")
    if s in _UNIT_ALIASES:
        return _UNIT_ALIASES[s]
    raise ConfigError(f"units: unknown unit {units!r} (known: {', '.join(UNIT_FACTORS)})")


def units_from_column(name: str) -> str | None:
    """The unit named in a column header (``moer_kg_per_kwh`` -> kg/kWh), or None."""
    n = name.lower()
    toks = [t for t in re.split(r"[^a-z0-9]+", n) if t]
    has_lb = any(t.startswith("lb") for t in toks)
    if has_lb and "mwh" in n:
        return "lbs/MWh"
    if any(t.startswith("kg") for t in toks) and "kwh" in n:
        return "kg/kWh"
    if any(t in ("t", "tonne", "tonnes") for t in toks) and "mwh" in n:
        return "t/MWh"
    if any(t in ("g", "gco2", "gco2e", "grams") or t.startswith("gco2") for t in toks) and "kwh" in n:
        return "g/kWh"
    return None


def load_trace(path: str | Path, *, value_column: str | None = None,
               time_column: str | None = None, units: str | None = None,
               name: str | None = None, start: object = None,
               interval_s: float = 3600.0) -> CarbonTrace:
    """Load and validate a carbon-intensity file (module doc) as g/kWh.

    ``value_column`` is a header name or, for a recognised layout, a choice such as
    ``direct``/``lca`` (Electricity Maps) or ``forecast`` (GB). The unit is ``units`` if
    given, else the layout's, else one named in the column header, else g/kWh; a maximum
    implausible in that unit raises :class:`TraceError` naming the likely unit.
    """
    p = Path(path)
    given = canonical_units(units) if units else None  # a bad argument fails before any I/O
    found: list[Layout] = []

    def choose(header: list[str]) -> tuple[str | None, str | None, str | None]:
        lay = detect_layout(header)
        if lay is None:
            return None, None, None
        found.append(lay)
        col = lay.column_for(value_column)
        return col, lay.time_column, lay.fallback_column if col == lay.value_column else None

    raw = read_series(p, value_column=value_column, time_column=time_column, start=start,
                      interval_s=interval_s, what="carbon-intensity value",
                      exact_names=CARBON_VALUE_NAMES, hint_names=CARBON_VALUE_HINTS,
                      choose=choose, column_hint=COLUMN_HINT)
    layout = found[0] if found and raw.column in found[0].choices.values() else None
    unit = given or (layout.unit if layout else None) or units_from_column(raw.column) or "g/kWh"
    if len(raw.values):
        check_plausible(p, float(raw.values.max()), unit, UNIT_FACTORS[unit], given is not None,
                        UNIT_FACTORS)
    values = raw.values * UNIT_FACTORS[unit]

    parts = [meta_prov] if (meta_prov := raw.meta.get("provenance")) else []
    if layout is not None:
        what = f"{layout.describe(raw.column)}"
    else:
        what = f"column {raw.column!r}" if raw.column else "single column"
    source = "given" if given else ("layout" if layout else "assumed")
    conv = f"{unit} ({source})" + (", converted to g/kWh" if unit != "g/kWh" else "")
    clock = "" if raw.timestamped else (f", untimed: {int(round(interval_s))} s steps from "
                                        f"{_fmt_time(raw.times[0])}")
    parts.append(f"file {p}: {what}, {conv}{clock}")
    if raw.fallback_rows:
        parts.append(f"{raw.fallback_rows} row(s) from {layout.fallback_column!r}"
                     if layout and layout.fallback_column else f"{raw.fallback_rows} fallback row(s)")
    if raw.filled_steps:
        parts.append(f"interpolated {raw.filled_steps} missing step(s)")
    synthetic = raw.meta.get("synthetic", "").lower() in ("1", "true", "yes")
    return CarbonTrace(times=raw.times, values=values.astype(np.float64),
                       name=name or raw.meta.get("name") or _stem(p),
                       provenance="; ".join(parts), synthetic=synthetic)


def _stem(p: Path) -> str:
    n = p.name
    for suf in (".gz", ".csv", ".txt", ".json"):
        if n.lower().endswith(suf):
            n = n[: -len(suf)]
    return n


# ---------------------------------------------------------------------------------------
# transforming


def resample(trace: CarbonTrace, interval_s: float,
             upsample: Literal["step", "linear"] = "step") -> CarbonTrace:
    """The trace on a new regular grid of ``interval_s`` starting at its first timestamp.

    Each sample holds for one resolution step. Output values are time-weighted means over
    each output step (so downsampling averages and a trailing partial step averages what it
    covers); with ``upsample="linear"`` finer steps interpolate between sample times instead.
    """
    if not interval_s or interval_s < 1:
        raise ConfigError(f"interval_s must be >= 1 second (got {interval_s!r})")
    if upsample not in ("step", "linear"):
        raise ConfigError(f"upsample must be 'step' or 'linear' (got {upsample!r})")
    n = len(trace)
    if n == 0:
        return trace
    res = trace.resolution_s
    step = int(round(interval_s))
    if step == int(round(res)):
        return trace
    t_rel = (trace.times - trace.times[0]).astype("timedelta64[s]").astype(np.float64)
    span = n * res
    n_out = int(math.ceil(span / step - 1e-9))
    out_rel = np.arange(n_out, dtype=np.float64) * step
    if upsample == "linear" and step < res:
        out = np.interp(out_rel, t_rel, trace.values)
    else:
        edges = np.append(t_rel, span)
        cum = np.concatenate([[0.0], np.cumsum(trace.values * np.diff(edges))])
        lo = out_rel
        hi = np.minimum(out_rel + step, span)
        out = (np.interp(hi, edges, cum) - np.interp(lo, edges, cum)) / (hi - lo)
    times = trace.times[0] + out_rel.astype("int64").astype("timedelta64[s]")
    prov = f"{trace.provenance}; resampled to {step} s" if trace.provenance else f"resampled to {step} s"
    return CarbonTrace(times, out, trace.name, prov, trace.synthetic)


def apply_pue(trace: CarbonTrace, pue: float) -> CarbonTrace:
    """Effective intensity ``CI x PUE`` (g CO2 per kWh of IT energy); do not apply PUE twice."""
    if not (isinstance(pue, (int, float)) and 1.0 <= pue <= 5.0):
        raise ConfigError(f"pue must be a number in [1, 5] (got {pue!r})")
    return CarbonTrace(trace.times, trace.values * float(pue), trace.name,
                       f"{trace.provenance}; x PUE {pue:g}".lstrip("; "), trace.synthetic)


def summarize(trace: CarbonTrace) -> dict:
    """Span, resolution, statistics, gaps and provenance, as JSON-ready plain types."""
    n = len(trace)
    res = trace.resolution_s
    gaps = 0
    if n >= 2:
        d = np.diff(trace.times.astype("int64"))
        gaps = int(np.sum(np.maximum(np.round(d / res) - 1, 0)))
    m = _INTERPOLATED_RE.search(trace.provenance)
    out: dict = {
        "name": trace.name,
        "n": n,
        "start": _fmt_time(trace.times[0]) if n else None,
        "end": _fmt_time(trace.times[-1]) if n else None,
        "resolution_s": res,
        "duration_h": n * res / 3600.0,
        "units": "g/kWh",
        "min": float(np.min(trace.values)) if n else None,
        "mean": float(np.mean(trace.values)) if n else None,
        "max": float(np.max(trace.values)) if n else None,
        "std": float(np.std(trace.values)) if n else None,
        "gaps": gaps,
        "interpolated_steps": int(m.group(1)) if m else 0,
        "synthetic": bool(trace.synthetic),
        "provenance": trace.provenance,
    }
    return out


# ---------------------------------------------------------------------------------------
# writing


def _fmt_value(v: float, decimals: int | None) -> str:
    if decimals is None:
        return repr(float(v))
    s = f"{v:.{decimals}f}"
    if "." in s:
        s = s.rstrip("0").rstrip(".")
    return s


def save_trace(trace: CarbonTrace, path: str | Path, *, metadata: bool = True,
               decimals: int | None = None) -> Path:
    """Write ``timestamp,g_per_kwh`` CSV (gzip if the name ends in ``.gz``) that
    :func:`load_trace` reads back; ``metadata`` prefixes ``# name/provenance/synthetic``
    comment lines (read ``pd.read_csv(path, comment="#")`` elsewhere); ``decimals=None``
    keeps full precision."""
    p = Path(path)
    buf = io.StringIO()
    if metadata:
        buf.write(f"# name: {_one_line(trace.name)}\n")
        if trace.provenance:
            buf.write(f"# provenance: {_one_line(trace.provenance)}\n")
        buf.write(f"# synthetic: {'true' if trace.synthetic else 'false'}\n")
    buf.write("timestamp,g_per_kwh\n")
    stamps = np.datetime_as_string(trace.times.astype("datetime64[s]"), unit="s")
    for t, v in zip(stamps, trace.values):
        buf.write(f"{t}Z,{_fmt_value(v, decimals)}\n")
    data = buf.getvalue().encode()
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        if p.name.endswith(".gz"):
            with open(p, "wb") as f, gzip.GzipFile(filename="", mode="wb", fileobj=f,
                                                   mtime=0, compresslevel=9) as g:
                g.write(data)
        else:
            p.write_bytes(data)
    except OSError as e:
        raise TraceError(f"{p}: cannot write ({e.strerror or e})") from None
    return p


def _one_line(s: str) -> str:
    return " ".join(str(s).split())


def as_datetime(t: np.datetime64) -> datetime:
    """A trace timestamp as an aware UTC ``datetime`` (for CarbonReading and friends)."""
    return pd.Timestamp(t).tz_localize("UTC").to_pydatetime()
