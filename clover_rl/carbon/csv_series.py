"""Reading one numeric series from a CSV or JSON file, validated (carbon and rate traces).

Formats (plain or ``.gz``, UTF-8, optional BOM):

* **CSV with a header** naming a time column and a value column (picked by name, by hint, by
  a caller's ``choose`` hook that recognises published layouts, or given explicitly).
  Timestamps are ISO 8601, other common date formats, or numbers (UNIX seconds); naive ones
  are UTC.
* **a single numeric column** (with or without a header): consecutive values ``interval_s``
  apart from ``start`` (default :data:`DEFAULT_START`, 2000-01-01T00:00Z).
* **JSON**: a list of records, or an object whose ``data``/``history`` member is one (one
  level of ``{"data": [{"data": [...]}]}`` nesting is followed, as in the GB regional API).
  Nested objects are flattened to dotted names (``intensity.actual``); records are numbered
  from 1 in place of line numbers.

Leading ``# key: value`` comment lines carry metadata (``name``, ``provenance``,
``synthetic``).

Validation: empty/NaN/non-numeric/infinite/negative cells, unsorted or duplicate
timestamps, irregular steps and gaps raise :class:`~clover_rl.errors.TraceError` naming the
file, the 1-based line and the value. Gaps of at most :data:`MAX_FILLED_STEPS` missing steps
are filled by linear interpolation with a :class:`TraceWarning` (a short outage in a feed
should not stop an experiment); larger gaps are errors (that would be invented data).
"""
from __future__ import annotations

import csv
import gzip
import io
import json
import math
import re
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from clover_rl.errors import ConfigError, TraceError

DEFAULT_START = np.datetime64("2000-01-01T00:00:00", "s")
MAX_FILLED_STEPS = 2

TIME_COLUMN_NAMES = ("timestamp", "time", "datetime", "date", "point_time", "ts",
                     "datetime_utc", "timestamp_utc", "time_utc", "period", "period_start",
                     "datetime (utc)", "from")
_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}")

#: ``choose(header) -> (value_column, time_column, fallback_column)``: a caller's pick of
#: columns for a recognised layout; any may be None (then the generic rules apply)
Chooser = Callable[[list[str]], "tuple[str | None, str | None, str | None]"]


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
    header: list[str] = field(default_factory=list)
    fallback_rows: int = 0  # rows whose value came from the fallback column


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
                       skip: int | None, exact: Sequence[str], hints: Sequence[str],
                       column_hint: str) -> int:
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
                     f"(columns: {', '.join(header)}); {column_hint}")


def _parse_value(cell: str, path: Path, line: int, what: str, where: str = "line") -> float:
    cell = cell.strip()
    if cell == "":
        raise TraceError(f"{path}: {where} {line}: empty {what}")
    try:
        v = float(cell)
    except ValueError:
        raise TraceError(f"{path}: {where} {line}: non-numeric {what} {cell!r}") from None
    if math.isnan(v):
        raise TraceError(f"{path}: {where} {line}: NaN {what} {cell!r}")
    if math.isinf(v):
        raise TraceError(f"{path}: {where} {line}: infinite {what} {cell!r}")
    if v < 0:
        raise TraceError(f"{path}: {where} {line}: negative {what} {cell}")
    return v


def _parse_times(cells: list[str], lines: list[int], path: Path, where: str = "line") -> np.ndarray:
    """ISO 8601 first (fast, unambiguous), then pandas' per-element guess, then UNIX seconds."""
    stripped = [c.strip() for c in cells]
    for c, ln in zip(stripped, lines):
        if c == "":
            raise TraceError(f"{path}: {where} {ln}: empty timestamp")
    if all(_is_number(c) for c in stripped):
        secs = np.array([float(c) for c in stripped])
        if not np.all(np.isfinite(secs)):
            i = int(np.argmin(np.isfinite(secs)))
            raise TraceError(f"{path}: {where} {lines[i]}: bad timestamp {stripped[i]!r}")
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
        raise TraceError(f"{path}: {where} {lines[i]}: cannot parse timestamp {stripped[i]!r}")
    naive = parsed.dt.tz_convert("UTC").dt.tz_localize(None)
    return naive.to_numpy().astype("datetime64[s]")


