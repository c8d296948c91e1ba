"""Apply MIG partitions to a real GPU through NVML, with idempotence and rollback.

:class:`MigManager` turns a :class:`~clover_rl.mig.partition.Partition` (profiles with explicit
placements) into GPU instances, each holding one compute instance that spans it, and returns
the slice -> MIG device UUID mapping the serving workers need for ``CUDA_VISIBLE_DEVICES``.

Why it only touches what must change: a GPU instance whose profile and placement are already in
the target, holding exactly one full-size compute instance, is kept, so workers on unchanged
slices keep running across a reconfiguration (the paper pays reconfiguration time only for
slices that change). ``full_rebuild=True`` destroys and recreates everything instead. Order is
always: destroy compute instances, then GPU instances, then create GPU instances largest first
with explicit placements, each followed by its compute instance. A failure part-way through is
rolled back to the exact previous layout (profiles, placements and compute instances) and the
raised error names both the original failure and the rollback outcome.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from clover_rl.errors import ConfigError
from clover_rl.mig.catalog import GpuModel, get_gpu
from clover_rl.mig.nvml import (
    GpuInstance,
    MigError,
    MigLayout,
    MigMode,
    NvmlGpu,
    NvmlProfile,
    compare_with_catalog,
    match_catalog_model,
)
from clover_rl.mig.partition import Partition, Slice


@dataclass(frozen=True)
class _Want:
    """One GPU instance the layout should contain; ``cis`` None means one whole CI."""

    profile: NvmlProfile
    start: int
    cis: tuple[tuple[int, int, int], ...] | None = None  # (ci profile id, start, size)

    @property
    def label(self) -> str:
        return f"{self.profile.name}@{self.start}"

    def matches(self, gi: GpuInstance) -> bool:
        if gi.profile_id != self.profile.profile_id or gi.start != self.start:
            return False
        if self.cis is None:
            return gi.is_whole
        have = sorted((c.profile_id, c.start, c.size) for c in gi.compute_instances)
        return have == sorted(self.cis)


@dataclass(frozen=True)
class ApplyResult:
    """Outcome of :meth:`MigManager.apply`; ``uuids`` maps the target's slices to MIG UUIDs."""

    changed: bool
    before: MigLayout
    layout: MigLayout
    uuids: dict[Slice, str]
    kept: tuple[str, ...] = ()
    destroyed: tuple[str, ...] = ()
    created: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "changed": self.changed, "before": self.before.label, "after": self.layout.label,
            "kept": list(self.kept), "destroyed": list(self.destroyed),
            "created": list(self.created),
            "uuids": {f"{s.profile}@{s.start}": u for s, u in self.uuids.items()},
        }


def _largest_first(w: _Want) -> tuple[int, int, int]:
    return (-w.profile.compute_slices, -(w.profile.memory_slices or 0), w.start)


