"""Placement providers: turn a GPU's partition into one device string per slice.

The worker pool does not know whether slices are real MIG instances or emulated on the CPU; it
asks a provider. Device strings are ``"cpu"`` (an emulated slice, throttled to its share of
compute) or ``"cuda:<CUDA_VISIBLE_DEVICES value>"`` (a MIG UUID, or a GPU index without MIG).

``make_before_break`` tells the pool whether new slices can exist next to the old ones while
it reconfigures (CPU emulation: yes, so no capacity is lost; real MIG: no, overlapping GPU
instances must be destroyed before new ones are created).
"""
from __future__ import annotations

import importlib
from typing import Callable, Protocol, runtime_checkable

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
    """Real MIG slices through the NVML MIG manager (``clover_rl.mig.manager``).

    ``apply`` is any ``(gpu_index, partition) -> {slice: MIG UUID}`` callable; by default the
    manager module's ``apply_partition`` function (or a ``MigManager().apply_partition`` method).
    """

    device_kind = "cuda"
    make_before_break = False

    def __init__(self, apply: ApplyFn | None = None):
        self._manager = None
        self._apply = apply or self._default_apply()

    def _default_apply(self) -> ApplyFn:
        try:
            mod = importlib.import_module("clover_rl.mig.manager")
        except ImportError as e:
            raise BackendError(f"MIG placement needs clover_rl.mig.manager ({e})") from None
        fn = getattr(mod, "apply_partition", None)
        if callable(fn):
            return fn
        cls = getattr(mod, "MigManager", None)
        if cls is not None:
            self._manager = cls()
            meth = getattr(self._manager, "apply_partition", None) or getattr(self._manager, "apply", None)
            if callable(meth):
                return meth
        raise BackendError("clover_rl.mig.manager has no apply_partition(gpu_index, partition); pass placement=")

    def realize(self, gpu_index: int, partition: Partition) -> dict[Slice, str]:
        mapping = self._apply(gpu_index, partition)
        missing = [s for s in partition.slices if s not in mapping]
        if missing:
            raise BackendError(f"MIG manager returned no UUID for slice {missing[0].profile}@{missing[0].start} of GPU {gpu_index}")
        return {s: f"cuda:{mapping[s]}" for s in partition.slices}

    def close(self) -> None:
        close = getattr(self._manager, "close", None)
        if callable(close):
            close()


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


def default_placement(device: str, gpu: GpuModel, mig: bool = True) -> PlacementProvider:
    if device == "cpu":
        return CpuPlacement()
    if device == "cuda":
        return MigPlacement() if mig else WholeGpuPlacement(gpu)
    raise ConfigError(f"unknown device {device!r} (expected cpu or cuda)")
