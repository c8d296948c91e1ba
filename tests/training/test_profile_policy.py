"""ProfileGraphPolicy: profile features (shapes, bounds, the linear-in-intensity identity), the
head (masking, reading the load level and the current configuration), randomisation over grid
levels, the validation set, and a save/load round trip."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch as th

from clover_rl.agents.sb3 import load_policy
from clover_rl.envs.randomization import Randomization, load_levels, snap_up
from clover_rl.envs.serving_env import CloverServingEnv
from clover_rl.errors import ConfigError
from clover_rl.training.config import algo_class
from clover_rl.training.envs import validation_episodes
from clover_rl.training.policies import resolve_policy
from clover_rl.training.profile_features import FEATURES, profile_features
from clover_rl.training.profile_policy import ProfileActionHead, profile_kwargs, strip_profile
from clover_rl.training.run import env_metadata

LEVELS = np.array([0.9, 1.0])


@pytest.fixture(scope="module")
def yolo_env() -> CloverServingEnv:
    env = CloverServingEnv("yolo", episode_hours=4)
    yield env
    env.close()


@pytest.fixture(scope="module")
def features(yolo_env: CloverServingEnv) -> tuple[np.ndarray, np.ndarray]:
    return profile_features(yolo_env, LEVELS)


def test_levels_are_10_percent_apart_on_the_steady_state_grid() -> None:
    from clover_rl.serving.steady import rate_grid

    rates = load_levels(2.5)
    lv = rates / 2.5
    assert np.all(np.diff(lv) > 0) and 0.46 < lv[0] < 0.48 and 1.94 < lv[-1] < 1.97
    assert np.allclose(lv[1:] / lv[:-1], 1.1, atol=0.012)
    assert all(rate_grid(r)[3] <= 1e-12 for r in rates)  # one cached simulation per level
    assert snap_up(2.5, rates) >= 2.5 and snap_up(2.5, rates) < 2.5 * 1.011
    assert snap_up(0.1, rates) == rates[0] and snap_up(99.0, rates) == rates[-1]


def test_feature_shapes_and_bounds(yolo_env: CloverServingEnv, features: tuple[np.ndarray, np.ndarray]) -> None:
    lv, tab = features
    n = len(yolo_env.catalog)
    assert lv.shape == (2,) and tab.shape == (2, n, len(FEATURES)) and tab.dtype == np.float32
    assert np.isfinite(tab).all()
    meets = tab[..., FEATURES.index("meets")]
    assert set(np.unique(meets)) <= {0.0, 1.0}
    assert (tab[..., FEATURES.index("p95")] >= 0).all() and (tab[..., FEATURES.index("p95")] <= 4).all()
    assert (tab[:, ~yolo_env.catalog.feasible] == 0).all()  # infeasible rows carry nothing
    b = yolo_env.catalog.base_index  # BASE: accuracy 0; carbon 1 at the nominal load and ci_now = 1
    assert tab[1, b, FEATURES.index("accuracy")] == pytest.approx(0.0, abs=1e-6)
    assert tab[1, b, FEATURES.index("carbon")] == pytest.approx(1.0, rel=0.02)
    # 10% less load: less carbon, but not 10% less (idle power is shared by fewer requests)
    assert 0.9 < tab[0, b, FEATURES.index("carbon")] < tab[1, b, FEATURES.index("carbon")]


def test_objective_is_linear_in_the_observed_intensity(yolo_env: CloverServingEnv,
                                                       features: tuple[np.ndarray, np.ndarray]) -> None:
    """v0 + x slope = the objective at the intensity whose observation ci_now is x (within the SLA)."""
    _, tab = features
    m = yolo_env.model
    for x in (0.1, 0.8, 2.5):
        intensity = x * m.ci_ref / m.pue
        t = m.config_table(m.mean_rate)
        tv = m.objective.table(t.energy_per_request_j, t.accuracy, t.p95_ms, t.feasible & m.catalog.feasible,
                               intensity, m.pue, m.mean_rate)
        ok = tv.meets_sla
        pred = tab[1, :, 0] + x * tab[1, :, 1]
        assert ok.sum() > 10
        np.testing.assert_allclose(pred[ok], tv.value[ok], atol=2e-5)


def _head(n_actions: int = 5, n_levels: int = 2) -> tuple[ProfileActionHead, np.ndarray]:
    rng = np.random.default_rng(0)
    graph = rng.integers(0, 4, size=(n_actions, 3))
    graph[1] = graph[0] + 1  # distinct rows
    table = rng.normal(size=(n_levels, n_actions, len(FEATURES))).astype(np.float32)
    head = ProfileActionHead(4, 7, n_actions, 3, n_levels, len(FEATURES), {"rate": 1, "graph": [2, 5]},
                             graph, table, np.array([0.9, 1.1]))
    return head, graph


def test_head_scores_the_level_at_or_above_the_load_and_knows_the_current_configuration() -> None:
    head, graph = _head()
    assert head.level_index(th.tensor([0.5, 0.9, 0.95, 1.1, 3.0])).tolist() == [0, 0, 1, 1, 1]
    with th.no_grad():  # only the 'v0' coefficient (1) and the stay coefficient (10): logits = v0 + 10 [current]
        for lin in (head.coef_lin, head.coef_mlp[2], head.proj):
            lin.weight.zero_()
            lin.bias.zero_()
        head.coef_lin.bias[0] = 1.0
        head.coef_lin.bias[-1] = 10.0
    obs = th.zeros((2, 7))
    obs[0, 1], obs[1, 1] = 0.8, 1.05
    obs[:, 2:5] = th.as_tensor(graph[3] / 7.0)
    logits = head(th.cat([th.zeros((2, 4)), obs], dim=1)).detach().numpy()
    tab = head.table.numpy()
    np.testing.assert_allclose(logits[0] - 10.0 * (np.arange(5) == 3), tab[0, :, 0], atol=1e-5)
    np.testing.assert_allclose(logits[1] - 10.0 * (np.arange(5) == 3), tab[1, :, 0], atol=1e-5)


def test_a_constant_weight_on_value_now_ranks_by_the_objective_at_the_observed_intensity() -> None:
    rng = np.random.default_rng(1)
    table = rng.normal(size=(1, 6, len(FEATURES))).astype(np.float32)
    head = ProfileActionHead(4, 9, 6, 3, 1, len(FEATURES), {"rate": 1, "graph": [2, 5], "ci": [5, 8]},
                             rng.integers(1, 4, size=(6, 3)), table, np.array([1.0]))
    with th.no_grad():
        for lin in (head.coef_lin, head.coef_mlp[2], head.proj):
            lin.weight.zero_()
            lin.bias.zero_()
        head.coef_lin.bias[len(FEATURES)] = 1.0  # v0 + x slope, x = ci_now
    obs = th.zeros((3, 9))
    obs[:, 5] = th.tensor([0.05, 1.0, 2.4])  # very clean, reference, very dirty
    obs[:, 6:8] = 5.0  # the forecast does not enter this weight
    logits = head(th.cat([th.zeros((3, 4)), obs], dim=1)).detach().numpy()
    want = table[0, :, 0][None] + obs[:, 5:6].numpy() * table[0, :, 1][None]
    np.testing.assert_allclose(logits, want, atol=1e-5)


def test_value_scale_multiplies_only_the_value_features() -> None:
    """value_scale s: v0, slope and the value products enter the logits x s; carbon, accuracy,
    p95, meets and the stay bonus do not (s = 1: the head as before)."""
    rng = np.random.default_rng(2)
    table = rng.normal(size=(1, 6, len(FEATURES))).astype(np.float32)
    graph = rng.integers(1, 4, size=(6, 3))
    obs = th.zeros((2, 9))
    obs[:, 5] = th.tensor([0.3, 1.7])
    obs[:, 6:8] = th.tensor([[0.5, 0.9], [2.0, 1.0]])
    obs[:, 2:5] = th.as_tensor(graph[2] / 7.0)
    out = {}
    for scale in (1.0, 100.0):
        head = ProfileActionHead(4, 9, 6, 3, 1, len(FEATURES), {"rate": 1, "graph": [2, 5], "ci": [5, 8]},
                                 graph, table, np.array([1.0]), value_scale=scale)
        with th.no_grad():
            for lin in (head.coef_lin, head.coef_mlp[2], head.proj):
                lin.weight.zero_()
                lin.bias.zero_()
            head.coef_lin.bias[:] = th.arange(1.0, len(FEATURES) + 6)  # every feature and the stay bonus
        out[scale] = head(th.cat([th.zeros((2, 4)), obs], dim=1)).detach().numpy()
    n = len(FEATURES)
    x, xf = obs[:, 5:6].numpy(), obs[:, 6:8].mean(-1, keepdim=True).numpy()
    v0, slope, carbon = table[0, :, 0][None], table[0, :, 1][None], table[0, :, 2][None]
    value = 1 * v0 + 2 * slope + (n + 1) * (v0 + x * slope) + (n + 2) * (v0 + xf * slope)
    np.testing.assert_allclose(out[100.0] - out[1.0], 99.0 * value, rtol=1e-4, atol=1e-3)
    rest = out[1.0] - value
    assert np.abs(rest).max() > 1.0  # the other features and the stay bonus contribute, unscaled
    np.testing.assert_allclose(rest[:, 2], (table[0, 2, 2:n] * np.arange(3, n + 1)).sum()
                               + (n + 3) * x[:, 0] * carbon[0, 2] + (n + 4) * xf[:, 0] * carbon[0, 2] + (n + 5),
                               rtol=1e-4)
    with pytest.raises(ConfigError, match="value_scale"):
        ProfileActionHead(4, 9, 6, 3, 1, len(FEATURES), {"rate": 1, "graph": [2, 5]}, graph, table,
                          np.array([1.0]), value_scale=0.0)


def test_head_rejects_a_wrong_table_shape() -> None:
    with pytest.raises(ConfigError, match="table must have shape"):
        ProfileActionHead(4, 7, 5, 3, 2, 6, {"rate": 1, "graph": [2, 5]}, np.zeros((5, 3)), np.zeros((2, 4, 6)),
                          np.array([1.0, 2.0]))


@pytest.mark.slow
def test_save_load_round_trip_acts_within_the_mask(yolo_env: CloverServingEnv, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    import clover_rl.envs.randomization as rnd

    monkeypatch.setattr(rnd, "load_levels", lambda nominal, k_range=rnd.LEVEL_RANGE: LEVELS * nominal)
    prof = profile_kwargs(yolo_env, tmp_path / "cache")
    assert len(list((tmp_path / "cache").glob("profile_*.npz"))) == 1
    again = profile_kwargs(yolo_env, tmp_path / "cache")  # from the cache: identical
    np.testing.assert_array_equal(again["table"], prof["table"])
    policy = resolve_policy("ProfileGraphPolicy", "maskable_ppo")
    model = algo_class("maskable_ppo")(policy, yolo_env, seed=0, n_steps=16, batch_size=16, device="cpu",
                                       policy_kwargs={"net_arch": [8], "profile": prof, "action_hidden": 8,
                                                      "value_scale": 50.0})
    model.learn(32)
    strip_profile(model)
    run = tmp_path / "run"
    run.mkdir()
    model.save(str(run / "model.zip"))
    assert (run / "model.zip").stat().st_size < 1_000_000
    (run / "metadata.json").write_text(json.dumps({"algo": "maskable_ppo", **env_metadata(yolo_env)}))
    loaded = load_policy(run, yolo_env)
    obs, info = yolo_env.reset(seed=1)
    for _ in range(3):
        a = loaded.act(obs, info)
        assert yolo_env.action_masks()[a]
        assert a == int(model.predict(obs, deterministic=True, action_masks=yolo_env.action_masks())[0])
        obs, _, _, _, info = yolo_env.step(a)
    np.testing.assert_array_equal(loaded.model.policy.action_net.table.numpy(), prof["table"])
    assert loaded.model.policy.action_net.value_scale == 50.0  # kept in the saved policy kwargs


def test_synthetic_levels_span_the_range() -> None:
    r = Randomization.from_dict({"synthetic_prob": 1.0, "synthetic_levels": [20, 900],
                                 "synthetic_shapes": ["flat", "wind"]})
    rng = np.random.default_rng(0)
    means = [float(np.mean(r.synthetic_trace(rng, 3).values)) for _ in range(40)]
    assert min(means) < 60 and max(means) > 450
    assert all(m > 5 for m in means)
    assert Randomization.from_dict({"traces": "train"}).traces == tuple(
        __import__("clover_rl.carbon.shipped", fromlist=["grids"]).grids("train"))


@pytest.mark.parametrize(("d", "needle"), [({"synthetic_levels": [900, 20]}, "synthetic_levels"),
                                           ({"synthetic_shapes": ["sunny"]}, "synthetic_shapes")])
def test_randomization_errors(d: dict, needle: str) -> None:
    with pytest.raises(ConfigError, match=needle):
        Randomization.from_dict(d)


def test_validation_set_uses_eval_periods_and_never_heldout_grids() -> None:
    eps = validation_episodes({"traces": ["fr"], "windows": 2, "synthetic": [["solar", 30]],
                               "loads": ["constant", "diurnal", 1.2]}, 48, 2.5)
    assert len(eps) == 3
    assert all(str(e["trace"].times[0]) >= "2020" for e in eps[:2])  # fr's eval period is 2020
    assert eps[0]["workload"]["kind"] == "constant" and eps[1]["workload"]["kind"] == "diurnal"
    assert eps[2]["rate_scale"] == 1.2 and eps[2]["trace"].synthetic
    with pytest.raises(ConfigError, match="held-out"):
        validation_episodes({"traces": ["se"]}, 48, 2.5)
    with pytest.raises(ConfigError, match="loads"):
        validation_episodes({"traces": ["fr"], "loads": ["sometimes"]}, 48, 2.5)


def test_snapped_training_loads_sit_on_the_feature_levels() -> None:
    env = CloverServingEnv("yolo", episode_hours=6, randomization={"snap_rate": True, "rate_scale": [0.6, 1.4],
                                                                   "load_patterns": ["diurnal", "bursty"]})
    try:
        levels = load_levels(env.mean_rate)
        for seed in range(3):
            env.reset(seed=seed)
            for _ in range(6):
                assert env.rate() in levels.tolist()
                env.step(env.catalog.base_index)
    finally:
        env.close()


def test_profile_kwargs_on_an_llm_scenario(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The LLM model has no measured profile file (its physics are the catalog): the feature cache
    key must not need one, and the features come from its steady-state table like the vision ones."""
    import clover_rl.envs.randomization as randomization
    import clover_rl.training.profile_features as pf

    for mod in (randomization, pf):  # one load level keeps the test short
        monkeypatch.setattr(mod, "load_levels", lambda rate: np.array([rate]))
    env = CloverServingEnv("llm", episode_hours=2)
    try:
        assert getattr(env.unwrapped.model, "profile", None) is None
        kw = profile_kwargs(env, tmp_path)
        n = len(env.catalog)
        assert kw["table"].shape == (1, n, len(FEATURES)) and np.isfinite(kw["table"]).all()
        meets = kw["table"][0, :, FEATURES.index("meets")]
        assert meets.sum() > 0 and (meets[~env.catalog.feasible] == 0).all()
        assert len(list(tmp_path.glob("profile_*.npz"))) == 1
        again = profile_kwargs(env, tmp_path)  # read back from the cache
        np.testing.assert_array_equal(again["table"], kw["table"])
    finally:
        env.close()