class MigManager:
    """MIG state of one GPU: discovery, layout, apply with rollback, read-only description.

    ``nvml`` is the NVML module (``pynvml`` by default; tests inject a simulated one).
    ``model`` overrides the catalog GPU model that would otherwise be matched from the
    device name and memory size. Use as a context manager so NVML is shut down afterwards.
    """

    def __init__(self, index: int = 0, nvml: Any = None, model: GpuModel | str | None = None):
        self.gpu = NvmlGpu(index, nvml)
        self._model_arg = get_gpu(model) if isinstance(model, str) else model
        self._model: GpuModel | None = None
        self._model_known = False
        self._profiles: tuple[NvmlProfile, ...] | None = None

    # ---- lifecycle
    def open(self) -> MigManager:
        self.gpu.open()
        return self

    def close(self) -> None:
        self.gpu.close()

    def __enter__(self) -> MigManager:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def index(self) -> int:
        return self.gpu.index

    # ---- reads
    @property
    def model(self) -> GpuModel | None:
        """The catalog model of this GPU, or None for a GPU the catalog does not know."""
        if self._model_arg is not None:
            return self._model_arg
        if not self._model_known:
            self._model = match_catalog_model(self.gpu.name(), self.gpu.memory_mb())
            self._model_known = True
        return self._model

    def mode(self) -> MigMode:
        return self.gpu.mig_mode()

    def profiles(self) -> tuple[NvmlProfile, ...]:
        """Profiles from NVML; the catalog's when the driver lists none (MIG disabled)."""
        if self._profiles is None:
            found = self.gpu.profiles()
            if not found and self.model is not None:
                found = tuple(NvmlProfile.from_catalog(p) for p in self.model.profiles)
            self._profiles = found
        return self._profiles

    @property
    def profiles_source(self) -> str:
        profs = self.profiles()
        return profs[0].source if profs else "none"

    def catalog_differences(self) -> list[str]:
        """One line per field where NVML and the catalog disagree (empty when they agree)."""
        model = self.model
        if model is None:
            return [f"GPU {self.index} ({self.gpu.name()}) matches no catalog GPU model"]
        if self.profiles_source != "nvml":
            return []
        return compare_with_catalog(self.profiles(), model)

    def layout(self) -> MigLayout:
        """Current GPU instances, compute instances and MIG UUIDs (MIG must be enabled)."""
        mode = self.gpu.mig_mode()
        if not mode.current:
            self.gpu.require_mig_ready("read MIG layout")
        return self.gpu.layout(self._nvml_profiles("read MIG layout"))

    def partition(self) -> Partition:
        """The current layout as a Partition, with catalog profile names where known."""
        model = self.model
        names = {p.nvml_index: p.name for p in model.profiles} if model else {}
        by_id = {p.profile_id: p for p in self.profiles()}
        slices = []
        for g in self.layout().instances:
            p = by_id.get(g.profile_id)
            name = names.get(p.nvml_index, g.profile) if p else g.profile
            slices.append(Slice(g.start, name, g.size))
        return Partition(model.name if model else self.gpu.name(), tuple(sorted(slices)))

    def uuids(self, partition: Partition, layout: MigLayout | None = None) -> dict[Slice, str]:
        """Slice -> MIG device UUID for a partition that is currently applied."""
        layout = layout if layout is not None else self.layout()
        out: dict[Slice, str] = {}
        for s in partition.slices:
            p = self._resolve(s.profile)
            gi = next((g for g in layout.instances
                       if g.profile_id == p.profile_id and g.start == s.start), None)
            if gi is None or gi.uuid is None:
                raise MigError(f"GPU {self.index}: find MIG device of slice {s.profile}@{s.start} "
                               f"failed: not in the current layout {layout.label}",
                               gpu_index=self.index, operation="find MIG device")
            out[s] = gi.uuid
        return out

    def describe(self) -> dict[str, Any]:
        """Read-only summary (name, MIG mode, profiles, layout) as a JSON-ready dict.

        Never changes the GPU. Parts that cannot be read (MIG disabled, no permission) are
        left empty and explained in ``errors`` instead of raising.
        """
        g = self.gpu
        model = self.model
        rep: dict[str, Any] = {
            "gpu_index": self.index, "name": g.name(), "uuid": g.uuid(),
            "memory_mb": g.memory_mb(), "driver_version": g.driver_version(),
            "catalog_model": model.name if model else None,
            "catalog_source": model.source if model else None, "mig_supported": False,
            "mig_mode": None, "profiles_source": None, "profiles": [],
            "catalog_differences": [], "layout": None, "partition": None, "mig_devices": [],
            "errors": [],
        }
        errors: list[str] = rep["errors"]
        try:
            mode = g.mig_mode()
        except MigError as e:
            errors.append(str(e))
            return rep
        rep["mig_supported"] = True
        rep["mig_mode"] = mode.to_dict()
        if mode.current != mode.pending:
            errors.append(f"GPU {self.index}: MIG mode change pending a GPU reset")
        try:
            profs = self.profiles()
            rep["profiles_source"] = self.profiles_source
            rep["profiles"] = [p.to_dict() for p in profs]
            rep["catalog_differences"] = self.catalog_differences()
        except MigError as e:
            errors.append(str(e))
        if not mode.current:
            errors.append(f"GPU {self.index}: MIG mode is disabled; no layout to read")
            return rep
        try:
            rep["mig_devices"] = [{"gi_id": k[0], "ci_id": k[1], "uuid": u}
                                  for k, u in sorted(g.mig_devices().items())]
        except MigError as e:
            errors.append(str(e))
        try:
            layout = self.layout()
            rep["layout"] = layout.to_dict()
            rep["partition"] = layout.label
        except MigError as e:
            errors.append(str(e))
        return rep

    # ---- changes
    def apply(self, partition: Partition, *, full_rebuild: bool = False) -> ApplyResult:
        """Make the GPU's layout equal ``partition``; no NVML change when it already is.

        Raises ConfigError for a partition that cannot exist on this GPU (checked before
        anything is touched) and a MigError subclass when NVML refuses; after a part-way
        failure the previous layout is restored and the error says whether that worked.
        """
        self.gpu.require_mig_ready(f"apply partition {self._plabel(partition)}")
        op = f"apply partition {self._plabel(partition)}"
        wants = self._target(partition)
        profiles = self._nvml_profiles(op)
        before = self.gpu.layout(profiles)
        if len(wants) == len(before.instances) and all(
                any(w.matches(g) for g in before.instances) for w in wants):
            return ApplyResult(False, before, before, self.uuids(partition, before),
                               kept=tuple(g.label for g in before.instances))
        try:
            kept, destroyed, created = self._converge(wants, before, full_rebuild)
        except Exception as e:
            self._fail(e, before, profiles)
            raise  # _fail always raises
        after = self.gpu.layout(profiles)
        return ApplyResult(True, before, after, self.uuids(partition, after), kept, destroyed,
                           created)

    def _converge(self, wants: list[_Want], current: MigLayout,
                  full_rebuild: bool) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
        remaining = list(current.instances)
        kept: list[str] = []
        todo: list[_Want] = []
        for w in wants:
            hit = None if full_rebuild else next((g for g in remaining if w.matches(g)), None)
            if hit is None:
                todo.append(w)
            else:
                remaining.remove(hit)
                kept.append(hit.label)
        for gi in remaining:
            for ci in gi.compute_instances:
                self.gpu.destroy_compute_instance(ci, gi)
        for gi in remaining:
            self.gpu.destroy_gpu_instance(gi)
        created: list[str] = []
        for w in sorted(todo, key=_largest_first):
            handle = self.gpu.create_gpu_instance(w.profile, w.start)
            if w.cis is None:
                self.gpu.create_whole_compute_instance(handle, w.profile, w.start)
            else:
                for ci_profile, start, size in w.cis:
                    self.gpu.create_compute_instance_at(handle, w.label, ci_profile, start, size)
            created.append(w.label)
        return tuple(kept), tuple(g.label for g in remaining), tuple(created)

    def _fail(self, err: Exception, before: MigLayout, profiles: tuple[NvmlProfile, ...]) -> None:
        """Restore ``before`` after a failed apply, then raise an error describing both."""
        by_id = {p.profile_id: p for p in profiles}
        wants = [_Want(by_id[g.profile_id], g.start,
                       tuple((c.profile_id, c.start, c.size) for c in g.compute_instances))
                 for g in before.instances]
        rb_error: MigError | None = None
        left = "unknown"
        try:
            now = self.gpu.layout(profiles)
            self._converge(wants, now, full_rebuild=False)
            restored = self.gpu.layout(profiles)
            left = restored.label
            if not (len(restored.instances) == len(wants)
                    and all(any(w.matches(g) for g in restored.instances) for w in wants)):
                rb_error = MigError(f"GPU {self.index}: rollback ended at {left}, not {before.label}",
                                    gpu_index=self.index, operation="rollback")
        except MigError as e:
            rb_error = e
            try:
                left = self.gpu.layout(profiles).label
            except MigError:
                pass
        if not isinstance(err, MigError):
            raise err
        if rb_error is None:
            msg = f"{err}; rolled back to the previous layout {before.label}"
        else:
            msg = (f"{err}; rollback FAILED ({rb_error}); GPU {self.index} left as {left}, "
                   f"was {before.label}")
        new = type(err)(msg, gpu_index=err.gpu_index, operation=err.operation,
                        nvml_code=err.nvml_code)
        new.rollback_ok = rb_error is None
        new.rollback_error = rb_error
        raise new from err

    # ---- helpers
    def _nvml_profiles(self, operation: str) -> tuple[NvmlProfile, ...]:
        profs = self.profiles()
        if self.profiles_source != "nvml":
            raise MigError(f"GPU {self.index}: {operation} failed: NVML reports no MIG profiles",
                           gpu_index=self.index, operation=operation)
        return profs

    def _plabel(self, partition: Partition) -> str:
        return "+".join(f"{s.profile}@{s.start}" for s in partition.slices) or "empty"

    def _resolve(self, name: str) -> NvmlProfile:
        """An NVML profile for a catalog or NVML profile name (full ``3g.20gb`` or ``3g``)."""
        profs = self.profiles()
        for p in profs:
            if p.name == name:
                return p
        model = self.model
        if model is not None:
            try:
                idx = model.profile(name).nvml_index
            except ConfigError:
                idx = None
            for p in profs:
                if p.nvml_index == idx:
                    return p
        known = ", ".join(p.name for p in profs)
        raise ConfigError(f"unknown MIG profile {name!r} for GPU {self.index} (known: {known})")

    def _target(self, partition: Partition) -> list[_Want]:
        """Validate the partition against this GPU's profiles and placements."""
        model = self.model
        if model is not None and partition.gpu not in (model.name, self.gpu.name()):
            raise ConfigError(f"partition is for {partition.gpu} but GPU {self.index} is "
                              f"{model.name}")
        wants: list[_Want] = []
        used = 0
        compute = 0
        budget = max((p.compute_slices for p in self.profiles()), default=0)
        for s in partition.slices:
            p = self._resolve(s.profile)
            starts = [st for st, _ in p.placements]
            if s.start not in starts:
                raise ConfigError(f"slice {s.profile}@{s.start}: placement start {s.start} not "
                                  f"allowed on GPU {self.index} (allowed: "
                                  f"{', '.join(map(str, starts))})")
            size = dict(p.placements)[s.start]
            mask = ((1 << size) - 1) << s.start
            if used & mask:
                raise ConfigError(f"slice {s.profile}@{s.start} overlaps another slice of "
                                  f"partition {self._plabel(partition)}")
            used |= mask
            compute += p.compute_slices
            wants.append(_Want(p, s.start))
        if compute > budget:
            raise ConfigError(f"partition {self._plabel(partition)} needs {compute} compute "
                              f"slices; GPU {self.index} has {budget}")
        return wants


def mig_query_report(index: int = 0, nvml: Any = None) -> dict[str, Any]:
    """Read-only JSON-ready report of GPU ``index`` (see :meth:`MigManager.describe`).

    Raises NvmlUnavailableError (a BackendError) when there is no driver/NVML or no such GPU.
    """
    with MigManager(index, nvml) as m:
        return m.describe()
