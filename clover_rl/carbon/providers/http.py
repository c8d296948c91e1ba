"""Shared base of the live carbon-intensity API sources.

A deployed controller reads the grid's intensity every control interval and must keep
serving when the API is slow, down or answers nonsense. This base gives every API source the
same behaviour so the controller never has to care which one it holds:

* **Retries** with exponential back-off (``backoff_s * 2**attempt``, capped at
  ``backoff_max_s``) on timeouts, connection errors, HTTP 429 and 5xx. Other 4xx answers and
  malformed bodies are not retried: repeating them would give the same answer.
* **Retry-After** (seconds or HTTP-date, on 429/503 and rate-limit 401/403) is honoured: a
  wait up to ``backoff_max_s`` stretches the next back-off to it; a longer one ends the
  attempt and no request is made until it has passed, the source reporting its last good
  value as stale meanwhile (a control loop must not block for a minute).
* **Errors** carry the HTTP status and the server's own message; the credentials hint is
  added only to real authentication failures, not to rate limits or plan limits
  (:mod:`clover_rl.carbon.providers.answers`).
* **Cache**: a value fetched less than ``cache_ttl_s`` ago is served without a request (the
  APIs update every 5-60 minutes and rate-limit). After a failure, no new request is made for
  ``failure_ttl_s`` so an outage costs one round of retries, not one per read.
* **Stale fallback**: once one good value was seen, :meth:`read` never raises. A failed
  fetch yields the cached forecast for ``now`` if one covers it, else the last good value,
  with ``stale=True`` and a one-line ``message`` saying why. Before any good value it raises
  :class:`CarbonSourceError` (a :class:`~clover_rl.errors.BackendError`).

Subclasses implement :meth:`_fetch_current` (and :meth:`_fetch_forecast` if the API has one)
with :meth:`_get_json`; they raise :class:`MalformedResponse` for bodies they cannot use.
``sleep`` and ``monotonic`` are injectable so tests run without waiting.
"""
from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

import httpx

from clover_rl.carbon.base import CarbonReading, utcnow
from clover_rl.carbon.providers.answers import classify, retry_after_s, server_message
from clover_rl.carbon.providers.common import (
    CarbonSourceError,
    MalformedResponse,
    Point,
    as_utc,
    check_intensity,
    hourly,
    value_at,
)
from clover_rl.errors import ConfigError

if TYPE_CHECKING:
    from typing_extensions import Self

log = logging.getLogger(__name__)

#: what a fetch may raise on a bad or missing answer; anything listed becomes a stale reading
#: (parsing slips such as a list where a dict was expected included, so garbage never crashes)
_FETCH_ERRORS = (CarbonSourceError, MalformedResponse, httpx.HTTPError, KeyError, IndexError,
                 TypeError, ValueError, AttributeError)


class Unauthorized(CarbonSourceError):
    """HTTP 401: raised separately so token-based sources can log in again and retry."""


class RateLimited(CarbonSourceError):
    """The API asked us to come back later (``retry_after_s`` seconds, from Retry-After)."""

    def __init__(self, message: str, retry_after_s: float) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


def _positive(name: str, field: str, value: float, allow_zero: bool = False) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name}: {field} must be a number, got {value!r}") from None
    if not math.isfinite(v) or v < 0 or (v == 0 and not allow_zero):
        raise ConfigError(f"{name}: {field} must be a {'non-negative' if allow_zero else 'positive'}"
                          f" number, got {value!r}")
    return v


