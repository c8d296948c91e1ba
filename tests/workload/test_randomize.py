"""Moving loads drawn per episode (randomisation) and what the observation shows of them."""
from __future__ import annotations

import numpy as np
import pytest

from clover_rl.envs.serving_env import CloverServingEnv
from clover_rl.errors import ConfigError
from clover_rl.workload.randomize import random_workload


@pytest.mark.parametrize("kind", ["constant", "diurnal", "bursty"])
def test_patterns_keep_the_nominal_mean(kind):
    w = random_workload(kind, 2.0, 48, np.random.default_rng(1))
    rates = w.rates(np.arange(48) * 3600.0 + 1800.0)
    assert rates.mean() == pytest.approx(2.0, rel=0.15)
    if kind != "constant":
        assert rates.std() > 0.05


def test_trace_pattern_scales_a_file_to_the_nominal_rate(tmp_path):
    p = tmp_path / "r.csv"
    p.write_text("rate_rps\n" + "\n".join(str(x) for x in [10, 20, 30, 40] * 6) + "\n")
    w = random_workload("trace", 2.0, 24, np.random.default_rng(0), traces=[str(p)])
    assert w.rates(np.arange(24) * 3600.0).mean() == pytest.approx(2.0, rel=0.05)


def test_env_draws_a_moving_load_per_episode():
    env = CloverServingEnv("efficientnet", episode_hours=6,
                           randomization={"load_patterns": ["bursty", "diurnal"]})
    seen = []
    for seed in range(3):
        env.reset(seed=seed)
        seen.append([env.rate(k) for k in range(6)])
    assert len({tuple(np.round(s, 6)) for s in seen}) == 3
    assert any(np.std(s) > 0.01 for s in seen)


def test_bad_patterns_are_refused():
    with pytest.raises(ConfigError, match=r"^randomization: field load_patterns\[0\]: Input should be 'constant', 'diurnal', 'bursty' or 'trace' \(got 'spiky'\)$"):
        CloverServingEnv("efficientnet", randomization={"load_patterns": ["spiky"]})
    with pytest.raises(ConfigError, match="^randomization: load_patterns: 'trace' needs rate_traces"):
        CloverServingEnv("efficientnet", randomization={"load_patterns": ["trace"]})