def _fmt_time(t: np.datetime64) -> str:
    return str(np.datetime64(t, "s")) + "Z"


def _regularise(times: np.ndarray, values: np.ndarray, lines: list[int],
                path: Path, where: str = "line") -> tuple[np.ndarray, np.ndarray, int]:
    """Check order/duplicates, infer the step, fill small gaps; returns (times, values, filled)."""
    if len(times) < 2:
        return times, values, 0
    secs = times.astype("int64")
    d = np.diff(secs)
    if (d <= 0).any():
        i = int(np.argmax(d <= 0)) + 1
        if d[i - 1] == 0:
            raise TraceError(f"{path}: {where} {lines[i]}: duplicate timestamp {_fmt_time(times[i])} "
                             f"(also on {where} {lines[i - 1]})")
        raise TraceError(f"{path}: {where} {lines[i]}: timestamp {_fmt_time(times[i])} is earlier than "
                         f"{_fmt_time(times[i - 1])} on {where} {lines[i - 1]}; rows must be sorted")
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
            raise TraceError(f"{path}: {where} {lines[k + 1]}: irregular step: {_fmt_time(times[k + 1])} "
                             f"is {gap} s after line {lines[k]}, expected multiples of {step} s")
        missing = gap // step - 1
        if missing > MAX_FILLED_STEPS:
            raise TraceError(f"{path}: {where} {lines[k + 1]}: gap of {missing} missing steps between "
                             f"{_fmt_time(times[k])} ({where} {lines[k]}) and {_fmt_time(times[k + 1])}; "
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
    warnings.warn(f"{path}: interpolated {filled} missing step(s) before {where}(s) {shown}",
                  TraceWarning, stacklevel=4)
    return np.concatenate(new_t), np.concatenate(new_v), filled


def _json_rows(text: str, path: Path) -> tuple[list[list[str]], list[int]]:
    """A JSON list of records as CSV-like rows (header first) and record numbers."""
    try:
        doc = json.loads(text)
    except ValueError as e:
        raise TraceError(f"{path}: not valid JSON ({e})") from None
    recs = doc
    for _ in range(3):  # {"data": [...]}, {"history": [...]}, {"data": [{"data": [...]}]}
        if isinstance(recs, dict):
            inner = next((recs[k] for k in ("data", "history") if isinstance(recs.get(k), list)), None)
            if inner is None:
                break
            recs = inner
        elif isinstance(recs, list) and len(recs) == 1 and isinstance(recs[0], dict) \
                and isinstance(recs[0].get("data"), list):
            recs = recs[0]["data"]
        else:
            break
    if not isinstance(recs, list) or not recs or not all(isinstance(r, dict) for r in recs):
        raise TraceError(f"{path}: JSON holds no list of records (expected [{{...}}, ...] or "
                         f'{{"data": [...]}})')
    flat = [_flatten(r) for r in recs]
    header = list(dict.fromkeys(k for r in flat for k in r))
    rows = [header] + [["" if r.get(k) is None else str(r.get(k)) for k in header] for r in flat]
    return rows, list(range(len(rows)))  # header is record 0, data records from 1


def _flatten(rec: dict, prefix: str = "") -> dict[str, object]:
    out: dict[str, object] = {}
    for k, v in rec.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}."))
        elif not isinstance(v, list):
            out[f"{prefix}{k}"] = v
    return out


def _csv_rows(all_lines: list[str], path: Path,
              meta: dict[str, str]) -> tuple[list[list[str]], list[int]]:
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
        raise TraceError(f"{path}: empty file (no header and no data rows)")
    rows = list(csv.reader(io.StringIO("\n".join(all_lines[first:last]))))
    return rows, [first + 1 + i for i in range(len(rows))]  # 1-based line numbers in the file


