"""NVIDIA mig-parted config files: export configurations, import layouts.

Format (mig-parted ``v1``)::

    version: v1
    mig-configs:
      all-balanced:
        - device-filter: ["0x20B010DE", "0x20B110DE"]   # optional PCI device IDs
          devices: all                                  # or [0, 1, ...]
          mig-enabled: true
          mig-devices: {"1g.5gb": 2, "2g.10gb": 1, "3g.20gb": 1}

A config may hold one entry per board family (NVIDIA's default config does); import picks the
entry whose ``device-filter`` names the board (its PCI device IDs in ``boards.yaml``), else
an entry without a filter. Every imported layout is checked against the board: profile names,
per-profile instance limits and placements; an entry with ``mig-enabled: false`` is the
whole GPU without MIG, imported as the whole-GPU profile.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from clover_rl.config_io import load_yaml_mapping
from clover_rl.errors import ConfigError
from clover_rl.mig.catalog import GpuModel
from clover_rl.mig.config import Configuration
from clover_rl.mig.partition import Partition, _profile_sort_key, check_instance_limits, place


@dataclass(frozen=True)
class ImportedLayout:
    """One mig-parted config as a partition of ``gpu``."""

    name: str
    partition: Partition
    devices: str  # "all" or "0,1"

    @property
    def profiles(self) -> tuple[str, ...]:
        return self.partition.multiset


def mig_parted_entry(cfg: Configuration, gpu: GpuModel, devices: str | list[int] = "all",
                     where: str = "mig-parted config") -> dict[str, Any]:
    """One mig-parted device entry (``devices``, ``mig-enabled``, ``mig-devices``) for ``cfg``'s
    slices, checked against the board's instance limits and placements."""
    counts = Counter(cfg.profiles)
    check_instance_limits(gpu, counts, where)
    cfg.partition(gpu)  # placements too: never print a layout no driver can create
    return {"devices": devices, "mig-enabled": True,
            "mig-devices": {p: counts[p] for p in sorted(counts, key=_profile_sort_key)}}


def to_mig_parted(configs: dict[str, Configuration], gpu: GpuModel, devices: str | list[int] = "all") -> str:
    """NVIDIA mig-parted config YAML; one named entry per configuration."""
    mig_configs = {}
    for name, cfg in configs.items():
        if not name or not name.strip() or any(c.isspace() for c in name):
            raise ConfigError(f"mig-parted config name must be a non-empty word, got {name!r}")
        mig_configs[name] = [mig_parted_entry(cfg, gpu, devices, f"mig-parted config {name!r}")]
    return yaml.safe_dump({"version": "v1", "mig-configs": mig_configs}, sort_keys=False)


def _entry_for(name: str, entries: object, gpu: GpuModel, where: str) -> dict[str, Any]:
    if not isinstance(entries, list) or not entries or not all(isinstance(e, dict) for e in entries):
        raise ConfigError(f"{where}: mig-configs.{name}: expected a list of device entries")
    ids = {i.lower() for i in gpu.pci_device_ids}
    unfiltered = [e for e in entries if "device-filter" not in e]
    for e in entries:
        filt = e.get("device-filter")
        filt = [filt] if isinstance(filt, str) else (filt or [])
        if any(str(f).lower() in ids for f in filt):
            return e
    if unfiltered:
        return unfiltered[0]
    raise ConfigError(f"{where}: mig-configs.{name}: no entry for {gpu.name} (its device-filter "
                      f"IDs {', '.join(gpu.pci_device_ids) or 'unknown'} appear in none)")


def from_mig_parted(path: str | Path, gpu: GpuModel, name: str | None = None) -> list[ImportedLayout]:
    """The layouts of a mig-parted config file for ``gpu`` (all, or the one called ``name``).

    Raises :class:`ConfigError` naming the file, config and field for an unreadable file, an
    unknown config name, a profile the board does not have, a count above the driver's limit
    or a layout that breaks the placement rules.
    """
    p = Path(path)
    configs = _load_configs(p)
    if name is not None and name not in configs:
        raise ConfigError(f"{p}: no config {name!r} (configs: {', '.join(configs)})")
    return [_layout(p, cname, configs[cname], gpu) for cname in ([name] if name is not None else list(configs))]


