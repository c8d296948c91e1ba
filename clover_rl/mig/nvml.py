"""NVML access for MIG: profile discovery, layout reading and the primitive operations.

Everything goes through an injectable NVML module (``pynvml`` from nvidia-ml-py by default, a
simulated one in tests), so the same code paths are exercised with and without a GPU. The
board catalog (:mod:`clover_rl.mig.catalog`) is only a fallback: profiles, profile IDs and
placements are read from the driver whenever it can answer, and the two are compared
(:func:`~clover_rl.mig.nvml_types.compare_with_catalog`) so a catalog that drifted from the
hardware is reported rather than silently trusted.

Every NVML failure becomes a one-line :class:`MigError` naming the GPU index and the operation
(:mod:`clover_rl.mig.nvml_errors`). :mod:`clover_rl.mig.manager` builds apply/rollback and
the read-only report on top of this.
"""
from __future__ import annotations

import ctypes
from collections.abc import Callable
from typing import Any, TypeVar

from clover_rl.mig.nvml_errors import (  # noqa: F401  (re-exported: one import site)
    _ERR,
    _ERR_NAMES,
    _MAX_ITEMS,
    MigError,
    MigInUseError,
    MigModeError,
    MigPermissionError,
    MigResourcesError,
    NvmlUnavailableError,
    _text,
    is_nvml_error,
    load_nvml,
    map_nvml_error,
    nvml_error_name,
)
from clover_rl.mig.nvml_types import (  # noqa: F401  (re-exported)
    ComputeInstance,
    GpuInstance,
    MigLayout,
    MigMode,
    NvmlProfile,
    compare_with_catalog,
    match_catalog_model,
)

T = TypeVar("T")