def read_series(path: str | Path, *, value_column: str | None = None,
                time_column: str | None = None, start: object = None,
                interval_s: float = 3600.0, what: str = "value",
                exact_names: Sequence[str] = (), hint_names: Sequence[str] = (),
                choose: Chooser | None = None,
                column_hint: str = "pass value_column") -> RawSeries:
    """Read and validate one numeric series from a CSV or JSON file (module doc).

    ``start``/``interval_s`` place a file without a time column on the clock. ``choose``
    recognises a published layout from the header; explicit columns win over it. A third,
    fallback column fills rows whose value cell is empty (GB ``actual`` -> ``forecast``).
    ``column_hint`` ends the "cannot tell which column" error (how to name one).
    """
    p = Path(path)
    if interval_s is None or not interval_s >= 1:
        raise ConfigError(f"interval_s must be >= 1 second (got {interval_s!r})")
    all_lines = _open_text(p)
    meta: dict[str, str] = {}
    first_char = next((ln.lstrip()[:1] for ln in all_lines if ln.strip()), "")
    is_json = first_char in ("{", "[")
    if is_json:
        rows, line_of = _json_rows("\n".join(all_lines), p)
    else:
        rows, line_of = _csv_rows(all_lines, p, meta)
    where = "record" if is_json else "line"
    header = [c.strip() for c in rows[0]]
    while len(header) > 1 and header[-1] == "":
        header.pop()
    numeric_rest = all(_is_number(c) for c in header[1:])
    if not is_json and all(_is_number(c) for c in header):  # header-less numbers
        header = ["value"] if len(header) == 1 else [f"column{i + 1}" for i in range(len(header))]
        has_header = False
    elif not is_json and len(header) == 2 and numeric_rest and _DATE_RE.match(header[0]):
        header = ["time", "value"]  # header-less time,value
        has_header = False
    else:
        has_header = True
    data, data_lines = (rows[1:], line_of[1:]) if has_header else (rows, line_of)
    if not data:
        raise TraceError(f"{p}: no data rows after the header ({where} {line_of[0]})")

    fallback = None
    if choose is not None and has_header:
        v_pick, t_pick, fallback = choose(header)
        value_column = v_pick or value_column  # the chooser maps layout choices (direct, ...)
        time_column = time_column or t_pick
    tcol = _pick_time_column(header, p, time_column) if len(header) > 1 or time_column else None
    vcol = _pick_value_column(header, p, value_column, tcol, exact_names, hint_names, column_hint)
    fcol = header.index(fallback) if fallback in header and fallback != header[vcol] else None
    need = max(vcol, tcol if tcol is not None else 0) + 1

    vals = np.empty(len(data))
    tcells: list[str] = []
    used_fallback = 0
    for i, (row, ln) in enumerate(zip(data, data_lines)):
        if not row:
            raise TraceError(f"{p}: {where} {ln}: empty {what}")
        if len(row) < need:
            raise TraceError(f"{p}: {where} {ln}: expected {len(header)} columns, got {len(row)} "
                             f"({','.join(row)!r})")
        cell = row[vcol]
        if fcol is not None and not cell.strip() and len(row) > fcol and row[fcol].strip():
            cell, used_fallback = row[fcol], used_fallback + 1
        vals[i] = _parse_value(cell, p, ln, what, where)
        if tcol is not None:
            tcells.append(row[tcol])

    if tcol is not None:
        times = _parse_times(tcells, data_lines, p, where)
        times, vals, filled = _regularise(times, vals, data_lines, p, where)
    else:
        t0 = _to_datetime64(start, "start") if start is not None else DEFAULT_START
        times = t0 + (np.arange(len(vals)) * int(round(interval_s))).astype("timedelta64[s]")
        filled = 0
    col = header[vcol] if has_header else ""
    return RawSeries(times, vals, col, tcol is not None, filled, meta, header if has_header else [],
                     used_fallback)


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


