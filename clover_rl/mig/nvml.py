"""NVML access for MIG: errors, profile discovery, layout reading and the primitive operations.

Everything goes through an injectable NVML module (``pynvml`` from nvidia-ml-py by default, a
simulated one in tests), so the same code paths are exercised with and without a GPU. The
static catalog (:mod:`clover_rl.mig.catalog`) is only a fallback: profiles, profile IDs and
placements are read from the driver whenever it can answer, and the two are compared so a
catalog that drifted from the hardware is reported rather than silently trusted.

Every NVML failure becomes a one-line :class:`MigError` naming the GPU index and the operation.
:mod:`clover_rl.mig.manager` builds apply/rollback and the read-only report on top of this.
"""
from __future__ import annotations

import ctypes
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from clover_rl.errors import BackendError
from clover_rl.mig.catalog import GPUS, GpuModel, MigProfile
from clover_rl.mig.partition import Partition, Slice

T = TypeVar("T")

# NVML error codes (stable across driver versions; mirrored so messages never need the library).
_ERR_NAMES = {
    1: "UNINITIALIZED", 2: "INVALID_ARGUMENT", 3: "NOT_SUPPORTED", 4: "NO_PERMISSION",
    5: "ALREADY_INITIALIZED", 6: "NOT_FOUND", 7: "INSUFFICIENT_SIZE", 9: "DRIVER_NOT_LOADED",
    12: "LIBRARY_NOT_FOUND", 13: "FUNCTION_NOT_FOUND", 15: "GPU_IS_LOST", 16: "RESET_REQUIRED",
    18: "LIB_RM_VERSION_MISMATCH", 19: "IN_USE", 23: "INSUFFICIENT_RESOURCES",
    28: "GPU_NOT_FOUND", 29: "INVALID_STATE", 999: "UNKNOWN",
}
_ERR = {name: code for code, name in _ERR_NAMES.items()}

#: Array capacity for NVML list calls: no GPU has more than 8 memory slices, so no profile has
#: more than 8 placements or instances.
_MAX_ITEMS = 8


# --------------------------------------------------------------------------- errors


class MigError(BackendError):
    """A MIG query or change failed; the message names the GPU index and the operation.

    ``nvml_code`` is the NVML return code when NVML raised it. After a failed apply,
    ``rollback_ok`` says whether the previous layout was restored and ``rollback_error`` holds
    the rollback's own failure.
    """

    def __init__(self, message: str, *, gpu_index: int | None = None, operation: str = "",
                 nvml_code: int | None = None) -> None:
        super().__init__(message)
        self.gpu_index = gpu_index
        self.operation = operation
        self.nvml_code = nvml_code
        self.rollback_ok: bool | None = None
        self.rollback_error: MigError | None = None


class NvmlUnavailableError(MigError):
    """No NVIDIA driver, NVML library or nvidia-ml-py on this machine, or no such GPU."""


class MigModeError(MigError):
    """MIG mode is disabled, unsupported, or changed but waiting for a GPU reset."""


class MigPermissionError(MigError):
    """MIG changes need root (NVML_ERROR_NO_PERMISSION)."""


class MigInUseError(MigError):
    """An instance still has compute instances or running processes (NVML_ERROR_IN_USE)."""


class MigResourcesError(MigError):
    """Placement overlap or compute budget exceeded (NVML_ERROR_INSUFFICIENT_RESOURCES)."""


_REASONS: dict[str, tuple[type[MigError], str]] = {
    "NO_PERMISSION": (MigPermissionError, "insufficient permissions (MIG changes need root)"),
    "IN_USE": (MigInUseError, "GPU in use (stop the processes on its MIG devices first)"),
    "INSUFFICIENT_RESOURCES": (MigResourcesError, (
        "insufficient resources (placement overlaps an existing instance "
        "or the GPU's compute slices are used up)")),
    "LIBRARY_NOT_FOUND": (NvmlUnavailableError,
                          "NVML library libnvidia-ml.so.1 not found (no NVIDIA driver installed)"),
    "DRIVER_NOT_LOADED": (NvmlUnavailableError, "NVIDIA driver not loaded"),
    "LIB_RM_VERSION_MISMATCH": (NvmlUnavailableError,
                                "NVML/driver version mismatch (reload the driver or reboot)"),
    "GPU_NOT_FOUND": (NvmlUnavailableError, "no such GPU"),
    "GPU_IS_LOST": (NvmlUnavailableError, "GPU is lost (fell off the bus)"),
    "NOT_SUPPORTED": (MigError, "not supported by this GPU or driver"),
    "RESET_REQUIRED": (MigModeError, "GPU reset required"),
    "INVALID_ARGUMENT": (MigError, "invalid argument (stale handle or bad profile/placement)"),
    "NOT_FOUND": (MigError, "not found"),
}


