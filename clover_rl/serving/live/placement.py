"""Placement providers: turn a GPU's partition into one device string per slice.

The worker pool does not know whether slices are real MIG instances or emulated on the CPU; it
asks a provider. Device strings are ``"cpu"`` (an emulated slice, throttled to its share of
compute) or ``"cuda:<CUDA_VISIBLE_DEVICES value>"`` (a MIG UUID, or a GPU index without MIG).

``make_before_break`` tells the pool whether new slices can exist next to the old ones while
it reconfigures (CPU emulation: yes, so no capacity is lost; real MIG: no, overlapping GPU
instances must be destroyed before new ones are created).
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, runtime_checkable

from clover_rl.errors import BackendError, ConfigError
from clover_rl.mig.catalog import GpuModel
from clover_rl.mig.partition import Partition, Slice


@runtime_checkable
class PlacementProvider(Protocol):
    device_kind: str  # "cpu" | "cuda"
    make_before_break: bool

    def realize(self, gpu_index: int, partition: Partition) -> dict[Slice, str]:
        """Make GPU ``gpu_index`` hold exactly ``partition``; the device string of each slice."""

    def close(self) -> None: ...


class CpuPlacement:
    """Emulated slices: every slice runs on the host CPU (the worker throttles itself)."""

    device_kind = "cpu"
    make_before_break = True

    def realize(self, gpu_index: int, partition: Partition) -> dict[Slice, str]:
        return {s: "cpu" for s in partition.slices}

    def close(self) -> None:
        pass


ApplyFn = Callable[[int, Partition], dict[Slice, str]]


class MigPlacement:
    """Real MIG slices through :class:`clover_rl.mig.manager.MigManager` (one per GPU index).

    The manager keeps GPU instances whose profile and placement are unchanged, so their MIG
    UUIDs (and the workers on them) survive a reconfiguration. ``apply`` overrides it with any
    ``(gpu_index, partition) -> {slice: MIG UUID}`` callable (tests, other tooling).
    """

    device_kind = "cuda"
    make_before_break = False

    def __init__(self, gpu: GpuModel | None = None, apply: ApplyFn | None = None, nvml: object = None):
        self.gpu = gpu
        self.nvml = nvml
        self._apply = apply
        self._managers: dict[int, object] = {}

    def _manager(self, gpu_index: int) -> object:
        if gpu_index not in self._managers:
            try:
                from clover_rl.mig.manager import MigManager
            except ImportError as e:
                raise BackendError(f"MIG placement needs clover_rl.mig.manager ({e})") from None
            self._managers[gpu_index] = MigManager(gpu_index, self.nvml, self.gpu).open()
        return self._managers[gpu_index]

    def realize(self, gpu_index: int, partition: Partition) -> dict[Slice, str]:
        if self._apply is not None:
            mapping = self._apply(gpu_index, partition)
        else:
            mapping = self._manager(gpu_index).apply(partition).uuids  # type: ignore[attr-defined]
        missing = [s for s in partition.slices if s not in mapping]
        if missing:
            raise BackendError(f"MIG manager returned no UUID for slice {missing[0].profile}@{missing[0].start} of GPU {gpu_index}")
        return {s: f"cuda:{mapping[s]}" for s in partition.slices}

    def close(self) -> None:
        for m in self._managers.values():
            m.close()  # type: ignore[attr-defined]
        self._managers.clear()


class WholeGpuPlacement:
    """CUDA without MIG: only whole-GPU partitions (one 7g slice per GPU) are possible."""

    device_kind = "cuda"
    make_before_break = True

    def __init__(self, gpu: GpuModel):
        self.whole = gpu.whole.name

    def realize(self, gpu_index: int, partition: Partition) -> dict[Slice, str]:
        if len(partition.slices) != 1 or partition.slices[0].profile != self.whole:
            raise BackendError(f"GPU {gpu_index} is not in MIG mode: only whole-GPU ({self.whole}) configurations can be served")
        return {partition.slices[0]: f"cuda:{gpu_index}"}

    def close(self) -> None:
        pass


DEVICES = ("cpu", "cuda")


def check_device(device: str) -> None:
    """ConfigError unless ``device`` (the ``--device`` option) is one this plane serves on:
    ``cpu`` (emulated slices) or ``cuda`` (MIG slices / whole GPUs). The one check every entry
    point (serve, profile, deploy, the live and Ray planes) calls before starting anything."""
    if device not in DEVICES:
        raise ConfigError(f"--device must be cpu or cuda, got {device!r}")


def default_placement(device: str, gpu: GpuModel, mig: bool = True) -> PlacementProvider:
    check_device(device)
    if device == "cpu":
        return CpuPlacement()
    return MigPlacement(gpu) if mig else WholeGpuPlacement(gpu)
