"""A simulated NVML module for MIG tests, enforcing the driver's rules.

``FakeNvml`` exposes the pynvml functions the MIG manager calls, pynvml's own constants,
ctypes structures and ``NVMLError`` classes (errors are raised as ``pynvml.NVMLError(code)``,
so the real subclasses and codes reach the error mapping). Handles are ctypes pointers whose
address keys a registry; destroying an instance removes it, so a stale handle fails with
NVML_ERROR_INVALID_ARGUMENT as on a real driver.

Rules enforced: GPU-instance placements must be allowed for the profile and must not overlap
(memory slices), the sum of compute slices must fit the GPU and a profile's instance count
must not be exceeded (else NVML_ERROR_INSUFFICIENT_RESOURCES); a GPU instance that still has
compute instances, or a compute instance with a running process, cannot be destroyed
(NVML_ERROR_IN_USE); MIG calls fail with NVML_ERROR_NOT_SUPPORTED while MIG is disabled;
changes fail with NVML_ERROR_NO_PERMISSION when unprivileged. ``fail_creates`` injects an
error at the Nth create call (GPU and compute instance creates counted together).
"""
from __future__ import annotations

import ctypes
import functools
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pynvml

from clover_rl.mig.catalog import GpuModel, get_gpu

MUTATING = ("nvmlDeviceCreateGpuInstanceWithPlacement", "nvmlDeviceCreateGpuInstance",
            "nvmlGpuInstanceCreateComputeInstance",
            "nvmlGpuInstanceCreateComputeInstanceWithPlacement", "nvmlGpuInstanceDestroy",
            "nvmlComputeInstanceDestroy", "nvmlDeviceSetMigMode")

# compute-instance profile index -> compute slices (NVML_COMPUTE_INSTANCE_PROFILE_*)
_CI_SLICES = {0: 1, 1: 2, 2: 3, 3: 4, 4: 7, 5: 8, 6: 6}


def _err(code: int) -> pynvml.NVMLError:
    return pynvml.NVMLError(code)


@dataclass(frozen=True)
class FakeProfile:
    index: int  # NVML_GPU_INSTANCE_PROFILE_*
    id: int
    name: str  # without the "MIG " prefix NVML puts in front
    compute: int
    memory_slices: int
    memory_mb: int
    sm: int
    starts: tuple[int, ...]
    instance_count: int | None = None  # default: number of placements

    @property
    def count(self) -> int:
        return self.instance_count if self.instance_count is not None else len(self.starts)


@dataclass
class FakeGpu:
    """A simulated GPU model (what a real board would report)."""

    name: str
    memory_mb: int
    profiles: tuple[FakeProfile, ...]
    compute_slots: int = 7
    memory_slots: int = 8
    serial: str = "fake0"

    @classmethod
    def from_catalog(cls, model: GpuModel | str, name: str | None = None,
                     serial: str = "fake0") -> FakeGpu:
        m = get_gpu(model) if isinstance(model, str) else model
        profs = tuple(
            FakeProfile(p.nvml_index, p.profile_id, p.name, p.compute_slices, p.memory_slices,
                        p.memory_mb, p.sm_count, tuple(s for s, _ in p.placements),
                        p.max_instances)
            for p in m.profiles)
        return cls(name or f"NVIDIA {m.product}", m.memory_mb, profs, m.compute_slices,
                   m.memory_slices, serial=serial)

    def profile_by_id(self, pid: int) -> FakeProfile | None:
        return next((p for p in self.profiles if p.id == pid), None)


def a100_40gb(**kw: Any) -> FakeGpu:
    return FakeGpu.from_catalog("a100-40gb", **kw)


@dataclass(eq=False)
class _Ci:
    id: int
    profile: int
    start: int
    size: int
    uuid: str
    gi: _Gi
    addr: int = 0
    mig_addr: int = 0


@dataclass(eq=False)
class _Gi:
    id: int
    profile: FakeProfile
    start: int
    cis: dict[int, _Ci] = field(default_factory=dict)
    addr: int = 0


@dataclass(eq=False)
class _Dev:
    spec: FakeGpu
    index: int
    mig_current: int
    mig_pending: int
    gis: dict[int, _Gi] = field(default_factory=dict)
    addr: int = 0
    busy: set[int] = field(default_factory=set)  # CI addrs with running processes


