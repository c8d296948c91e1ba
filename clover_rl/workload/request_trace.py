"""Per-request timestamp traces (one row per request), e.g. the Azure LLM inference layout
``TIMESTAMP,ContextTokens,GeneratedTokens`` (Patel et al., ISCA 2024; CC BY 4.0).

A trace is replayed either as the recorded arrivals themselves (``replay: arrivals``) or as
the rate those arrivals make, aggregated into ``bin_s`` bins and drawn as a Poisson process
(``replay: rates``). Times are seconds since the first request; past the end the recording
wraps around (``wrap: true``) or the service goes quiet.
"""
from __future__ import annotations

import gzip
import io
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from clover_rl.errors import TraceError
from clover_rl.workload.arrivals import RngLike, as_rng
from clover_rl.workload.rate_trace import RateTrace
from clover_rl.workload.workload import TraceRate, Workload, _num

TIME_NAMES = ("timestamp", "time", "arrival_time", "arrival", "ts", "datetime", "invocation_time")


@dataclass(frozen=True)
class RequestTimes:
    """Sorted request times (s since the first request) read from ``path``."""

    times_s: np.ndarray
    path: str
    column: str
    origin: str  # the first request's timestamp as written in the file

    @property
    def span_s(self) -> float:
        return float(self.times_s[-1]) if len(self.times_s) else 0.0


def _read_text(p: Path) -> str:
    if not p.exists():
        raise TraceError(f"{p}: file not found")
    if p.is_dir():
        raise TraceError(f"{p}: is a directory, expected a CSV file")
    try:
        raw = p.read_bytes()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
        return raw.decode("utf-8-sig")
    except (OSError, EOFError, gzip.BadGzipFile) as e:
        raise TraceError(f"{p}: cannot read ({e})") from None
    except UnicodeDecodeError as e:
        raise TraceError(f"{p}: not UTF-8 text (byte {e.start})") from None


def load_request_times(path: str | Path, *, time_column: str | None = None) -> RequestTimes:
    """Read a per-request CSV: a timestamp column (ISO dates, sub-second allowed, or numbers
    in seconds), other columns ignored. Unsorted rows are sorted (logs interleave); empty or
    unparsable timestamps raise :class:`TraceError` naming the file and line."""
    import pandas as pd

    p = Path(path)
    text = _read_text(p)
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]
    if len(lines) < 2:
        raise TraceError(f"{p}: no requests (expected a header and one row per request)")
    try:
        df = pd.read_csv(io.StringIO("\n".join(lines)), dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, ValueError) as e:
        raise TraceError(f"{p}: not a CSV file ({str(e).splitlines()[0]})") from None
    names = [str(c).strip() for c in df.columns]
    low = [n.lower() for n in names]
    if time_column is not None:
        if time_column.strip().lower() not in low:
            raise TraceError(f"{p}: no time column {time_column!r} (columns: {', '.join(names)})")
        col = low.index(time_column.strip().lower())
    else:
        hits = [low.index(n) for n in TIME_NAMES if n in low]
        if not hits:
            raise TraceError(f"{p}: no timestamp column (columns: {', '.join(names)}); "
                             "set workload.time_column")
        col = hits[0]
    cells = df.iloc[:, col].str.strip()
    empty = (cells == "").to_numpy()
    if empty.any():
        raise TraceError(f"{p}: line {int(np.argmax(empty)) + 2}: empty timestamp")
    num = pd.to_numeric(cells, errors="coerce")
    if not num.isna().any():
        t = num.to_numpy(dtype=np.float64)
        bad = ~np.isfinite(t)
    else:
        dt = pd.to_datetime(cells, utc=True, errors="coerce", format="mixed")
        bad = dt.isna().to_numpy()
        ns = dt.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy().astype("datetime64[ns]")
        t = np.where(bad, 0, (ns - ns[~bad][0] if (~bad).any() else ns).astype(np.int64)) / 1e9
    if bad.any():
        i = int(np.argmax(bad))
        raise TraceError(f"{p}: line {i + 2}: cannot parse timestamp {cells.iloc[i]!r}")
    order = np.argsort(t, kind="stable")
    t = t[order]
    return RequestTimes(t - t[0], str(p), names[col], str(cells.iloc[int(order[0])]))