def nvml_error_name(exc: BaseException) -> str:
    """``NVML_ERROR_IN_USE``-style name of an NVML exception's code."""
    code = getattr(exc, "value", None)
    return f"NVML_ERROR_{_ERR_NAMES.get(code, str(code))}"  # type: ignore[arg-type]


def is_nvml_error(exc: BaseException, *names: str) -> bool:
    """True when ``exc`` is an NVML error with one of the given codes (``"IN_USE"``, ...)."""
    code = getattr(exc, "value", None)
    return isinstance(code, int) and type(exc).__name__.startswith("NVMLError") and (
        not names or _ERR_NAMES.get(code) in names)


def map_nvml_error(exc: BaseException, gpu_index: int | None, operation: str) -> MigError:
    """Turn an NVML exception into a one-line MigError subclass naming GPU and operation."""
    code = getattr(exc, "value", None)
    name = _ERR_NAMES.get(code, "") if isinstance(code, int) else ""
    cls, reason = _REASONS.get(name, (MigError, "NVML error"))
    where = f"GPU {gpu_index}: " if gpu_index is not None else ""
    msg = f"{where}{operation} failed: {reason} [{nvml_error_name(exc)}]"
    return cls(msg, gpu_index=gpu_index, operation=operation,
               nvml_code=code if isinstance(code, int) else None)


def load_nvml(module: Any = None) -> Any:
    """The NVML module to use: the injected one, else ``pynvml`` from nvidia-ml-py."""
    if module is not None:
        return module
    try:
        import pynvml
    except ImportError as e:  # pragma: no cover - nvidia-ml-py is a dependency
        raise NvmlUnavailableError(
            f"NVML unavailable: cannot import pynvml ({e}); install nvidia-ml-py") from e
    return pynvml


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode(errors="replace").rstrip("\x00")
    return str(value)


# --------------------------------------------------------------------------- data


@dataclass(frozen=True)
class NvmlProfile:
    """A GPU-instance profile as the driver (or, as fallback, the catalog) describes it."""

    name: str  # "3g.20gb"
    nvml_index: int  # NVML_GPU_INSTANCE_PROFILE_* constant
    profile_id: int  # nvidia-smi mig -lgip ID, used by create/list calls
    compute_slices: int
    memory_slices: int | None  # None when no placement is known
    memory_mb: int
    sm_count: int
    instance_count: int
    placements: tuple[tuple[int, int], ...]  # (start, size) in memory slices
    source: str = "nvml"  # or "catalog"

    @property
    def short(self) -> str:
        return self.name.split(".")[0]

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "nvml_index": self.nvml_index, "profile_id": self.profile_id,
            "compute_slices": self.compute_slices, "memory_slices": self.memory_slices,
            "memory_mb": self.memory_mb, "sm_count": self.sm_count,
            "instance_count": self.instance_count,
            "placements": [list(p) for p in self.placements], "source": self.source,
        }

    @classmethod
    def from_catalog(cls, p: MigProfile) -> NvmlProfile:
        return cls(p.name, p.nvml_index, p.profile_id, p.compute_slices, p.memory_slices,
                   p.memory_mb, p.sm_count, len(p.placements), p.placements, "catalog")


@dataclass(frozen=True)
class MigMode:
    current: bool
    pending: bool

    @property
    def ready(self) -> bool:
        """MIG is on and no reset is pending, so instances can be changed."""
        return self.current and self.pending

    def to_dict(self) -> dict[str, Any]:
        return {"current": "enabled" if self.current else "disabled",
                "pending": "enabled" if self.pending else "disabled",
                "reset_pending": self.current != self.pending}


@dataclass(frozen=True)
class ComputeInstance:
    id: int
    profile_id: int
    start: int  # in compute slices of its GPU instance
    size: int
    uuid: str | None = None  # the MIG device UUID (CUDA_VISIBLE_DEVICES=MIG-...)
    handle: Any = field(default=None, compare=False, repr=False)  # valid until layout changes

    def to_dict(self) -> dict[str, Any]:
        return {"ci_id": self.id, "profile_id": self.profile_id, "start": self.start,
                "size": self.size, "uuid": self.uuid}