def _api(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Count the call and require nvmlInit, like the real library."""

    @functools.wraps(fn)
    def wrapper(self: FakeNvml, *args: Any, **kw: Any) -> Any:
        self.calls[fn.__name__] += 1
        if fn.__name__ != "nvmlInit" and self._init_count <= 0:
            raise _err(pynvml.NVML_ERROR_UNINITIALIZED)
        return fn(self, *args, **kw)

    return wrapper


def _out(ref: Any) -> Any:
    """The object behind a ``byref(x)`` / ``pointer(x)`` argument."""
    if hasattr(ref, "_obj"):
        return ref._obj
    if isinstance(ref, ctypes._Pointer):
        return ref.contents
    raise _err(pynvml.NVML_ERROR_INVALID_ARGUMENT)


class FakeNvml:
    """Drop-in for the ``pynvml`` module, for one or more simulated GPUs."""

    def __init__(self, gpus: list[FakeGpu] | None = None, *, mig: bool = True,
                 privileged: bool = True, library: str = "ok", v2_profiles: bool = True,
                 driver_version: str = "550.54.15") -> None:
        self.library = library  # "ok" | "missing" | "driver_not_loaded"
        self.privileged = privileged
        self.v2_profiles = v2_profiles
        self.driver_version = driver_version
        self.fail_creates: dict[int, int] = {}  # Nth create call (1-based) -> NVML error code
        self.calls: Counter[str] = Counter()
        self._init_count = 0
        self._creates = 0
        self._next_addr = 0x1000
        self._seq = 0
        self._reg: dict[int, tuple[str, Any]] = {}
        mode = pynvml.NVML_DEVICE_MIG_ENABLE if mig else pynvml.NVML_DEVICE_MIG_DISABLE
        self.devices = [_Dev(g, i, mode, mode) for i, g in enumerate(gpus or [a100_40gb()])]
        for d in self.devices:
            d.addr = self._register("dev", d)

    # ---------------------------------------------------------------- test helpers
    def set_mig(self, current: bool, pending: bool | None = None, index: int = 0) -> None:
        d = self.devices[index]
        d.mig_current = int(current)
        d.mig_pending = int(current if pending is None else pending)

    def inject_create_failure(self, nth: int,
                              code: int = pynvml.NVML_ERROR_UNKNOWN) -> None:
        """Make the ``nth`` create call from now on fail with ``code``."""
        self.fail_creates[self._creates + nth] = code

    @property
    def mutations(self) -> int:
        return sum(self.calls[n] for n in MUTATING)

    def layout(self, index: int = 0) -> list[tuple[str, int, int]]:
        """(profile name, start, number of compute instances), sorted by start."""
        d = self.devices[index]
        return sorted((g.profile.name, g.start, len(g.cis)) for g in d.gis.values())

    def ci_layout(self, index: int = 0) -> list[tuple[str, int, list[tuple[int, int, int]]]]:
        d = self.devices[index]
        return sorted((g.profile.name, g.start,
                       sorted((c.profile, c.start, c.size) for c in g.cis.values()))
                      for g in d.gis.values())

    def seed(self, layout: list[tuple[str, int]] | list[tuple[str, int, list[tuple[int, int]]]],
             index: int = 0) -> None:
        """Create instances directly (not counted): ``(name, start)`` gets one whole CI,
        ``(name, start, [(ci_profile_index, ci_start), ...])`` gets those CIs."""
        d = self.devices[index]
        for item in layout:
            p = next(p for p in d.spec.profiles if p.name == item[0])
            gi = self._new_gi(d, p, item[1])
            cis = item[2] if len(item) > 2 else [(self._whole_ci_index(p), 0)]  # type: ignore[misc]
            for ci_index, start in cis:
                self._new_ci(d, gi, ci_index, start)

    def start_process(self, gi_id: int, ci_id: int = 0, index: int = 0) -> None:
        self.devices[index].busy.add(self.devices[index].gis[gi_id].cis[ci_id].addr)

    def stop_processes(self, index: int = 0) -> None:
        self.devices[index].busy.clear()

    # ---------------------------------------------------------------- internals
    def _register(self, kind: str, obj: Any) -> int:
        self._next_addr += 0x10
        self._reg[self._next_addr] = (kind, obj)
        return self._next_addr

    def _lookup(self, handle: Any, kind: str) -> Any:
        try:
            addr = ctypes.cast(handle, ctypes.c_void_p).value
        except (ctypes.ArgumentError, TypeError):
            raise _err(pynvml.NVML_ERROR_INVALID_ARGUMENT) from None
        entry = self._reg.get(addr or 0)
        if entry is None or entry[0] != kind:
            raise _err(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        return entry[1]

    @staticmethod
    def _handle(addr: int, typ: Any) -> Any:
        return ctypes.cast(ctypes.c_void_p(addr), typ)

    def _dev(self, handle: Any, *, mig: bool = True) -> _Dev:
        d = self._lookup(handle, "dev")
        if mig and d.mig_current != pynvml.NVML_DEVICE_MIG_ENABLE:
            raise _err(pynvml.NVML_ERROR_NOT_SUPPORTED)
        return d

    def _gi(self, handle: Any) -> _Gi:
        return self._lookup(handle, "gi")

    def _mutate(self) -> None:
        if not self.privileged:
            raise _err(pynvml.NVML_ERROR_NO_PERMISSION)

    def _count_create(self) -> None:
        self._creates += 1
        code = self.fail_creates.pop(self._creates, None)
        if code is not None:
            raise _err(code)

    def _new_gi(self, d: _Dev, p: FakeProfile, start: int) -> _Gi:
        used = 0
        compute = 0
        for g in d.gis.values():
            used |= ((1 << g.profile.memory_slices) - 1) << g.start
            compute += g.profile.compute
        mask = ((1 << p.memory_slices) - 1) << start
        same = sum(1 for g in d.gis.values() if g.profile.id == p.id)
        if used & mask or compute + p.compute > d.spec.compute_slots or same >= p.count:
            raise _err(pynvml.NVML_ERROR_INSUFFICIENT_RESOURCES)
        if p.compute == d.spec.compute_slots:
            gid = 0
        else:
            gid = next(i for i in range(1, 64) if i not in d.gis)
        gi = _Gi(gid, p, start)
        gi.addr = self._register("gi", gi)
        d.gis[gid] = gi
        return gi

    def _ci_profiles(self, gi: _Gi) -> dict[int, int]:
        c = gi.profile.compute
        return {i: s for i, s in _CI_SLICES.items()
                if s <= c and s in (1, 2, 3, 4, 7) and not (s == 3 and c == 4)}

    def _whole_ci_index(self, p: FakeProfile) -> int:
        return next(i for i, s in _CI_SLICES.items() if s == p.compute)

    @staticmethod
    def _ci_starts(c: int, size: int) -> list[int]:
        step = 4 if size == 3 else size
        return [s for s in range(c - size + 1) if s % step == 0]

    def _new_ci(self, d: _Dev, gi: _Gi, ci_index: int, start: int | None) -> _Ci:
        profiles = self._ci_profiles(gi)
        if ci_index not in profiles:
            raise _err(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        size = profiles[ci_index]
        used = 0
        for c in gi.cis.values():
            used |= ((1 << c.size) - 1) << c.start
        starts = self._ci_starts(gi.profile.compute, size)
        if start is None:
            start = next((s for s in starts if not used & (((1 << size) - 1) << s)), None)
            if start is None:
                raise _err(pynvml.NVML_ERROR_INSUFFICIENT_RESOURCES)
        elif start not in starts:
            raise _err(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        if used & (((1 << size) - 1) << start):
            raise _err(pynvml.NVML_ERROR_INSUFFICIENT_RESOURCES)
        cid = next(i for i in range(64) if i not in gi.cis)
        self._seq += 1
        u = "MIG-" + str(uuid.uuid5(uuid.NAMESPACE_OID, f"{d.spec.serial}/{self._seq}"))
        ci = _Ci(cid, ci_index, start, size, u, gi)
        ci.addr = self._register("ci", ci)
        ci.mig_addr = self._register("mig", ci)
        gi.cis[cid] = ci
        return ci

    def _mig_devices(self, d: _Dev) -> list[_Ci]:
        return [c for g in sorted(d.gis.values(), key=lambda g: g.id)
                for c in sorted(g.cis.values(), key=lambda c: c.id)]

    # ---------------------------------------------------------------- library
    @_api
    def nvmlInit(self) -> None:
        if self.library == "missing":
            raise _err(pynvml.NVML_ERROR_LIBRARY_NOT_FOUND)
        if self.library == "driver_not_loaded":
            raise _err(pynvml.NVML_ERROR_DRIVER_NOT_LOADED)
        self._init_count += 1

    @_api
    def nvmlShutdown(self) -> None:
        self._init_count -= 1

    @_api
    def nvmlSystemGetDriverVersion(self) -> str:
        return self.driver_version

    @_api
    def nvmlDeviceGetCount(self) -> int:
        return len(self.devices)

    @_api
    def nvmlDeviceGetHandleByIndex(self, index: int) -> Any:
        if not 0 <= index < len(self.devices):
            raise _err(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        return self._handle(self.devices[index].addr, pynvml.c_nvmlDevice_t)

    def _any_device(self, handle: Any) -> tuple[str, Any]:
        addr = ctypes.cast(handle, ctypes.c_void_p).value
        entry = self._reg.get(addr or 0)
        if entry is None or entry[0] not in ("dev", "mig"):
            raise _err(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        return entry

    @_api
    def nvmlDeviceGetName(self, handle: Any) -> str:
        kind, obj = self._any_device(handle)
        if kind == "mig":
            return f"{obj.gi.profile.name} device"
        return obj.spec.name

    @_api
    def nvmlDeviceGetUUID(self, handle: Any) -> str:
        kind, obj = self._any_device(handle)
        if kind == "mig":
            return obj.uuid
        return "GPU-" + str(uuid.uuid5(uuid.NAMESPACE_OID, obj.spec.serial))

    @_api
    def nvmlDeviceGetMemoryInfo(self, handle: Any, version: Any = None) -> Any:
        d = self._dev(handle, mig=False)
        m = pynvml.c_nvmlMemory_t()
        m.total = d.spec.memory_mb * 1024 * 1024
        m.free = m.total
        m.used = 0
        return m

    @_api
    def nvmlDeviceGetMigMode(self, handle: Any) -> list[int]:
        d = self._dev(handle, mig=False)
        if not d.spec.profiles:
            raise _err(pynvml.NVML_ERROR_NOT_SUPPORTED)
        return [d.mig_current, d.mig_pending]

    # ---------------------------------------------------------------- GPU instance profiles
    @_api
    def nvmlDeviceGetGpuInstanceProfileInfo(self, handle: Any, profile: int,
                                            version: int = 2) -> Any:
        d = self._dev(handle)
        p = next((p for p in d.spec.profiles if p.index == profile), None)
        if p is None:
            raise _err(pynvml.NVML_ERROR_NOT_SUPPORTED)
        if version == 2:
            if not self.v2_profiles:
                raise _err(pynvml.NVML_ERROR_FUNCTION_NOT_FOUND)
            info = pynvml.c_nvmlGpuInstanceProfileInfo_v2_t()
            info.name = f"MIG {p.name}".encode()
        elif version == 1:
            info = pynvml.c_nvmlGpuInstanceProfileInfo_t()
        else:
            raise _err(pynvml.NVML_ERROR_FUNCTION_NOT_FOUND)
        info.id = p.id
        info.sliceCount = p.compute
        info.instanceCount = p.count
        info.multiprocessorCount = p.sm
        info.memorySizeMB = p.memory_mb
        return info

    nvmlDeviceGetGpuInstanceProfileInfoV = nvmlDeviceGetGpuInstanceProfileInfo

    @_api
    def nvmlDeviceGetGpuInstancePossiblePlacements(self, handle: Any, profile_id: int,
                                                   placements: Any, count_ref: Any) -> int:
        d = self._dev(handle)
        p = d.spec.profile_by_id(profile_id)
        if p is None:
            raise _err(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        count = _out(count_ref)
        if placements is None:
            count.value = len(p.starts)
            return pynvml.NVML_SUCCESS
        if count.value < len(p.starts) or len(placements) < len(p.starts):
            count.value = len(p.starts)
            raise _err(pynvml.NVML_ERROR_INSUFFICIENT_SIZE)
        for i, s in enumerate(p.starts):
            placements[i].start = s
            placements[i].size = p.memory_slices
        count.value = len(p.starts)
        return pynvml.NVML_SUCCESS

    # ---------------------------------------------------------------- GPU instances
    @_api
    def nvmlDeviceCreateGpuInstanceWithPlacement(self, handle: Any, profile_id: int,
                                                 placement_ref: Any) -> Any:
        d = self._dev(handle)
        self._mutate()
        p = d.spec.profile_by_id(profile_id)
        placement = _out(placement_ref)
        if p is None or placement.start not in p.starts or placement.size != p.memory_slices:
            raise _err(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        self._count_create()
        gi = self._new_gi(d, p, placement.start)
        return self._handle(gi.addr, pynvml.c_nvmlGpuInstance_t)

    @_api
    def nvmlGpuInstanceDestroy(self, gi_handle: Any) -> int:
        gi = self._gi(gi_handle)
        self._mutate()
        if gi.cis:
            raise _err(pynvml.NVML_ERROR_IN_USE)
        d = self._owner(gi)
        del d.gis[gi.id]
        del self._reg[gi.addr]
        return pynvml.NVML_SUCCESS

    def _owner(self, gi: _Gi) -> _Dev:
        return next(d for d in self.devices if d.gis.get(gi.id) is gi)

    @_api
    def nvmlDeviceGetGpuInstances(self, handle: Any, profile_id: int, gis_ref: Any,
                                  count_ref: Any) -> int:
        d = self._dev(handle)
        if d.spec.profile_by_id(profile_id) is None:
            raise _err(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        found = sorted((g for g in d.gis.values() if g.profile.id == profile_id),
                       key=lambda g: g.id)
        count = _out(count_ref)
        if count.value < len(found) or len(gis_ref) < len(found):
            count.value = len(found)
            raise _err(pynvml.NVML_ERROR_INSUFFICIENT_SIZE)
        for i, g in enumerate(found):
            gis_ref[i] = self._handle(g.addr, pynvml.c_nvmlGpuInstance_t)
        count.value = len(found)
        return pynvml.NVML_SUCCESS

    @_api
    def nvmlGpuInstanceGetInfo(self, gi_handle: Any) -> Any:
        gi = self._gi(gi_handle)
        info = pynvml.c_nvmlGpuInstanceInfo_t()
        info.device = self._handle(self._owner(gi).addr, pynvml.c_nvmlDevice_t)
        info.id = gi.id
        info.profileId = gi.profile.id
        info.placement.start = gi.start
        info.placement.size = gi.profile.memory_slices
        return info

    # ---------------------------------------------------------------- compute instances
    @_api
    def nvmlGpuInstanceGetComputeInstanceProfileInfo(self, gi_handle: Any, profile: int,
                                                     eng_profile: int, version: int = 2) -> Any:
        gi = self._gi(gi_handle)
        profiles = self._ci_profiles(gi)
        if profile not in profiles or eng_profile != pynvml.NVML_COMPUTE_INSTANCE_ENGINE_PROFILE_SHARED:
            raise _err(pynvml.NVML_ERROR_NOT_SUPPORTED)
        if version == 2:
            if not self.v2_profiles:
                raise _err(pynvml.NVML_ERROR_FUNCTION_NOT_FOUND)
            info = pynvml.c_nvmlComputeInstanceProfileInfo_v2_t()
            info.name = f"MIG {profiles[profile]}c".encode()
        else:
            info = pynvml.c_nvmlComputeInstanceProfileInfo_t()
        size = profiles[profile]
        info.id = profile
        info.sliceCount = size
        info.instanceCount = len(self._ci_starts(gi.profile.compute, size))
        info.multiprocessorCount = gi.profile.sm * size // gi.profile.compute
        return info

    nvmlGpuInstanceGetComputeInstanceProfileInfoV = nvmlGpuInstanceGetComputeInstanceProfileInfo

    @_api
    def nvmlGpuInstanceCreateComputeInstance(self, gi_handle: Any, profile_id: int) -> Any:
        gi = self._gi(gi_handle)
        self._mutate()
        self._count_create()
        ci = self._new_ci(self._owner(gi), gi, profile_id, None)
        return self._handle(ci.addr, pynvml.c_nvmlComputeInstance_t)

    @_api
    def nvmlGpuInstanceCreateComputeInstanceWithPlacement(self, gi_handle: Any, profile_id: int,
                                                          placement_ref: Any) -> Any:
        gi = self._gi(gi_handle)
        self._mutate()
        placement = _out(placement_ref)
        if self._ci_profiles(gi).get(profile_id) != placement.size:
            raise _err(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        self._count_create()
        ci = self._new_ci(self._owner(gi), gi, profile_id, placement.start)
        return self._handle(ci.addr, pynvml.c_nvmlComputeInstance_t)

    @_api
    def nvmlComputeInstanceDestroy(self, ci_handle: Any) -> int:
        ci = self._lookup(ci_handle, "ci")
        self._mutate()
        d = self._owner(ci.gi)
        if ci.addr in d.busy:
            raise _err(pynvml.NVML_ERROR_IN_USE)
        del ci.gi.cis[ci.id]
        del self._reg[ci.addr]
        del self._reg[ci.mig_addr]
        return pynvml.NVML_SUCCESS

    @_api
    def nvmlGpuInstanceGetComputeInstances(self, gi_handle: Any, profile_id: int, cis_ref: Any,
                                           count_ref: Any) -> int:
        gi = self._gi(gi_handle)
        if profile_id not in self._ci_profiles(gi):
            raise _err(pynvml.NVML_ERROR_NOT_SUPPORTED)
        found = sorted((c for c in gi.cis.values() if c.profile == profile_id),
                       key=lambda c: c.id)
        count = _out(count_ref)
        if count.value < len(found) or len(cis_ref) < len(found):
            count.value = len(found)
            raise _err(pynvml.NVML_ERROR_INSUFFICIENT_SIZE)
        for i, c in enumerate(found):
            cis_ref[i] = self._handle(c.addr, pynvml.c_nvmlComputeInstance_t)
        count.value = len(found)
        return pynvml.NVML_SUCCESS

    @_api
    def nvmlComputeInstanceGetInfo(self, ci_handle: Any) -> Any:
        ci = self._lookup(ci_handle, "ci")
        info = pynvml.c_nvmlComputeInstanceInfo_t()
        info.device = self._handle(self._owner(ci.gi).addr, pynvml.c_nvmlDevice_t)
        info.gpuInstance = self._handle(ci.gi.addr, pynvml.c_nvmlGpuInstance_t)
        info.id = ci.id
        info.profileId = ci.profile
        info.placement.start = ci.start
        info.placement.size = ci.size
        return info

    # ---------------------------------------------------------------- MIG devices
    @_api
    def nvmlDeviceGetMaxMigDeviceCount(self, handle: Any) -> int:
        d = self._dev(handle, mig=False)
        return d.spec.compute_slots if d.mig_current == pynvml.NVML_DEVICE_MIG_ENABLE else 0

    @_api
    def nvmlDeviceGetMigDeviceHandleByIndex(self, handle: Any, index: int) -> Any:
        d = self._dev(handle)
        devs = self._mig_devices(d)
        if not 0 <= index < len(devs):
            raise _err(pynvml.NVML_ERROR_NOT_FOUND)
        return self._handle(devs[index].mig_addr, pynvml.c_nvmlDevice_t)

    @_api
    def nvmlDeviceGetGpuInstanceId(self, handle: Any) -> int:
        return self._lookup(handle, "mig").gi.id

    @_api
    def nvmlDeviceGetComputeInstanceId(self, handle: Any) -> int:
        return self._lookup(handle, "mig").id


# pynvml's constants, ctypes structures and error classes, so FakeNvml passes for the module.
for _name in dir(pynvml):
    if _name.startswith(("NVML_", "NVMLError", "c_nvml")):
        setattr(FakeNvml, _name, getattr(pynvml, _name))
