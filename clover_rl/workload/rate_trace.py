"""Request-rate traces: ``timestamp,rate_rps`` CSV or a single column of consecutive rates.

Same formats and validation as carbon traces (:mod:`clover_rl.carbon.trace`): one-line
TraceError naming file, line and value for empty/NaN/non-numeric/negative cells, unsorted or
duplicate timestamps and gaps; gaps of <= 2 steps are linearly interpolated with a warning.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from clover_rl.carbon.trace import read_series
from clover_rl.errors import ConfigError
from clover_rl.series import RegularSeries

RATE_VALUE_NAMES = ("rate_rps", "rate", "rps", "requests_per_s", "requests_per_second", "qps",
                    "req_per_s", "arrival_rate")
RATE_VALUE_HINTS = ("rate_", "_rate", "rps", "qps", "req")  # not bare "rate": GeneratedTokens
RATE_UNITS = {"rps": 1.0, "rpm": 1.0 / 60.0, "rph": 1.0 / 3600.0}
_UNIT_ALIASES = {
    "rps": "rps", "req/s": "rps", "per_second": "rps", "/s": "rps", "qps": "rps",
    "rpm": "rpm", "req/min": "rpm", "per_minute": "rpm", "/min": "rpm",
    "rph": "rph", "req/h": "rph", "per_hour": "rph", "/h": "rph",
}


def rate_units(units: str, where: str = "units") -> str:
    """The canonical rate unit (rps, rpm, rph) of a spelling such as ``req/min``."""
    u = _UNIT_ALIASES.get(str(units).strip().lower())
    if u is None:
        raise ConfigError(f"{where}: expected a rate unit rps, rpm or rph (req/s, req/min, req/h; "
                          f"got {units!r})")
    return u


def _units_from_column(column: str | None) -> str | None:
    c = (column or "").lower()
    for token, unit in (("per_minute", "rpm"), ("rpm", "rpm"), ("per_min", "rpm"), ("per_hour", "rph"),
                        ("rph", "rph")):
        if token in c:
            return unit
    return None


@dataclass(frozen=True)
class RateTrace(RegularSeries):
    """A regularly sampled request rate (req/s, >= 0); each value holds for one step."""

    name: str = "rate"


def load_rate_trace(path: str | Path, *, value_column: str | None = None,
                    time_column: str | None = None, units: str | None = None,
                    name: str | None = None, start: object = None,
                    interval_s: float = 3600.0) -> RateTrace:
    """Load and validate a request-rate CSV, converted to req/s.

    The unit comes from ``units`` (rps, rpm, rph or req/s, req/min, req/h), else a
    ``# units: ...`` comment line in the file, else the value column's name (``rate_rpm``,
    ``requests_per_minute``), else req/s.
    """
    if units is not None:
        units = rate_units(units)
    p = Path(path)
    raw = read_series(p, value_column=value_column, time_column=time_column, start=start,
                      interval_s=interval_s, what="request rate",
                      exact_names=RATE_VALUE_NAMES + ("rate_rpm", "rate_rph"),
                      hint_names=RATE_VALUE_HINTS)
    if units is None and "units" in raw.meta:
        units = rate_units(raw.meta["units"], f"{p}: units")
    units = units or _units_from_column(raw.column) or "rps"
    prov = f"file {p}" + (f" column {raw.column!r}" if raw.column else "")
    if units != "rps":
        prov += f", converted from {units}"
    if raw.filled_steps:
        prov += f"; interpolated {raw.filled_steps} missing step(s)"
    stem = p.name.split(".")[0]
    return RateTrace(raw.times, raw.values * RATE_UNITS[units], name or raw.meta.get("name") or stem,
                     prov)