@dataclass(frozen=True)
class GpuInstance:
    id: int
    profile: str
    profile_id: int
    start: int  # placement in memory slices
    size: int
    compute_slices: int
    compute_instances: tuple[ComputeInstance, ...] = ()
    handle: Any = field(default=None, compare=False, repr=False)

    @property
    def label(self) -> str:
        return f"{self.profile}@{self.start}"

    @property
    def is_whole(self) -> bool:
        """Exactly one compute instance spanning the GPU instance (what apply creates)."""
        cis = self.compute_instances
        return len(cis) == 1 and cis[0].size == self.compute_slices

    @property
    def uuid(self) -> str | None:
        """The MIG device UUID when there is exactly one compute instance."""
        cis = self.compute_instances
        return cis[0].uuid if len(cis) == 1 else None

    def to_dict(self) -> dict[str, Any]:
        return {"gi_id": self.id, "profile": self.profile, "profile_id": self.profile_id,
                "start": self.start, "size": self.size, "compute_slices": self.compute_slices,
                "compute_instances": [c.to_dict() for c in self.compute_instances]}


@dataclass(frozen=True)
class MigLayout:
    """GPU instances of one GPU, ordered by placement start."""

    gpu_index: int
    instances: tuple[GpuInstance, ...]

    @property
    def label(self) -> str:
        """``4g.20gb@0+3g.20gb@4`` (``empty`` when there are no instances)."""
        return "+".join(g.label for g in self.instances) or "empty"

    def slices(self) -> tuple[Slice, ...]:
        return tuple(sorted(Slice(g.start, g.profile, g.size) for g in self.instances))

    def as_partition(self, gpu: str) -> Partition:
        return Partition(gpu, self.slices())

    def find(self, profile: str, start: int) -> GpuInstance | None:
        for g in self.instances:
            if g.profile == profile and g.start == start:
                return g
        return None

    def to_dict(self) -> dict[str, Any]:
        return {"label": self.label, "instances": [g.to_dict() for g in self.instances]}


# --------------------------------------------------------------------------- catalog


def _family(product: str) -> str:
    return product.replace("-", " ").split()[0].upper()


def match_catalog_model(device_name: str, memory_mb: int | None) -> GpuModel | None:
    """The catalog GpuModel for an NVML device name, by product name then by memory size.

    Exact product fragments win (``NVIDIA A100-SXM4-40GB``); otherwise a model of the same
    family (A100/H100/H200) whose memory is within 10% of the device's, nearest first, so
    PCIe and SXM boards of one memory size share a catalog.
    """
    upper = device_name.upper()
    for model in GPUS.values():
        if model.product.upper() in upper:
            return model
    if not memory_mb:
        return None
    same_family = [m for m in GPUS.values() if _family(m.product) in upper]
    close = [m for m in same_family if abs(m.memory_mb - memory_mb) <= 0.1 * m.memory_mb]
    return min(close, key=lambda m: abs(m.memory_mb - memory_mb)) if close else None


def compare_with_catalog(profiles: tuple[NvmlProfile, ...], model: GpuModel) -> list[str]:
    """One line per difference between NVML-discovered profiles and the catalog model."""
    out: list[str] = []
    by_index = {p.nvml_index: p for p in profiles}
    cat_index = {p.nvml_index: p for p in model.profiles}
    for idx, cp in sorted(cat_index.items()):
        if idx not in by_index:
            out.append(f"catalog profile {cp.name} (NVML index {idx}) not reported by NVML "
                       f"for {model.name}")
    for idx, np_ in sorted(by_index.items()):
        cp = cat_index.get(idx)
        if cp is None:
            out.append(f"NVML profile {np_.name} (index {idx}, id {np_.profile_id}) "
                       f"missing from catalog {model.name}")
            continue
        checks: list[tuple[str, Any, Any]] = [
            ("name", np_.name, cp.name),
            ("profile_id", np_.profile_id, cp.profile_id),
            ("compute_slices", np_.compute_slices, cp.compute_slices),
            ("memory_slices", np_.memory_slices, cp.memory_slices),
            ("memory_mb", np_.memory_mb, cp.memory_mb),
            ("sm_count", np_.sm_count, cp.sm_count),
            ("placements", list(np_.placements), list(cp.placements)),
        ]
        for what, got, want in checks:
            if got is not None and got != want:
                out.append(f"{cp.name} (NVML index {idx}): {what} NVML {got} != catalog {want}")
    return out


# --------------------------------------------------------------------------- device access


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


def __getattr__(name: str) -> Any:
    """``from clover_rl.mig.nvml import MigManager, mig_query_report`` also works (lazy, as
    :mod:`clover_rl.mig.manager` imports this module)."""
    if name in ("MigManager", "ApplyResult", "mig_query_report"):
        from clover_rl.mig import manager

        return getattr(manager, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