class HttpCarbonSource:
    """Base for carbon sources behind an HTTP JSON API (retries, cache, stale fallback)."""

    #: default API root; subclasses override
    default_base_url: str = ""
    #: a hint appended to HTTP 401/403 errors (which credential to check)
    auth_hint: str = ""

    def __init__(
        self,
        name: str,
        *,
        base_url: str | None = None,
        timeout_s: float = 10.0,
        retries: int = 2,
        backoff_s: float = 0.5,
        backoff_max_s: float = 8.0,
        cache_ttl_s: float = 300.0,
        failure_ttl_s: float = 60.0,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.name = name
        self.base_url = (base_url or self.default_base_url).rstrip("/")
        if not self.base_url.startswith(("http://", "https://")):
            raise ConfigError(f"{name}: base_url must start with http:// or https://, "
                              f"got {self.base_url!r}")
        self.timeout_s = _positive(name, "timeout", timeout_s)
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            raise ConfigError(f"{name}: retries must be a non-negative integer, got {retries!r}")
        self.retries = retries
        self.backoff_s = _positive(name, "backoff_s", backoff_s, allow_zero=True)
        self.backoff_max_s = _positive(name, "backoff_max_s", backoff_max_s, allow_zero=True)
        self.cache_ttl_s = _positive(name, "ttl", cache_ttl_s, allow_zero=True)
        self.failure_ttl_s = _positive(name, "failure_ttl", failure_ttl_s, allow_zero=True)
        self._sleep = sleep
        self._monotonic = monotonic
        self._client = httpx.Client(base_url=self.base_url, timeout=self.timeout_s,
                                    transport=transport, follow_redirects=True)
        self._lock = threading.Lock()
        self._current: Point | None = None  # last good current value
        self._current_at: float | None = None  # monotonic time of that fetch
        self._forecast: list[Point] = []
        self._forecast_at: float | None = None
        self._error: str = ""  # last current-value failure, one line
        self._error_at: float | None = None
        self._hold_s = self.failure_ttl_s  # no new request this long after a failure
        self._fc_error: str = ""
        self._fc_error_at: float | None = None
        self._fc_hold_s = self.failure_ttl_s

    # -- subclass hooks -------------------------------------------------------------------
    def _fetch_current(self, now: datetime) -> tuple[Point, list[Point] | None]:
        """The current value, plus forecast points when the same request carries them."""
        raise NotImplementedError

    def _fetch_forecast(self, now: datetime) -> list[Point]:
        """Forecast points (any resolution, sorted). Only called if :attr:`has_forecast`."""
        raise NotImplementedError

    has_forecast: bool = True

    def _headers(self) -> dict[str, str]:
        return {}

    # -- HTTP ----------------------------------------------------------------------------
    def _get_json(self, path: str, params: Mapping[str, str] | None = None,
                  headers: Mapping[str, str] | None = None,
                  auth: httpx.Auth | tuple[str, str] | None = None) -> Any:
        """GET ``path`` and parse JSON, retrying transient failures with back-off."""
        merged = {"Accept": "application/json", **self._headers(), **(headers or {})}
        problem = ""
        asked = 0.0  # the server's Retry-After for the next attempt, seconds
        for attempt in range(self.retries + 1):
            if attempt:
                backoff = min(self.backoff_max_s, self.backoff_s * 2 ** (attempt - 1))
                self._sleep(max(backoff, asked))
                asked = 0.0
            try:
                resp = self._client.get(path, params=params, headers=merged, auth=auth)
            except httpx.TimeoutException:
                problem = f"timed out after {self.timeout_s:g} s"
                continue
            except httpx.TransportError as e:
                problem = f"connection failed ({type(e).__name__}: {_first_line(e)})"
                continue
            except httpx.HTTPError as e:  # e.g. a body that fails to decode
                problem = f"request failed ({type(e).__name__}: {_first_line(e)})"
                continue
            code = resp.status_code
            if code >= 400:
                said = server_message(resp)
                kind = classify(code, said)
                what = f"HTTP {code}" + (f" ({said})" if said else "")
                if kind == "rate" or code >= 500:
                    wait = retry_after_s(resp)
                    if wait is not None and (wait > self.backoff_max_s or attempt == self.retries):
                        raise RateLimited(f"{self.name}: {what} from {path}; server asks to retry "
                                          f"after {wait:g} s", wait)
                    asked, problem = wait or 0.0, what
                    continue
                if kind == "auth" and code == 401:
                    raise Unauthorized(f"{self.name}: {what} from {path}{self.auth_hint}")
                hint = {"auth": self.auth_hint,
                        "plan": " (not covered by the account's plan or access; the credentials "
                                "themselves were accepted)"}.get(kind, "")
                raise CarbonSourceError(f"{self.name}: {what} from {path}{hint}")
            try:
                return resp.json()
            except ValueError:
                raise MalformedResponse(f"body of {path} is not JSON "
                                        f"({_snippet(resp.text)})") from None
        tries = self.retries + 1
        raise CarbonSourceError(f"{self.name}: {problem} from {self.base_url}{path} "
                                f"({tries} attempt{'s' if tries > 1 else ''})")

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- CarbonSource --------------------------------------------------------------------
    def read(self, now: datetime | None = None, horizon_h: int = 0) -> CarbonReading:
        """Intensity now and up to ``horizon_h`` hourly forecast values (see module doc)."""
        now = utcnow() if now is None else as_utc(now)
        with self._lock:
            t = self._monotonic()
            fresh = self._refresh_current(now, t)
            notes: list[str] = []
            if horizon_h > 0 and self.has_forecast and fresh:
                # skipped after a failed current fetch: the API is down, spare the retries
                self._refresh_forecast(now, t)
                if self._fc_error:
                    notes.append(f"forecast unavailable: {self._fc_error}")
            forecast = hourly(self._forecast, now, horizon_h) if horizon_h > 0 else ()
            if horizon_h > 0 and len(forecast) < horizon_h and not notes:
                notes.append(f"forecast covers {len(forecast)} of {horizon_h} h")
            if fresh:
                assert self._current is not None
                return CarbonReading(self._current.value, self._current.time, self.name,
                                     stale=False, forecast=forecast, message="; ".join(notes))
            if self._current is None:
                raise CarbonSourceError(self._error)
            planned = value_at(self._forecast, now)
            if planned is not None:
                point, why = planned, f"using cached forecast for {_hm(planned.time)}"
            else:
                point = self._current
                why = f"using last good value from {_hm(point.time)}"
            msg = f"{self._error}; {why}"
            return CarbonReading(point.value, point.time, self.name, stale=True,
                                 forecast=forecast, message=msg)

    def _refresh_current(self, now: datetime, t: float) -> bool:
        """Fetch the current value unless cached; True when a good current value stands."""
        if self._current_at is not None and t - self._current_at < self.cache_ttl_s:
            return True
        if self._error_at is not None and t - self._error_at < self._hold_s:
            return False
        try:
            point, forecast = self._fetch_current(now)
            point = Point(as_utc(point.time), check_intensity(point.value))
            clean = _clean(forecast) if forecast is not None else None
        except _FETCH_ERRORS as e:
            self._error, self._error_at = self._describe(e), t
            self._hold_s = _hold(self.failure_ttl_s, e)
            log.warning("%s", self._error)
            return False
        self._current, self._current_at = point, t
        self._error, self._error_at = "", None
        if clean is not None:
            self._forecast, self._forecast_at = clean, t
            self._fc_error, self._fc_error_at = "", None
        return True

    def _refresh_forecast(self, now: datetime, t: float) -> None:
        if self._forecast_at is not None and t - self._forecast_at < self.cache_ttl_s:
            return
        if self._fc_error_at is not None and t - self._fc_error_at < self._fc_hold_s:
            return
        try:
            clean = _clean(self._fetch_forecast(now))
        except _FETCH_ERRORS as e:
            self._fc_error, self._fc_error_at = self._describe(e), t
            self._fc_hold_s = _hold(self.failure_ttl_s, e)
            log.warning("%s (forecast)", self._fc_error)
            return
        self._forecast, self._forecast_at = clean, t
        self._fc_error, self._fc_error_at = "", None

    def _describe(self, e: Exception) -> str:
        if isinstance(e, MalformedResponse):
            return f"{self.name}: malformed response: {_first_line(e)}"
        if isinstance(e, CarbonSourceError):
            return _first_line(e)
        return f"{self.name}: malformed response: {type(e).__name__}: {_first_line(e)}"


def _hold(failure_ttl_s: float, e: Exception) -> float:
    """How long to make no request after failure ``e``: the failure TTL, or the server's
    Retry-After when it asked for longer."""
    return max(failure_ttl_s, getattr(e, "retry_after_s", 0.0))


def _clean(points: list[Point]) -> list[Point]:
    """Validated, UTC, time-sorted forecast points (one bad point rejects the answer)."""
    out = [Point(as_utc(p.time), check_intensity(p.value, "forecast value")) for p in points]
    return sorted(out, key=lambda p: p.time)


def _first_line(e: object) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def _snippet(text: str, n: int = 40) -> str:
    t = " ".join(text.split())
    return repr(t[:n] + ("..." if len(t) > n else ""))


def _hm(dt: datetime) -> str:
    return dt.strftime("%Y-%m-%dT%H:%MZ")
