"""Carbon-intensity trace files: load + validate, resample, summarise, save.

Accepted file formats (plain or ``.gz``-compressed CSV, UTF-8, optional BOM):

* **timestamp + value**: a header row naming a time column (``timestamp``, ``time``,
  ``datetime``, ``date``, ``point_time`` ... or ``time_column=``) and a value column
  (``g_per_kwh``, ``carbon_intensity``, ``moer`` ... or ``value_column=``). Timestamps are ISO
  8601 (``2021-03-01T13:00Z``, ``2021-03-01 13:00:00+00:00``), other common date formats, or
  numbers (UNIX seconds). Naive timestamps are taken as UTC.
* **a single numeric column**: consecutive values ``interval_s`` apart (hourly by default)
  starting at ``start`` (default :data:`DEFAULT_START`, 2000-01-01T00:00Z, because such files
  carry no dates), e.g. the Clover artifact's ``CISO_March`` file (header + 49 numbers).
  A header-less column of numbers works too.

Leading ``# key: value`` comment lines carry metadata (``name``, ``provenance``,
``synthetic``); :func:`save_trace` writes them so a synthetic trace stays labelled.

Validation: empty/NaN/non-numeric/infinite/negative cells, unsorted or duplicate timestamps,
irregular steps and gaps raise :class:`~clover_rl.errors.TraceError` naming the file, the
1-based line number in the file and the offending value. Gaps of at most
:data:`MAX_FILLED_STEPS` missing steps are filled by linear interpolation with a
:class:`TraceWarning` (a short outage in a provider's feed should not stop an experiment);
larger gaps are errors (interpolating hours of grid data would be invented data).

Units: g CO2/kWh by default; ``units=`` (or a unit in the value column's name such as
``moer_kg_per_kwh`` or ``co2_lbs_mwh``) converts kg/kWh (x1000), t/MWh (x1000) and
lbs/MWh (x0.453592) to g/kWh.

PUE: traces hold grid intensity. Facility overhead is a multiplier applied once by whoever
turns energy into carbon (``carbon = E x CI x PUE``); :func:`apply_pue` exists for callers
that prefer an "effective intensity" trace, and must then not multiply by PUE again.
"""
from __future__ import annotations

import csv
import gzip
import io
import math
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from clover_rl.carbon.base import CarbonTrace
from clover_rl.errors import ConfigError, TraceError

DEFAULT_START = np.datetime64("2000-01-01T00:00:00", "s")
MAX_FILLED_STEPS = 2
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

TIME_COLUMN_NAMES = ("timestamp", "time", "datetime", "date", "point_time", "ts",
                     "datetime_utc", "timestamp_utc", "time_utc", "period", "period_start")
CARBON_VALUE_NAMES = ("g_per_kwh", "carbon_intensity", "intensity", "ci", "moer", "value",
                      "gco2_per_kwh", "co2_intensity", "carbon_intensity_g_per_kwh")
CARBON_VALUE_HINTS = ("intensity", "moer", "co2", "carbon", "kwh", "mwh")

_INTERPOLATED_RE = re.compile(r"interpolated (\d+) missing step")
_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}")


class TraceWarning(UserWarning):
    """Something in a trace file was repaired or looks suspicious (not fatal)."""


@dataclass
class RawSeries:
    """A validated, regular series read from a file, before any domain interpretation."""

    times: np.ndarray  # datetime64[s]
    values: np.ndarray  # float64, finite, >= 0, in file units
    column: str  # header of the value column ("" when there was none)
    timestamped: bool
    filled_steps: int = 0
    meta: dict[str, str] = field(default_factory=dict)


# ---------------------------------------------------------------------------------------
# reading


def _open_text(path: Path) -> list[str]:
    if not path.exists():
        raise TraceError(f"{path}: file not found")
    if path.is_dir():
        raise TraceError(f"{path}: is a directory, expected a CSV file")
    try:
        raw = path.read_bytes()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
        text = raw.decode("utf-8-sig")
    except (OSError, EOFError, gzip.BadGzipFile) as e:
        raise TraceError(f"{path}: cannot read ({e})") from None
    except UnicodeDecodeError as e:
        raise TraceError(f"{path}: not UTF-8 text (byte {e.start})") from None
    return text.splitlines()


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def _norm(name: str) -> str:
    return name.strip().lower()


