"""A site's mig-parted config as the allowed set of partitions: the env's action mask keeps only
its layouts; layouts for other boards or leaving slices unused are skipped; none usable is a
one-line error naming the file."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from clover_rl.envs.serving_env import CloverServingEnv
from clover_rl.errors import ConfigError
from clover_rl.mig.catalog import get_gpu
from clover_rl.mig.migparted import allowed_partitions

SITE = """\
version: v1
mig-configs:
  all-balanced:
    - device-filter: ["0x20B010DE", "0x20F110DE"]
      devices: all
      mig-enabled: true
      mig-devices: {"1g.5gb": 2, "2g.10gb": 1, "3g.20gb": 1}
    - device-filter: ["0x233010DE"]
      devices: all
      mig-enabled: true
      mig-devices: {"1g.10gb": 2, "2g.20gb": 1, "3g.40gb": 1}
  halves:
    - devices: all
      mig-enabled: true
      mig-devices: {"4g.20gb": 1, "3g.20gb": 1}
  three-1g:
    - devices: all
      mig-enabled: true
      mig-devices: {"1g.5gb": 3}
  h100-only:
    - device-filter: ["0x233010DE"]
      devices: all
      mig-enabled: true
      mig-devices: {"7g.80gb": 1}
"""


def _site(tmp_path: Path, text: str = SITE) -> Path:
    p = tmp_path / "site-mig-parted.yaml"
    p.write_text(text)
    return p


def test_allowed_partitions_keep_the_usable_layouts(tmp_path: Path) -> None:
    gpu = get_gpu("a100-40gb")
    got = allowed_partitions(_site(tmp_path), gpu)
    assert got == {("3g.20gb", "2g.10gb", "1g.5gb", "1g.5gb"), ("4g.20gb", "3g.20gb"), ("1g.5gb",) * 3}
    maximal = {("3g.20gb", "2g.10gb", "1g.5gb", "1g.5gb"), ("4g.20gb", "3g.20gb")}
    assert allowed_partitions(_site(tmp_path), gpu, maximal) == maximal


def test_env_mask_keeps_only_the_sites_layouts(tmp_path: Path) -> None:
    path = _site(tmp_path)
    env = CloverServingEnv("efficientnet", allowed_layouts=str(path), episode_hours=2)
    full = CloverServingEnv("efficientnet", episode_hours=2)
    mask = env.action_masks()
    allowed = {env.catalog.configs[i].profiles for i in np.flatnonzero(mask)}
    assert allowed == {("3g.20gb", "2g.10gb", "1g.5gb", "1g.5gb"), ("4g.20gb", "3g.20gb")}
    assert 0 < mask.sum() < full.action_masks().sum()
    assert np.all(~mask | full.action_masks())  # memory still decides within the layouts
    assert env.catalog.signature == full.catalog.signature  # same action space: policies transfer
    env.reset(seed=0)
    banned = int(np.flatnonzero(full.action_masks() & ~mask)[0])
    info = env.step(banned)[4]
    assert info["refused"] and str(path) in info["refused_reason"]


def test_scenario_yaml_path_is_relative_to_the_scenario(tmp_path: Path) -> None:
    _site(tmp_path)
    sc = tmp_path / "site.yaml"
    sc.write_text("name: site\nservice: efficientnet\nworkload: {kind: constant, rate_rps: 2.5}\n"
                  "allowed_layouts: site-mig-parted.yaml\nepisode_hours: 2\n")
    env = CloverServingEnv(str(sc))
    assert 0 < env.action_masks().sum() < CloverServingEnv("efficientnet", episode_hours=2).action_masks().sum()


def test_no_usable_layout_is_a_one_line_error(tmp_path: Path) -> None:
    path = _site(tmp_path, SITE.split("  halves:")[0].replace('"0x20B010DE", "0x20F110DE"', '"0x000010DE"'))
    with pytest.raises(ConfigError) as e:
        CloverServingEnv("efficientnet", allowed_layouts=str(path), episode_hours=2)
    msg = str(e.value)
    assert "\n" not in msg and str(path) in msg and "none of its layouts" in msg and "a100-40gb" in msg
    with pytest.raises(ConfigError, match="file not found"):
        CloverServingEnv("efficientnet", allowed_layouts=str(tmp_path / "missing.yaml"), episode_hours=2)
