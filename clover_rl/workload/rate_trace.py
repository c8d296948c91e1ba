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
RATE_VALUE_HINTS = ("rate", "rps", "qps", "req")
RATE_UNITS = {"rps": 1.0, "rpm": 1.0 / 60.0, "rph": 1.0 / 3600.0}


@dataclass(frozen=True)
class RateTrace(RegularSeries):
    """A regularly sampled request rate (req/s, >= 0); each value holds for one step."""

    name: str = "rate"


def load_rate_trace(path: str | Path, *, value_column: str | None = None,
                    time_column: str | None = None, units: str = "rps",
                    name: str | None = None, start: object = None,
                    interval_s: float = 3600.0) -> RateTrace:
    """Load and validate a request-rate CSV; ``units`` rps (default), rpm or rph."""
    if units not in RATE_UNITS:
        raise ConfigError(f"units: expected one of {', '.join(RATE_UNITS)} (got {units!r})")
    p = Path(path)
    raw = read_series(p, value_column=value_column, time_column=time_column, start=start,
                      interval_s=interval_s, what="request rate",
                      exact_names=RATE_VALUE_NAMES, hint_names=RATE_VALUE_HINTS)
    prov = f"file {p}" + (f" column {raw.column!r}" if raw.column else "")
    if units != "rps":
        prov += f", converted from {units}"
    if raw.filled_steps:
        prov += f"; interpolated {raw.filled_steps} missing step(s)"
    stem = p.name.split(".")[0]
    return RateTrace(raw.times, raw.values * RATE_UNITS[units], name or raw.meta.get("name") or stem,
                     prov)