def _pick_time_column(header: list[str], path: Path, time_column: str | None) -> int | None:
    names = [_norm(h) for h in header]
    if time_column is not None:
        if _norm(time_column) not in names:
            raise TraceError(f"{path}: no time column {time_column!r} (columns: {', '.join(header)})")
        return names.index(_norm(time_column))
    for cand in TIME_COLUMN_NAMES:
        if cand in names:
            return names.index(cand)
    for i, n in enumerate(names):
        if "time" in n or "date" in n:
            return i
    return None


def _pick_value_column(header: list[str], path: Path, value_column: str | None,
                       skip: int | None, exact: Sequence[str], hints: Sequence[str]) -> int:
    names = [_norm(h) for h in header]
    if value_column is not None:
        if _norm(value_column) not in names:
            raise TraceError(f"{path}: no value column {value_column!r} (columns: {', '.join(header)})")
        return names.index(_norm(value_column))
    rest = [i for i in range(len(names)) if i != skip]
    if len(rest) == 1:
        return rest[0]
    for cand in exact:
        if cand in names and names.index(cand) != skip:
            return names.index(cand)
    hinted = [i for i in rest if any(h in names[i] for h in hints)]
    if len(hinted) == 1:
        return hinted[0]
    raise TraceError(f"{path}: cannot tell which column holds the values "
                     f"(columns: {', '.join(header)}); pass value_column")


def _parse_value(cell: str, path: Path, line: int, what: str) -> float:
    cell = cell.strip()
    if cell == "":
        raise TraceError(f"{path}: line {line}: empty {what}")
    try:
        v = float(cell)
    except ValueError:
        raise TraceError(f"{path}: line {line}: non-numeric {what} {cell!r}") from None
    if math.isnan(v):
        raise TraceError(f"{path}: line {line}: NaN {what} {cell!r}")
    if math.isinf(v):
        raise TraceError(f"{path}: line {line}: infinite {what} {cell!r}")
    if v < 0:
        raise TraceError(f"{path}: line {line}: negative {what} {cell}")
    return v


def _parse_times(cells: list[str], lines: list[int], path: Path) -> np.ndarray:
    """ISO 8601 first (fast, unambiguous), then pandas' per-element guess, then UNIX seconds."""
    stripped = [c.strip() for c in cells]
    for c, ln in zip(stripped, lines):
        if c == "":
            raise TraceError(f"{path}: line {ln}: empty timestamp")
    if all(_is_number(c) for c in stripped):
        secs = np.array([float(c) for c in stripped])
        if not np.all(np.isfinite(secs)):
            i = int(np.argmin(np.isfinite(secs)))
            raise TraceError(f"{path}: line {lines[i]}: bad timestamp {stripped[i]!r}")
        return secs.astype("int64").astype("datetime64[s]")
    ser = pd.Series(stripped, dtype=object)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        parsed = pd.to_datetime(ser, utc=True, errors="coerce", format="ISO8601")
        bad = parsed.isna()
        if bad.any():
            parsed[bad] = pd.to_datetime(ser[bad], utc=True, errors="coerce", format="mixed")
    bad = parsed.isna().to_numpy()
    if bad.any():
        i = int(np.argmax(bad))
        raise TraceError(f"{path}: line {lines[i]}: cannot parse timestamp {stripped[i]!r}")
    naive = parsed.dt.tz_convert("UTC").dt.tz_localize(None)
    return naive.to_numpy().astype("datetime64[s]")


def _fmt_time(t: np.datetime64) -> str:
    return str(np.datetime64(t, "s")) + "Z"