class NvmlGpu:
    """One GPU seen through NVML: reads (mode, profiles, layout) and primitive MIG changes.

    Holds an NVML init reference while open; use as a context manager. All NVML failures are
    re-raised as one-line MigError subclasses naming ``index`` and the operation.
    """

    def __init__(self, index: int = 0, nvml: Any = None) -> None:
        self.index = index
        self.nvml = load_nvml(nvml)
        self._handle: Any = None
        self._open = False
        self._profiles: tuple[NvmlProfile, ...] | None = None
        self._ci_profiles: dict[int, list[Any]] = {}

    # ---- lifecycle
    def open(self) -> NvmlGpu:
        if self._open:
            return self
        nv = self.nvml
        try:
            nv.nvmlInit()
        except Exception as e:
            if is_nvml_error(e):
                raise map_nvml_error(e, self.index, "initialise NVML") from e
            raise NvmlUnavailableError(f"GPU {self.index}: initialise NVML failed: {e}",
                                       gpu_index=self.index, operation="initialise NVML") from e
        self._open = True
        try:
            count = nv.nvmlDeviceGetCount()
            if not 0 <= self.index < count:
                raise NvmlUnavailableError(
                    f"GPU {self.index}: no such GPU (NVML sees {count} GPU(s))",
                    gpu_index=self.index, operation="open GPU")
            self._handle = self.call("get device handle", nv.nvmlDeviceGetHandleByIndex,
                                     self.index)
        except BaseException:
            self.close()
            raise
        return self

    def close(self) -> None:
        if self._open:
            self._open = False
            self._handle = None
            try:
                self.nvml.nvmlShutdown()
            except Exception:
                pass

    def __enter__(self) -> NvmlGpu:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def handle(self) -> Any:
        if not self._open:
            self.open()
        return self._handle

    def call(self, operation: str, fn: Callable[..., T], *args: Any) -> T:
        """Run one NVML call, mapping its error to a MigError for ``operation``."""
        try:
            return fn(*args)
        except Exception as e:
            if is_nvml_error(e):
                raise map_nvml_error(e, self.index, operation) from e
            raise

    def _v2(self, operation: str, fn: Callable[..., T], *args: Any) -> T:
        """Call a versioned NVML getter, falling back to version 1 on older drivers."""
        try:
            return fn(*args)
        except Exception as e:
            if not is_nvml_error(e, "FUNCTION_NOT_FOUND"):
                if is_nvml_error(e):
                    raise map_nvml_error(e, self.index, operation) from e
                raise
        return self.call(operation, fn, *args, 1)

    # ---- device facts
    def name(self) -> str:
        return _text(self.call("read device name", self.nvml.nvmlDeviceGetName, self.handle))

    def uuid(self) -> str:
        return _text(self.call("read device UUID", self.nvml.nvmlDeviceGetUUID, self.handle))

    def memory_mb(self) -> int:
        info = self.call("read memory size", self.nvml.nvmlDeviceGetMemoryInfo, self.handle)
        return int(info.total) // (1024 * 1024)

    def driver_version(self) -> str | None:
        try:
            return _text(self.nvml.nvmlSystemGetDriverVersion())
        except Exception:
            return None

    def mig_mode(self) -> MigMode:
        """Current and pending MIG mode; MigModeError when the GPU has no MIG at all."""
        nv = self.nvml
        try:
            cur, pend = nv.nvmlDeviceGetMigMode(self.handle)
        except Exception as e:
            if is_nvml_error(e, "NOT_SUPPORTED"):
                raise MigModeError(f"GPU {self.index}: read MIG mode failed: this GPU "
                                   f"({self.name()}) does not support MIG",
                                   gpu_index=self.index, operation="read MIG mode") from e
            if is_nvml_error(e):
                raise map_nvml_error(e, self.index, "read MIG mode") from e
            raise
        enabled = nv.NVML_DEVICE_MIG_ENABLE
        return MigMode(cur == enabled, pend == enabled)

    def require_mig_ready(self, operation: str) -> MigMode:
        """Raise MigModeError unless MIG is enabled with no reset pending."""
        mode = self.mig_mode()
        i = self.index
        if mode.ready:
            return mode
        if mode.current != mode.pending:
            now = "enabled" if mode.current else "disabled"
            later = "enabled" if mode.pending else "disabled"
            msg = (f"GPU {i}: {operation} failed: MIG mode is {now} but {later} after a pending "
                   f"GPU reset (run `sudo nvidia-smi -i {i} -r` or reboot)")
        else:
            msg = (f"GPU {i}: {operation} failed: MIG mode is disabled "
                   f"(enable with `sudo nvidia-smi -i {i} -mig 1`)")
        raise MigModeError(msg, gpu_index=i, operation=operation)

    # ---- profiles
    def profiles(self) -> tuple[NvmlProfile, ...]:
        """GPU-instance profiles and placements as the driver reports them (cached).

        Requires MIG enabled (the driver answers NOT_SUPPORTED otherwise); an index the
        driver does not know on this GPU is skipped.
        """
        if self._profiles is not None:
            return self._profiles
        nv = self.nvml
        out: list[NvmlProfile] = []
        for idx in range(nv.NVML_GPU_INSTANCE_PROFILE_COUNT):
            try:
                info = self._v2(f"read GPU instance profile {idx}",
                                nv.nvmlDeviceGetGpuInstanceProfileInfo, self.handle, idx)
            except MigError as e:
                if e.nvml_code in (_ERR["NOT_SUPPORTED"], _ERR["INVALID_ARGUMENT"],
                                   _ERR["NOT_FOUND"]):
                    continue
                raise
            placements = self._placements(int(info.id), f"read placements of profile {idx}")
            name = _text(getattr(info, "name", b"")).strip()
            if name.upper().startswith("MIG "):
                name = name[4:].strip()
            if not name:
                name = self._fallback_name(idx, int(info.sliceCount), int(info.memorySizeMB))
            sizes = {s for _, s in placements}
            out.append(NvmlProfile(
                name=name, nvml_index=idx, profile_id=int(info.id),
                compute_slices=int(info.sliceCount),
                memory_slices=sizes.pop() if len(sizes) == 1 else None,
                memory_mb=int(info.memorySizeMB), sm_count=int(info.multiprocessorCount),
                instance_count=int(info.instanceCount), placements=placements))
        self._profiles = tuple(out)
        return self._profiles

    def _placements(self, profile_id: int, operation: str) -> tuple[tuple[int, int], ...]:
        nv = self.nvml
        arr = (nv.c_nvmlGpuInstancePlacement_t * _MAX_ITEMS)()
        count = ctypes.c_uint(_MAX_ITEMS)
        self.call(operation, nv.nvmlDeviceGetGpuInstancePossiblePlacements, self.handle,
                  profile_id, arr, ctypes.byref(count))
        return tuple(sorted((int(arr[i].start), int(arr[i].size)) for i in range(count.value)))

    def _fallback_name(self, idx: int, slices: int, memory_mb: int) -> str:
        """Name for drivers without the v2 profile info (no name field): catalog, else built."""
        model = match_catalog_model(self.name(), self.memory_mb())
        if model is not None:
            for p in model.profiles:
                if p.nvml_index == idx:
                    return p.name
        gb = -(-memory_mb // 1024)
        return f"{slices}g.{gb}gb" + ("+me" if idx == self.nvml.NVML_GPU_INSTANCE_PROFILE_1_SLICE_REV1 else "")

    # ---- layout
    def layout(self, profiles: tuple[NvmlProfile, ...] | None = None) -> MigLayout:
        """Current GPU instances with their compute instances and MIG device UUIDs."""
        nv = self.nvml
        profiles = profiles if profiles is not None else self.profiles()
        uuids = self.mig_devices()
        gis: list[GpuInstance] = []
        for p in profiles:
            arr = (nv.c_nvmlGpuInstance_t * max(_MAX_ITEMS, p.instance_count))()
            count = ctypes.c_uint(len(arr))
            self.call(f"list {p.name} GPU instances", nv.nvmlDeviceGetGpuInstances, self.handle,
                      p.profile_id, arr, ctypes.byref(count))
            for i in range(count.value):
                gi = arr[i]
                info = self.call("read GPU instance info", nv.nvmlGpuInstanceGetInfo, gi)
                gi_id = int(info.id)
                cis = tuple(
                    ComputeInstance(c.id, c.profile_id, c.start, c.size, uuids.get((gi_id, c.id)),
                                    c.handle)
                    for c in self._compute_instances(gi, p, gi_id))
                gis.append(GpuInstance(gi_id, p.name, p.profile_id, int(info.placement.start),
                                       int(info.placement.size), p.compute_slices, cis, gi))
        gis.sort(key=lambda g: (g.start, g.id))
        return MigLayout(self.index, tuple(gis))

    def ci_profiles(self, gi: Any, gi_profile: NvmlProfile) -> list[Any]:
        """Compute-instance profile infos usable inside GPU instances of ``gi_profile``."""
        cached = self._ci_profiles.get(gi_profile.profile_id)
        if cached is not None:
            return cached
        nv = self.nvml
        out = []
        for idx in range(nv.NVML_COMPUTE_INSTANCE_PROFILE_COUNT):
            try:
                info = self._v2(f"read compute instance profile {idx} of {gi_profile.name}",
                                nv.nvmlGpuInstanceGetComputeInstanceProfileInfo, gi, idx,
                                nv.NVML_COMPUTE_INSTANCE_ENGINE_PROFILE_SHARED)
            except MigError as e:
                if e.nvml_code in (_ERR["NOT_SUPPORTED"], _ERR["INVALID_ARGUMENT"],
                                   _ERR["NOT_FOUND"]):
                    continue
                raise
            out.append(info)
        self._ci_profiles[gi_profile.profile_id] = out
        return out

    def _compute_instances(self, gi: Any, p: NvmlProfile, gi_id: int) -> list[ComputeInstance]:
        nv = self.nvml
        out: list[ComputeInstance] = []
        for cp in self.ci_profiles(gi, p):
            arr = (nv.c_nvmlComputeInstance_t * max(_MAX_ITEMS, int(cp.instanceCount)))()
            count = ctypes.c_uint(len(arr))
            self.call(f"list compute instances of GPU instance {gi_id}",
                      nv.nvmlGpuInstanceGetComputeInstances, gi, int(cp.id), arr,
                      ctypes.byref(count))
            for i in range(count.value):
                info = self.call("read compute instance info", nv.nvmlComputeInstanceGetInfo,
                                 arr[i])
                out.append(ComputeInstance(int(info.id), int(info.profileId),
                                           int(info.placement.start), int(info.placement.size),
                                           None, arr[i]))
        out.sort(key=lambda c: (c.start, c.id))
        return out

    def mig_devices(self) -> dict[tuple[int, int], str]:
        """(GPU instance id, compute instance id) -> MIG device UUID."""
        nv = self.nvml
        out: dict[tuple[int, int], str] = {}
        n = self.call("count MIG devices", nv.nvmlDeviceGetMaxMigDeviceCount, self.handle)
        for i in range(int(n)):
            try:
                h = nv.nvmlDeviceGetMigDeviceHandleByIndex(self.handle, i)
            except Exception as e:
                if is_nvml_error(e, "NOT_FOUND", "INVALID_ARGUMENT"):
                    continue
                if is_nvml_error(e):
                    raise map_nvml_error(e, self.index, f"read MIG device {i}") from e
                raise
            gi = self.call(f"read MIG device {i}", nv.nvmlDeviceGetGpuInstanceId, h)
            ci = self.call(f"read MIG device {i}", nv.nvmlDeviceGetComputeInstanceId, h)
            out[(int(gi), int(ci))] = _text(self.call(f"read MIG device {i} UUID",
                                                      nv.nvmlDeviceGetUUID, h))
        return out

    # ---- primitive changes
    def create_gpu_instance(self, p: NvmlProfile, start: int) -> Any:
        nv = self.nvml
        placement = nv.c_nvmlGpuInstancePlacement_t()
        placement.start = start
        placement.size = p.memory_slices if p.memory_slices is not None else 0
        return self.call(f"create GPU instance {p.name} at memory slice {start}",
                         nv.nvmlDeviceCreateGpuInstanceWithPlacement, self.handle, p.profile_id,
                         ctypes.byref(placement))

    def create_whole_compute_instance(self, gi: Any, p: NvmlProfile, start: int) -> Any:
        """The compute instance spanning all of ``gi`` (one MIG device per slice)."""
        full = [c for c in self.ci_profiles(gi, p) if int(c.sliceCount) == p.compute_slices]
        op = f"create compute instance in {p.name}@{start}"
        if not full:
            raise MigError(f"GPU {self.index}: {op} failed: no compute-instance profile with "
                           f"{p.compute_slices} slices", gpu_index=self.index, operation=op)
        return self.call(op, self.nvml.nvmlGpuInstanceCreateComputeInstance, gi, int(full[0].id))

    def create_compute_instance_at(self, gi: Any, label: str, ci_profile_id: int, start: int,
                                   size: int) -> Any:
        nv = self.nvml
        placement = nv.c_nvmlComputeInstancePlacement_t()
        placement.start, placement.size = start, size
        return self.call(f"create compute instance (profile {ci_profile_id}) at {start} in {label}",
                         nv.nvmlGpuInstanceCreateComputeInstanceWithPlacement, gi, ci_profile_id,
                         ctypes.byref(placement))

    def destroy_compute_instance(self, ci: ComputeInstance, gi: GpuInstance) -> None:
        self.call(f"destroy compute instance {ci.id} of GPU instance {gi.id} ({gi.label})",
                  self.nvml.nvmlComputeInstanceDestroy, ci.handle)

    def destroy_gpu_instance(self, gi: GpuInstance) -> None:
        self.call(f"destroy GPU instance {gi.id} ({gi.label})", self.nvml.nvmlGpuInstanceDestroy,
                  gi.handle)
