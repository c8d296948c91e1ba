"""Energy meters for the live plane: ``read_joules()`` is a monotonic counter of all GPUs.

Sources, best first:
- ``nvml``: ``nvmlDeviceGetTotalEnergyConsumption`` (mJ since driver load) per *physical* GPU;
  MIG slices share the board's counter, so energy is measured per GPU, never per slice.
- ``nvml-power``: where that counter is unsupported, ``nvmlDeviceGetPowerUsage`` (mW) sampled
  by a thread and integrated with the trapezoid rule.
- ``rapl``: on CPU hosts, the package counters ``/sys/class/powercap/intel-rapl:N/energy_uj``
  (wrap-around at ``max_energy_range_uj`` handled) when readable.
- ``estimated``: otherwise a model: ``E = idle_w * wall_s + busy_core_w * cpu_s``, where
  ``cpu_s`` is the CPU time (user + system, from ``/proc/<pid>/stat``) consumed by the tracked
  processes (the workers) — or by the whole host (``/proc/stat``) when none are tracked.
  Defaults: 20 W idle, 10 W per fully busy core (a server CPU package's typical range).
  Readings from it are labelled ``estimated``.
"""
from __future__ import annotations

import glob
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from clover_rl.errors import BackendError

log = logging.getLogger("clover_rl.serving.live")


@runtime_checkable
class EnergyMeter(Protocol):
    source: str  # nvml | nvml-power | rapl | estimated
    estimated: bool

    def read_joules(self) -> float:
        """Energy since the meter was created; never decreases."""

    def close(self) -> None: ...