def _regularise(times: np.ndarray, values: np.ndarray, lines: list[int],
                path: Path) -> tuple[np.ndarray, np.ndarray, int]:
    """Check order/duplicates, infer the step, fill small gaps; returns (times, values, filled)."""
    if len(times) < 2:
        return times, values, 0
    secs = times.astype("int64")
    d = np.diff(secs)
    if (d <= 0).any():
        i = int(np.argmax(d <= 0)) + 1
        if d[i - 1] == 0:
            raise TraceError(f"{path}: line {lines[i]}: duplicate timestamp {_fmt_time(times[i])} "
                             f"(also on line {lines[i - 1]})")
        raise TraceError(f"{path}: line {lines[i]}: timestamp {_fmt_time(times[i])} is earlier than "
                         f"{_fmt_time(times[i - 1])} on line {lines[i - 1]}; rows must be sorted")
    steps, counts = np.unique(d, return_counts=True)
    step = int(steps[np.argmax(counts)])  # most common spacing; ties -> the smallest
    odd = np.nonzero(d != step)[0]
    if len(odd) == 0:
        return times, values, 0
    new_t: list[np.ndarray] = []
    new_v: list[np.ndarray] = []
    prev = 0
    filled = 0
    filled_lines: list[int] = []
    for k in odd:
        gap = int(d[k])
        if gap % step:
            raise TraceError(f"{path}: line {lines[k + 1]}: irregular step: {_fmt_time(times[k + 1])} "
                             f"is {gap} s after line {lines[k]}, expected multiples of {step} s")
        missing = gap // step - 1
        if missing > MAX_FILLED_STEPS:
            raise TraceError(f"{path}: line {lines[k + 1]}: gap of {missing} missing steps between "
                             f"{_fmt_time(times[k])} (line {lines[k]}) and {_fmt_time(times[k + 1])}; "
                             f"at most {MAX_FILLED_STEPS} are interpolated")
        new_t.append(times[prev:k + 1])
        new_v.append(values[prev:k + 1])
        frac = np.arange(1, missing + 1) / (missing + 1)
        new_t.append(times[k] + (np.arange(1, missing + 1) * step).astype("timedelta64[s]"))
        new_v.append(values[k] + frac * (values[k + 1] - values[k]))
        prev = k + 1
        filled += missing
        filled_lines.append(lines[k + 1])
    new_t.append(times[prev:])
    new_v.append(values[prev:])
    shown = ", ".join(str(x) for x in filled_lines[:5]) + (" ..." if len(filled_lines) > 5 else "")
    warnings.warn(f"{path}: interpolated {filled} missing step(s) before line(s) {shown}",
                  TraceWarning, stacklevel=4)
    return np.concatenate(new_t), np.concatenate(new_v), filled


def read_series(path: str | Path, *, value_column: str | None = None,
                time_column: str | None = None, start: object = None,
                interval_s: float = 3600.0, what: str = "value",
                exact_names: Sequence[str] = CARBON_VALUE_NAMES,
                hint_names: Sequence[str] = CARBON_VALUE_HINTS) -> RawSeries:
    """Read and validate one numeric series from a CSV file (shared by carbon and rate traces).

    ``start``/``interval_s`` place a file without a time column on the clock.
    """
    p = Path(path)
    if interval_s is None or not interval_s >= 1:
        raise ConfigError(f"interval_s must be >= 1 second (got {interval_s!r})")
    all_lines = _open_text(p)
    meta: dict[str, str] = {}
    first = 0
    while first < len(all_lines) and (all_lines[first].startswith("#") or not all_lines[first].strip()):
        body = all_lines[first].lstrip("#").strip()
        if ":" in body:
            k, v = body.split(":", 1)
            meta[k.strip().lower()] = v.strip()
        first += 1
    last = len(all_lines)
    while last > first and not all_lines[last - 1].strip():
        last -= 1
    if first >= last:
        raise TraceError(f"{p}: empty file (no header and no data rows)")
    rows = list(csv.reader(io.StringIO("\n".join(all_lines[first:last]))))
    line_of = [first + 1 + i for i in range(len(rows))]  # 1-based line numbers in the file
    header = [c.strip() for c in rows[0]]
    while len(header) > 1 and header[-1] == "":
        header.pop()
    numeric_rest = all(_is_number(c) for c in header[1:])
    if all(_is_number(c) for c in header):  # header-less numbers
        header = ["value"] if len(header) == 1 else [f"column{i + 1}" for i in range(len(header))]
        has_header = False
    elif len(header) == 2 and numeric_rest and _DATE_RE.match(header[0]):  # header-less time,value
        header = ["time", "value"]
        has_header = False
    else:
        has_header = True
    data, data_lines = (rows[1:], line_of[1:]) if has_header else (rows, line_of)
    if not data:
        raise TraceError(f"{p}: no data rows after the header (line {line_of[0]})")

    tcol = _pick_time_column(header, p, time_column) if len(header) > 1 or time_column else None
    vcol = _pick_value_column(header, p, value_column, tcol, exact_names, hint_names)
    need = max(vcol, tcol if tcol is not None else 0) + 1

    vals = np.empty(len(data))
    tcells: list[str] = []
    for i, (row, ln) in enumerate(zip(data, data_lines)):
        if not row:
            raise TraceError(f"{p}: line {ln}: empty {what}")
        if len(row) < need:
            raise TraceError(f"{p}: line {ln}: expected {len(header)} columns, got {len(row)} "
                             f"({','.join(row)!r})")
        vals[i] = _parse_value(row[vcol], p, ln, what)
        if tcol is not None:
            tcells.append(row[tcol])

    if tcol is not None:
        times = _parse_times(tcells, data_lines, p)
        times, vals, filled = _regularise(times, vals, data_lines, p)
    else:
        t0 = _to_datetime64(start, "start") if start is not None else DEFAULT_START
        times = t0 + (np.arange(len(vals)) * int(round(interval_s))).astype("timedelta64[s]")
        filled = 0
    col = header[vcol] if has_header else ""
    return RawSeries(times, vals, col, tcol is not None, filled, meta)