@dataclass(frozen=True)
class RequestReplay(Workload):
    """Replays a per-request trace. ``replay="arrivals"``: the recorded arrival times (scaled
    by ``factor``: below 1 requests are thinned at random, above 1 a Poisson stream of
    ``(factor - 1) x`` the binned rate is added); ``replay="rates"``: Poisson at the binned rate.
    ``rates()`` is always the binned rate (requests per ``bin_s`` over ``bin_s``)."""

    times: RequestTimes
    bin_s: float = 60.0
    replay: str = "arrivals"
    wrap: bool = True
    factor: float = 1.0
    options: dict[str, Any] = field(default_factory=dict)  # loader options, for to_config
    kind: ClassVar[str] = "trace"

    def __post_init__(self) -> None:
        if len(self.times.times_s) == 0:
            raise TraceError(f"{self.times.path}: no requests")
        _num("workload.bin_s", self.bin_s, lo=1e-3)
        _num("workload.scale", self.factor, lo=0.0)
        if self.replay not in ("arrivals", "rates"):
            raise TraceError(f"workload.replay: expected arrivals or rates (got {self.replay!r})")
        n_bins = max(1, math.ceil((self.times.span_s + 1e-9) / self.bin_s))
        counts = np.bincount(np.minimum((self.times.times_s // self.bin_s).astype(np.int64), n_bins - 1),
                             minlength=n_bins)
        times = np.datetime64("2000-01-01T00:00:00", "s") + (np.arange(n_bins) * self.bin_s).astype("timedelta64[s]")
        rt = RateTrace(times, counts / self.bin_s, Path(self.times.path).name.split(".")[0],
                       f"{self.times.path}: {len(self.times.times_s)} requests in {self.bin_s:g}-s bins")
        object.__setattr__(self, "_rates", TraceRate(rt, wrap=self.wrap, factor=self.factor))

    @property
    def binned(self) -> TraceRate:
        return self._rates  # type: ignore[attr-defined]

    @property
    def period_s(self) -> float:
        return len(self.binned.trace) * self.bin_s

    def rates(self, t_s: np.ndarray) -> np.ndarray:
        return self.binned.rates(t_s)

    def max_rate(self, t0_s: float, t1_s: float) -> float:
        return self.binned.max_rate(t0_s, t1_s)

    def mean_rate(self, t0_s: float, t1_s: float) -> float:
        return self.binned.mean_rate(t0_s, t1_s)

    def nominal_rate(self) -> float:
        return float(len(self.times.times_s) / self.period_s * self.factor)

    def _recorded(self, t0_s: float, duration_s: float) -> np.ndarray:
        period, rec = self.period_s, self.times.times_s
        t1 = t0_s + duration_s
        if not self.wrap:
            return rec[(rec >= t0_s) & (rec < t1)] - t0_s
        out = []
        for k in range(math.floor(t0_s / period), math.floor(t1 / period) + 1):
            shifted = rec + k * period
            out.append(shifted[(shifted >= t0_s) & (shifted < t1)] - t0_s)
        return np.concatenate(out) if out else np.empty(0)

    def arrivals(self, t0_s: float, duration_s: float, rng: RngLike) -> np.ndarray:
        if self.replay == "rates":
            return super().arrivals(t0_s, duration_s, rng)
        g = as_rng(rng)
        rec = self._recorded(t0_s, duration_s)
        if self.factor < 1.0:
            return rec[g.uniform(0.0, 1.0, rec.size) < self.factor]
        if self.factor > 1.0:
            extra = self.scale((self.factor - 1.0) / self.factor)
            more = extra.binned.arrivals(t0_s, duration_s, g)
            return np.sort(np.concatenate([rec, more]))
        return rec

    def scale(self, factor: float) -> RequestReplay:
        f = _num("scale", factor, lo=0.0)
        return RequestReplay(self.times, self.bin_s, self.replay, self.wrap, self.factor * f, self.options)

    def to_config(self) -> dict[str, Any]:
        cfg: dict[str, Any] = {"kind": self.kind, "format": "requests", "path": self.times.path,
                               "bin_s": float(self.bin_s), "replay": self.replay, "wrap": self.wrap,
                               **self.options}
        if self.factor != 1.0:
            cfg["scale"] = float(self.factor)
        return cfg