class _Monotonic:
    """Clamp readings so a glitching source can never make the counter go backwards."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._max = 0.0
        self._clamp_lock = threading.Lock()

    def _clamp(self, value: float) -> float:
        with self._clamp_lock:
            self._max = max(self._max, value)
            return self._max


# --------------------------------------------------------------------------- NVML
def _load_nvml() -> Any:
    try:
        import pynvml
    except ImportError:
        raise BackendError("NVML energy metering needs nvidia-ml-py (import pynvml failed)") from None
    try:
        pynvml.nvmlInit()
    except Exception as e:
        raise BackendError(f"NVML is not available: {e}") from None
    return pynvml


class NvmlEnergyMeter(_Monotonic):
    """Total energy of physical GPUs ``indices`` from NVML (mJ counters, or sampled power)."""

    estimated = False

    def __init__(self, indices: Iterable[int], nvml: Any = None, sample_interval_s: float = 0.1):
        super().__init__()
        self.nvml = nvml or _load_nvml()
        self.handles = [self.nvml.nvmlDeviceGetHandleByIndex(i) for i in indices]
        self.interval = sample_interval_s
        self._start: list[float] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        try:
            self._start = [self._counter_mj(h) for h in self.handles]
            self.source = "nvml"
        except Exception:
            self.source = "nvml-power"
            self._energy = 0.0
            self._last_t = time.monotonic()
            self._last_w = self._power_w()
            self._thread = threading.Thread(target=self._sample, name="clover-nvml-power", daemon=True)
            self._thread.start()

    def _counter_mj(self, h: Any) -> float:
        return float(self.nvml.nvmlDeviceGetTotalEnergyConsumption(h))

    def _power_w(self) -> float:
        return sum(float(self.nvml.nvmlDeviceGetPowerUsage(h)) for h in self.handles) / 1000.0

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            self._integrate()

    def _integrate(self) -> None:
        try:
            w = self._power_w()
        except Exception:
            return
        now = time.monotonic()
        with self._lock:
            self._energy += (w + self._last_w) / 2.0 * (now - self._last_t)
            self._last_t, self._last_w = now, w

    def read_joules(self) -> float:
        if self.source == "nvml":
            total = sum(self._counter_mj(h) - s for h, s in zip(self.handles, self._start)) / 1000.0
            return self._clamp(total)
        self._integrate()
        return self._clamp(self._energy)

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(1.0)


# --------------------------------------------------------------------------- RAPL
class RaplEnergyMeter(_Monotonic):
    """CPU package energy from Linux powercap (intel-rapl), with counter wrap-around."""

    source = "rapl"
    estimated = False

    def __init__(self, root: str | Path = "/sys/class/powercap"):
        super().__init__()
        zones = sorted(p for p in glob.glob(str(Path(root) / "intel-rapl:*"))
                       if Path(p).name.count(":") == 1)  # packages, not their sub-zones
        if not zones:
            raise BackendError(f"no RAPL package counters under {root}")
        self.zones = [Path(z) for z in zones]
        self.ranges = []
        for z in self.zones:
            try:
                self.ranges.append(int((z / "max_energy_range_uj").read_text()))
            except (OSError, ValueError):
                self.ranges.append(2**32)
        try:
            self._last_uj = [self._read(z) for z in self.zones]
        except OSError as e:
            raise BackendError(f"RAPL counters are not readable ({e}); run as root or use the estimate") from None
        self._acc_uj = 0

    @staticmethod
    def _read(zone: Path) -> int:
        return int((zone / "energy_uj").read_text())

    def read_joules(self) -> float:
        with self._lock:
            for i, z in enumerate(self.zones):
                try:
                    v = self._read(z)
                except (OSError, ValueError):
                    continue
                d = v - self._last_uj[i]
                if d < 0:  # wrapped
                    d += self.ranges[i]
                self._acc_uj += d
                self._last_uj[i] = v
            total = self._acc_uj / 1e6
        return self._clamp(total)

    def close(self) -> None:
        pass


# --------------------------------------------------------------------------- estimate
_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _proc_cpu_s(pid: int) -> float | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rfind(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / _TICK  # utime, stime


def _host_busy_s() -> float:
    try:
        parts = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    except OSError:
        return 0.0
    vals = [int(x) for x in parts]
    idle = vals[3] + (vals[4] if len(vals) > 4 else 0)
    return (sum(vals[:8]) - idle) / _TICK


class CpuEstimateMeter(_Monotonic):
    """The documented estimate ``idle_w * wall + busy_core_w * cpu_seconds`` (labelled)."""

    source = "estimated"
    estimated = True

    def __init__(self, idle_w: float = 20.0, busy_core_w: float = 10.0,
                 pids: Callable[[], Iterable[int]] | None = None):
        super().__init__()
        if idle_w < 0 or busy_core_w < 0:
            raise BackendError(f"power model needs non-negative watts, got idle {idle_w}, per core {busy_core_w}")
        self.idle_w = idle_w
        self.busy_core_w = busy_core_w
        self.pids = pids
        self._t0 = time.monotonic()
        self._seen: dict[int, float] = {}
        self._cpu_s = 0.0
        self._host0 = _host_busy_s()

    def _cpu_seconds(self) -> float:
        if self.pids is None:
            return max(0.0, _host_busy_s() - self._host0)
        for pid in self.pids():
            v = _proc_cpu_s(pid)
            if v is None:
                continue
            prev = self._seen.get(pid)
            if prev is None:  # first sight: count from here (start-up is not serving)
                self._seen[pid] = v
            elif v > prev:
                self._cpu_s += v - prev
                self._seen[pid] = v
        return self._cpu_s

    def read_joules(self) -> float:
        with self._lock:
            cpu = self._cpu_seconds()
            e = self.idle_w * (time.monotonic() - self._t0) + self.busy_core_w * cpu
        return self._clamp(e)

    def close(self) -> None:
        pass


def default_meter(device: str, gpu_indices: Iterable[int] = (0,),
                  pids: Callable[[], Iterable[int]] | None = None) -> EnergyMeter:
    """NVML on CUDA; RAPL, else the labelled estimate, on CPU."""
    if device == "cuda":
        return NvmlEnergyMeter(gpu_indices)
    try:
        return RaplEnergyMeter()
    except BackendError:
        log.info("energy: no readable RAPL counters; using the CPU power estimate (labelled estimated)")
        return CpuEstimateMeter(pids=pids)