def _to_datetime64(value: object, field_name: str) -> np.datetime64:
    try:
        ts = pd.Timestamp(value)  # type: ignore[arg-type]
    except (ValueError, TypeError):
        raise ConfigError(f"{field_name}: cannot parse time {value!r}") from None
    if ts is pd.NaT:
        raise ConfigError(f"{field_name}: cannot parse time {value!r}")
    if ts.tzinfo is not None:
        ts = ts.tz_convert("UTC").tz_localize(None)
    return np.datetime64(ts.to_datetime64(), "s")


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
    """Load and validate a carbon-intensity CSV (see module docstring) as g/kWh."""
    p = Path(path)
    given = canonical_units(units) if units else None  # a bad argument fails before any I/O
    raw = read_series(p, value_column=value_column, time_column=time_column, start=start,
                      interval_s=interval_s, what="carbon-intensity value")
    unit = given or units_from_column(raw.column) or "g/kWh"
    values = raw.values * UNIT_FACTORS[unit]
    finite_max = float(values.max()) if len(values) else 0.0
    if unit == "g/kWh" and units is None and 0 < finite_max <= 2.0:
        warnings.warn(f"{p}: values up to {finite_max:g} look like kg/kWh, read as g/kWh; "
                      f"pass units='kg/kWh' if so", TraceWarning, stacklevel=2)
    if unit == "g/kWh" and units is None and finite_max > 2000.0:
        warnings.warn(f"{p}: values up to {finite_max:g} are implausible in g/kWh; "
                      f"pass units='lbs/MWh' if so", TraceWarning, stacklevel=2)

    parts = [meta_prov] if (meta_prov := raw.meta.get("provenance")) else []
    col = f" column {raw.column!r}" if raw.column else ""
    conv = f", converted from {unit}" if unit != "g/kWh" else ""
    clock = "" if raw.timestamped else (f", untimed: {int(round(interval_s))} s steps from "
                                        f"{_fmt_time(raw.times[0])}")
    parts.append(f"file {p}{col}{conv}{clock}")
    if raw.filled_steps:
        parts.append(f"interpolated {raw.filled_steps} missing step(s)")
    synthetic = raw.meta.get("synthetic", "").lower() in ("1", "true", "yes")
    return CarbonTrace(times=raw.times, values=values.astype(np.float64),
                       name=name or raw.meta.get("name") or _stem(p),
                       provenance="; ".join(parts), synthetic=synthetic)


def _stem(p: Path) -> str:
    n = p.name
    for suf in (".gz", ".csv", ".txt"):
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
