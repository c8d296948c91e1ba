"""Fault injection hooks for tests and ``benchmarks/fault_injection.py`` (wrappers only: the
serving plane's own code is exercised unchanged, through its normal failure paths)."""
from __future__ import annotations

import threading
from typing import Any

from clover_rl.errors import BackendError


class FailingPlacement:
    """A placement provider whose next ``arm(n)`` reconfigurations fail like a MIG/NVML fault.

    The worker pool treats the raise as a failed placement: it keeps the previous workers
    (make-before-break) and reports ``ok=False``, which is the path a real fault takes.
    """

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.device_kind = inner.device_kind
        self.make_before_break = inner.make_before_break
        self._left = 0
        self._lock = threading.Lock()
        self.injected = 0

    def arm(self, n: int = 1) -> None:
        with self._lock:
            self._left = n

    def realize(self, gpu_index: int, partition: Any) -> Any:
        with self._lock:
            if self._left > 0:
                self._left -= 1
                self.injected += 1
                raise BackendError(f"injected fault: cannot create the slices of GPU {gpu_index}")
        return self.inner.realize(gpu_index, partition)

    def close(self) -> None:
        self.inner.close()


class FlakyBackend:
    """Wraps a Backend; ``fail_next(n)`` makes ``apply`` report failure (never raise: the Backend
    contract), with ``leave``: "previous" (a clean refusal), "restored" (the backend moved
    part-way and rolled itself back, as the contract asks) or "target" (it could not: the broken
    target serves, and the report says so)."""

    def __init__(self, backend: Any) -> None:
        self.backend = backend
        self.name = backend.name
        self._left = 0
        self.leave = "previous"
        self.applies = 0

    def fail_next(self, n: int = 1, leave: str = "previous") -> None:
        self._left, self.leave = n, leave

    @property
    def configuration(self) -> Any:
        return self.backend.configuration

    def apply(self, configuration: Any) -> Any:
        from clover_rl.serving.backend import ReconfigReport

        self.applies += 1
        if self._left > 0:
            self._left -= 1
            previous = self.backend.configuration
            if self.leave in ("target", "restored"):  # the backend moved part-way
                self.backend.apply(configuration)
                if self.leave == "restored" and previous is not None:
                    self.backend.apply(previous)
                    return ReconfigReport(True, previous, previous, ok=False,
                                          message=f"injected fault: {configuration.label()} came up broken; "
                                                  f"restored {previous.label()}")
                return ReconfigReport(True, previous, configuration, ok=False,
                                      message=f"injected fault: {configuration.label()} came up broken")
            return ReconfigReport(True, previous, previous or configuration, ok=False,
                                  message=f"injected fault: cannot apply {configuration.label()}")
        return self.backend.apply(configuration)

    def run(self, seconds: float, rate_rps: float) -> Any:
        return self.backend.run(seconds, rate_rps)

    def probe(self, configuration: Any, seconds: float, rate_rps: float) -> Any:
        self.apply(configuration)
        return self.run(seconds, rate_rps)

    def reseed(self, seed: int | None) -> None:
        self.backend.reseed(seed)

    def settle(self) -> None:
        self.backend.settle()

    def close(self) -> None:
        self.backend.close()