def _load_configs(p: Path) -> dict:
    if not p.is_file():
        raise ConfigError(f"{p}: file not found")
    try:
        doc = load_yaml_mapping(p)
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{p}: not a readable YAML file ({type(e).__name__})") from None
    configs = doc.get("mig-configs")
    if not isinstance(configs, dict) or not configs:
        raise ConfigError(f"{p}: no 'mig-configs' mapping (is this a mig-parted config?)")
    return configs


def _layout(p: Path, cname: str, entries: object, gpu: GpuModel) -> ImportedLayout:
    where = f"{p}: mig-configs.{cname}"
    entry = _entry_for(cname, entries, gpu, str(p))
    devices = entry.get("devices", "all")
    dev = "all" if devices == "all" else ",".join(str(d) for d in devices or [])
    if not entry.get("mig-enabled", False):
        profiles: list[str] = [gpu.whole.name]
    else:
        counts = entry.get("mig-devices") or {}
        if not isinstance(counts, dict) or not all(isinstance(v, int) and v >= 0 for v in counts.values()):
            raise ConfigError(f"{where}: mig-devices must map profile names to counts")
        try:
            for prof in counts:
                gpu.profile(str(prof))
        except ConfigError as e:
            raise ConfigError(f"{where}: {e}") from None
        check_instance_limits(gpu, Counter({gpu.profile(str(k)).name: v for k, v in counts.items()}), where)
        profiles = [gpu.profile(str(k)).name for k, v in counts.items() for _ in range(v)]
        if not profiles:
            raise ConfigError(f"{where}: mig-devices is empty")
    try:
        part = place(gpu, profiles)
    except ConfigError as e:
        raise ConfigError(f"{where}: {e}") from None
    return ImportedLayout(cname, part, dev)


def as_configuration(layout: ImportedLayout, gpu: GpuModel, variant: str) -> Configuration:
    """The layout with ``variant`` on every slice (a configuration the controller can apply)."""
    return Configuration.of(gpu, [(p, variant) for p in layout.profiles])


def allowed_partitions(path: str | Path, gpu: GpuModel, maximal: set[tuple[str, ...]] | None = None
                       ) -> frozenset[tuple[str, ...]]:
    """The partitions (profile multisets, largest first) a site allows: the layouts of a
    mig-parted config file that are valid on ``gpu``; with ``maximal`` (the action space's
    multisets), only those in it.

    A config whose entry is for another board, names a profile ``gpu`` lacks or breaks its
    rules is skipped (NVIDIA's default file lists every board's); when none is left, raises
    :class:`ConfigError` naming the file and why each config was skipped.
    """
    p = Path(path)
    configs = _load_configs(p)
    allowed: set[tuple[str, ...]] = set()
    skipped: list[str] = []
    for cname, entries in configs.items():
        try:
            lay = _layout(p, str(cname), entries, gpu)
        except ConfigError as e:
            skipped.append(f"{cname}: {str(e).removeprefix(f'{p}: ').removeprefix(f'mig-configs.{cname}: ')}")
            continue
        if maximal is not None and lay.profiles not in maximal:
            skipped.append(f"{cname}: {'+'.join(lay.profiles)} leaves slices unused (not in the action space)")
            continue
        allowed.add(lay.profiles)
    if not allowed:
        why = "; ".join(skipped[:4]) + (f"; ... ({len(skipped)} configs)" if len(skipped) > 4 else "")
        raise ConfigError(f"{p}: none of its layouts is a usable partition of {gpu.name} ({why})")
    return frozenset(allowed)

