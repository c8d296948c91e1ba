"""Trace replay as a live source: ``file:PATH[,column=..][,time_column=..][,unit=..][,speed=N][,end=loop|hold]``
and ``trace:``.

``PATH`` is a trace file or a shipped trace name with an optional period
(``file:caiso_pge:eval,speed=3600``), read by :func:`clover_rl.carbon.resolve.resolve_trace`;
``column``/``time_column``/``unit`` mean what they mean in every other trace spec.

Lets the deployed controller run against a recorded trace (demos, soak tests, CPU
emulation) with exactly the interface of a live API.

Time mapping: the source starts at the trace's first sample when it is created (``start``,
a wall-clock instant, defaults to ``clock()`` at construction). At wall time ``now`` the
trace clock reads ``trace_start + (now - start) * speed``: at ``speed=60`` one trace hour
passes in one wall minute. The value is the sample whose interval contains the trace clock;
``forecast`` holds forecasts 1, 2, ... *trace* hours ahead made by the ``auto`` forecaster
of :mod:`clover_rl.carbon.forecast` from the trace's past (never the future on file). ``reading.time`` is the timestamp of the sample
being served, i.e. trace time, not wall time.

End of the trace: ``end=loop`` (default) wraps around, so a long-running deployment keeps
seeing a daily pattern; ``end=hold`` keeps serving the last sample, and says so in
``message``. A replay never goes stale and never raises after construction.

To drive a replay by trace time instead (evaluation), pass ``start`` = the trace's first
timestamp and ``speed=1``: ``read(now=t)`` then serves the sample at trace time ``t``.
``clock`` is injectable so tests advance time without sleeping.
"""
from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta, timezone

import numpy as np

from clover_rl.carbon.base import CarbonReading, CarbonTrace, utcnow
from clover_rl.carbon.providers.common import as_utc
from clover_rl.errors import ConfigError, positive_number

END_MODES = ("loop", "hold")
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def check_speed(speed: object, name: str = "file") -> float:
    """A finite positive float, or a :class:`ConfigError` naming the bad value."""
    return positive_number(f"{name}: speed", speed)


def _to_datetime(t: np.datetime64) -> datetime:
    seconds = int(np.datetime64(t, "s").astype("int64"))
    return _EPOCH + timedelta(seconds=seconds)


class TraceSource:
    """Replays an in-memory :class:`CarbonTrace` in real or accelerated wall-clock time."""

    def __init__(self, trace: CarbonTrace, *, speed: float = 1.0, end: str = "loop",
                 clock: Callable[[], datetime] = utcnow, start: datetime | None = None,
                 name: str | None = None) -> None:
        self.name = name or f"trace:{trace.name}"
        if not isinstance(trace, CarbonTrace):
            raise ConfigError(f"{self.name}: expected a CarbonTrace, got {type(trace).__name__}")
        if len(trace) == 0:
            raise ConfigError(f"{self.name}: trace {trace.name!r} is empty")
        values = np.asarray(trace.values, dtype=np.float64)
        if not np.all(np.isfinite(values)) or np.any(values < 0):
            raise ConfigError(f"{self.name}: trace {trace.name!r} has negative or non-finite "
                              "values")
        if end not in END_MODES:
            raise ConfigError(f"{self.name}: end must be one of {', '.join(END_MODES)}, "
                              f"got {end!r}")
        self.trace = trace
        self.speed = check_speed(speed, self.name)
        self.end = end
        self._clock = clock
        self.start = as_utc(start) if start is not None else as_utc(clock())
        times = np.asarray(trace.times).astype("datetime64[s]")
        self._offsets = (times - times[0]).astype("int64").astype(np.float64)  # s from start
        self._values = values
        self._times = times
        # a loop lasts until the end of the last sample's interval
        self.duration_s = float(self._offsets[-1] + trace.resolution_s)
        self._fc: np.ndarray | None = None  # hourly forecasts (n_hours, horizon), made lazily

    def trace_seconds(self, now: datetime | None = None) -> float:
        """Trace seconds elapsed since the trace start at wall time ``now`` (unwrapped)."""
        now = as_utc(now) if now is not None else as_utc(self._clock())
        return max(0.0, (now - self.start).total_seconds() * self.speed)

    def _index(self, elapsed: float) -> tuple[int, bool]:
        """Sample index for ``elapsed`` trace seconds; second item: past the end (hold)."""
        if self.end == "loop":
            elapsed = elapsed % self.duration_s
        elif elapsed >= self.duration_s:
            return len(self._values) - 1, True
        i = int(np.searchsorted(self._offsets, elapsed, side="right")) - 1
        return max(i, 0), False

    def _forecast(self, elapsed: float, horizon_h: int) -> tuple[float, ...]:
        """Hourly forecasts made at the trace hour containing ``elapsed`` from the past only."""
        if horizon_h == 0:
            return ()
        from clover_rl.carbon.forecast import forecast_for
        from clover_rl.carbon.trace import resample

        if self._fc is None or self._fc.shape[1] < horizon_h:
            hourly = self.trace if self.trace.resolution_s == 3600.0 else resample(self.trace, 3600.0)
            self._fc = forecast_for(hourly, horizon_h, "auto").values
        if self.end == "loop":
            elapsed = elapsed % self.duration_s
        j = min(int(elapsed // 3600.0), len(self._fc) - 1)
        return tuple(float(x) for x in self._fc[j, :horizon_h])

    def read(self, now: datetime | None = None, horizon_h: int = 0) -> CarbonReading:
        """The sample at the trace clock for ``now`` and the next ``horizon_h`` trace hours."""
        elapsed = self.trace_seconds(now)
        i, ended = self._index(elapsed)
        forecast = self._forecast(elapsed, max(0, horizon_h))
        message = ""
        if ended:
            message = (f"{self.name}: trace ended at {_to_datetime(self._times[-1]):%Y-%m-%dT%H:%MZ}"
                       "; holding last value")
        return CarbonReading(float(self._values[i]), _to_datetime(self._times[i]), self.name,
                             stale=False, forecast=forecast, message=message)


class FileSource(TraceSource):
    """A trace file replayed in real or accelerated time (see module doc)."""

    def __init__(self, path: str, *, speed: float = 1.0, end: str = "loop",
                 clock: Callable[[], datetime] = utcnow, start: datetime | None = None,
                 name: str | None = None, column: str | None = None,
                 time_column: str | None = None, unit: str | None = None) -> None:
        if not str(path).strip():
            raise ConfigError("file: missing path (write file:PATH[,speed=N])")
        name = name or f"file:{path}"
        check_speed(speed, name)  # before touching the disk: cheap errors first
        # imported here: trace loading is not needed by the API sources
        from clover_rl.carbon.resolve import parse_trace_spec, resolve_trace

        self.path = str(path).strip()
        spec = parse_trace_spec({"trace": self.path, "column": column,
                                 "time_column": time_column, "unit": unit}, name)
        super().__init__(resolve_trace(spec), speed=speed, end=end, clock=clock, start=start,
                         name=name)
