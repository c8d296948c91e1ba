"""Energy meters: NVML counter and power fallback (simulated NVML), RAPL wrap-around (fake
sysfs), and the CPU estimate, which must say it is an estimate and never run backwards."""
from __future__ import annotations

import os
import time

import pytest

from clover_rl.errors import BackendError
from clover_rl.serving.live.energy import (
    CpuEstimateMeter,
    NvmlEnergyMeter,
    RaplEnergyMeter,
    default_meter,
)


class _Nvml:
    """Just the NVML calls the meter makes: a mJ counter per GPU, or only power (mW)."""

    def __init__(self, counter: bool = True, watts: float = 100.0):
        self.counter, self.watts, self.mj = counter, watts, [5_000_000.0, 7_000_000.0]

    def nvmlDeviceGetHandleByIndex(self, i: int) -> int:
        return i

    def nvmlDeviceGetTotalEnergyConsumption(self, h: int) -> float:
        if not self.counter:
            raise RuntimeError("NVML_ERROR_NOT_SUPPORTED")
        return self.mj[h]

    def nvmlDeviceGetPowerUsage(self, h: int) -> float:
        return self.watts * 1000.0


def test_nvml_counter_is_summed_over_gpus_from_zero() -> None:
    nv = _Nvml()
    m = NvmlEnergyMeter([0, 1], nvml=nv)
    assert m.source == "nvml" and not m.estimated and m.read_joules() == 0.0
    nv.mj[0] += 1500.0
    nv.mj[1] += 500.0
    assert m.read_joules() == pytest.approx(2.0)


def test_nvml_power_fallback_integrates() -> None:
    m = NvmlEnergyMeter([0, 1], nvml=_Nvml(counter=False, watts=50.0), sample_interval_s=0.02)
    assert m.source == "nvml-power"
    t0, e0 = time.monotonic(), m.read_joules()
    time.sleep(0.3)
    e = m.read_joules() - e0
    m.close()
    assert e == pytest.approx(100.0 * (time.monotonic() - t0), rel=0.2)  # 2 GPUs x 50 W


def _zone(root, name: str, uj: int, rng: int = 1000) -> None:
    z = root / name
    z.mkdir()
    (z / "energy_uj").write_text(str(uj))
    (z / "max_energy_range_uj").write_text(str(rng))


def test_rapl_handles_wrap_around_and_skips_subzones(tmp_path) -> None:
    _zone(tmp_path, "intel-rapl:0", 900)
    _zone(tmp_path, "intel-rapl:0:0", 5)  # a core sub-zone: inside the package, not added
    m = RaplEnergyMeter(tmp_path)
    (tmp_path / "intel-rapl:0" / "energy_uj").write_text("100")  # wrapped: 900 -> 1000 -> 100
    assert m.read_joules() == pytest.approx(200e-6)
    (tmp_path / "intel-rapl:0" / "energy_uj").write_text("400")
    assert m.read_joules() == pytest.approx(500e-6)
    with pytest.raises(BackendError, match="no RAPL"):
        RaplEnergyMeter(tmp_path / "none")


def test_cpu_estimate_is_labelled_and_monotonic() -> None:
    m = CpuEstimateMeter(idle_w=20.0, busy_core_w=10.0, pids=lambda: [os.getpid()])
    assert m.estimated and m.source == "estimated"
    m.read_joules()  # first sight of the pid
    t0, c0 = time.monotonic(), time.process_time()
    x = 0
    # burn 0.1 s of *CPU* (not wall: on a loaded host 0.3 s of wall may get far less CPU)
    while time.process_time() - c0 < 0.1 and time.monotonic() - t0 < 30.0:
        x += 1
    wall = time.monotonic() - t0
    readings = [m.read_joules() for _ in range(50)]
    assert readings == sorted(readings)
    # idle share over the burn + its busy CPU (/proc counts in 10 ms ticks: allow two)
    assert readings[-1] >= 20.0 * wall + 10.0 * 0.08
    assert default_meter("cpu", pids=list).estimated == (not os.path.isdir("/sys/class/powercap"))
