"""Small shared pieces of the carbon providers: the error type, time parsing, point lookup.

Kept free of HTTP so the trace replay sources and the API sources agree on what "the value
at time t" and "the next hours" mean.
"""
from __future__ import annotations

import bisect
import math
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from clover_rl.errors import BackendError

HOUR = timedelta(hours=1)


class CarbonSourceError(BackendError):
    """A carbon source gave no usable value and has no earlier good value to fall back on."""


class MalformedResponse(ValueError):
    """An API answered 2xx with a body we cannot use; turned into a one-line source error."""


@dataclass(frozen=True)
class Point:
    """One intensity sample: ``value`` g/kWh applies from ``time`` (UTC) to the next sample."""

    time: datetime
    value: float


_FRACTION = re.compile(r"\.(\d+)")


def parse_time(text: object, field: str = "time") -> datetime:
    """ISO-8601 (``2026-11-29T10:00Z``, ``...00.000Z``, ``+00:00``) to an aware UTC datetime.

    Handles ``Z`` and odd fractional-second widths itself because Python 3.10's
    ``fromisoformat`` does not.
    """
    if not isinstance(text, str) or not text.strip():
        raise MalformedResponse(f"field '{field}' is not a timestamp: {text!r}")
    t = text.strip()
    if t[-1] in "Zz":
        t = t[:-1] + "+00:00"
    t = _FRACTION.sub(lambda m: "." + (m.group(1) + "000000")[:6], t, count=1)
    try:
        dt = datetime.fromisoformat(t)
    except ValueError:
        raise MalformedResponse(f"field '{field}' is not an ISO-8601 time: {text!r}") from None
    return as_utc(dt)


def as_utc(dt: datetime) -> datetime:
    """Naive datetimes are taken as UTC (the convention of every API used here)."""
    if dt.tzinfo is None:
        return dt.replace(tzinfo=timezone.utc)
    return dt.astimezone(timezone.utc)


def check_intensity(value: object, field: str = "value", scale: float = 1.0) -> float:
    """A finite, non-negative number (scaled to g/kWh), or :class:`MalformedResponse`."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise MalformedResponse(f"field '{field}' is not a number: {value!r}")
    v = float(value) * scale
    if not math.isfinite(v):
        raise MalformedResponse(f"field '{field}' is not finite: {value!r}")
    if v < 0:
        raise MalformedResponse(f"field '{field}' is negative: {value!r}")
    return v


def dig(obj: object, *path: str | int) -> object:
    """``obj[p0][p1]...`` with a message naming the missing field instead of a KeyError."""
    cur = obj
    for i, key in enumerate(path):
        try:
            cur = cur[key]  # type: ignore[index]
        except (KeyError, IndexError, TypeError):
            where = ".".join(str(p) for p in path[: i + 1])
            raise MalformedResponse(f"missing field '{where}'") from None
    return cur


def _step(points: list[Point], i: int) -> timedelta:
    """Length of the interval that starts at ``points[i]`` (the last one reuses its predecessor's)."""
    if i + 1 < len(points):
        return points[i + 1].time - points[i].time
    if i > 0:
        return points[i].time - points[i - 1].time
    return HOUR


def value_at(points: list[Point], t: datetime) -> Point | None:
    """The sample whose interval contains ``t``; None outside the covered span."""
    if not points:
        return None
    i = bisect.bisect_right([p.time for p in points], t) - 1
    if i < 0 or t >= points[i].time + _step(points, i):
        return None
    return points[i]


def hourly(points: list[Point], now: datetime, horizon_h: int) -> tuple[float, ...]:
    """Values expected at ``now + 1h, now + 2h, ...``; stops early where ``points`` end."""
    out: list[float] = []
    for k in range(1, max(0, horizon_h) + 1):
        p = value_at(points, now + k * HOUR)
        if p is None:
            break
        out.append(p.value)
    return tuple(out)


def iso_z(dt: datetime) -> str:
    """``2026-11-29T10:00Z``: the minute-resolution form the GB API puts in its paths."""
    return as_utc(dt).strftime("%Y-%m-%dT%H:%MZ")
