"""Time for the control loop, injectable so the loop runs under a fake clock in tests.

The controller schedules intervals on wall-clock epoch seconds (``time()``), which survive a
restart of the process; ``now()`` is the same instant as a UTC datetime for carbon sources
and logs. ``sleep`` returns early when ``stop`` is set, so a deployment shuts down promptly.
"""
from __future__ import annotations

import threading
import time as _time
from datetime import datetime, timedelta, timezone
from typing import Protocol, runtime_checkable


@runtime_checkable
class Clock(Protocol):
    def time(self) -> float:
        """Epoch seconds."""

    def now(self) -> datetime:
        """UTC datetime of ``time()``."""

    def sleep(self, seconds: float, stop: threading.Event | None = None) -> bool:
        """Let ``seconds`` pass; False when interrupted by ``stop``."""


class SystemClock:
    """The real clock."""

    def time(self) -> float:
        return _time.time()

    def now(self) -> datetime:
        return datetime.now(timezone.utc)

    def sleep(self, seconds: float, stop: threading.Event | None = None) -> bool:
        if seconds <= 0:
            return not (stop is not None and stop.is_set())
        if stop is None:
            _time.sleep(seconds)
            return True
        return not stop.wait(seconds)


class FakeClock:
    """A clock that only moves when told to (``sleep``/``advance``): unit tests run instantly."""

    def __init__(self, start: datetime | float = datetime(2021, 6, 1, tzinfo=timezone.utc)) -> None:
        self._t = start.timestamp() if isinstance(start, datetime) else float(start)
        self._lock = threading.Lock()

    def time(self) -> float:
        return self._t

    def now(self) -> datetime:
        return datetime(1970, 1, 1, tzinfo=timezone.utc) + timedelta(seconds=self._t)

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._t += max(0.0, float(seconds))

    def sleep(self, seconds: float, stop: threading.Event | None = None) -> bool:
        if stop is not None and stop.is_set():
            return False
        self.advance(seconds)
        return True
