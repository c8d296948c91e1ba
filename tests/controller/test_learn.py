"""--learn: PPO updates from live transitions, checkpoints as run folders, rollback on an SLA-guard
trigger under a fresh update, and refusal for policies that cannot learn."""
from __future__ import annotations

import json

import pytest

from clover_rl.errors import ConfigError
from tests.support.controller import BAD


@pytest.fixture(scope="module")
def run_dir(env, tmp_path_factory):
    from sb3_contrib import MaskablePPO

    from clover_rl.training.run import env_metadata

    d = tmp_path_factory.mktemp("run")
    model = MaskablePPO("MlpPolicy", env, n_steps=8, batch_size=4, n_epochs=2, seed=0,
                        policy_kwargs={"net_arch": [16]})
    model.save(d / "model.zip")
    (d / "metadata.json").write_text(json.dumps({"algo": "maskable_ppo", **env_metadata(env)}, default=str))
    return d


def test_updates_write_checkpoints_that_load_as_policies(rig, run_dir, env):
    ctl = rig.controller(spec=str(run_dir), learn=True, learn_every=3, learn_good_after=1)
    ctl.options.duration_s = 7 * 3600
    ctl.run()
    ups = rig.records("learner_update")
    assert [u["index"] for u in ups] == [3, 6]
    assert "PPO update 1 from 3 live transitions" in ups[0]["note"]
    ck = rig.state / "checkpoints" / "update_0002"
    assert (ck / "model.zip").exists()
    meta = json.loads((ck / "metadata.json").read_text())
    assert meta["finetuned_online"] and meta["catalog_signature"] == env.catalog.signature
    st = json.loads((rig.state / "state.json").read_text())
    assert st["learner"]["updates"] == 2 and st["learner"]["last_good"].endswith("update_0002/model.zip")
    from clover_rl.agents.sb3 import load_policy

    assert load_policy(ck, env).name == "maskable_ppo:online_update_2"  # a usable --policy


def test_guard_trigger_rolls_a_fresh_update_back(rig, run_dir):
    import torch as th

    ctl = rig.controller(spec=str(run_dir), learn=True, learn_every=2, learn_good_after=50)
    ctl.options.duration_s = 3 * 3600
    ctl.run()
    lr = ctl.learner
    assert lr.candidate is not None and lr.updates == 1
    before = [p.clone() for p in lr.model.policy.parameters()]
    note = lr.on_guard_trigger()
    assert note and "rolled back to" in note and str(run_dir / "model.zip") in note
    after = list(lr.model.policy.parameters())
    assert any(not th.equal(a, b) for a, b in zip(before, after))
    from sb3_contrib import MaskablePPO

    orig = MaskablePPO.load(run_dir / "model.zip")
    assert all(th.equal(a, b) for a, b in zip(orig.policy.parameters(), after))
    assert lr.candidate is None


def test_guard_in_the_loop_reports_the_learner_rollback(rig, run_dir, env):
    ctl = rig.controller(spec=str(run_dir), learn=True, learn_every=2, learn_good_after=50, guard_windows=1)
    ctl.start()
    for _ in range(2):
        ctl.run_interval()
    ctl.learner.act = lambda obs, mask: env.catalog.lookup(BAD)  # the updated policy misbehaves
    ctl.learner._pending = None
    ctl.run_interval()
    ctl.close()
    assert rig.records("learner_update") and rig.records("learner_rollback")
    assert json.loads((rig.state / "state.json").read_text())["counters"]["learner_rollbacks"] == 1


def test_learn_needs_a_maskable_ppo_run(rig):
    with pytest.raises(ConfigError, match=r"--learn needs a MaskablePPO run folder as --policy \(got base\)"):
        rig.controller(spec="base", learn=True)


def test_reward_uses_the_penalties_the_policy_was_trained_with(rig, run_dir, env, tmp_path):
    import shutil

    d = tmp_path / "run2"
    shutil.copytree(run_dir, d)
    meta = json.loads((d / "metadata.json").read_text())
    meta["scenario_config"]["penalties"] = {"sla": 0.05, "infeasible": 0.05, "reconfiguration": 0.25}
    (d / "metadata.json").write_text(json.dumps(meta))
    ctl = rig.controller(spec=str(d))
    assert ctl.penalties.reconfiguration == 0.25 and env.scenario.penalties.reconfiguration == 0.0
    ctl.options.duration_s = 3600
    ctl.run()
    (iv,) = rig.records("interval")
    assert iv["outcome"]["reward_reconfig_penalty"] == -0.25 * rig.records("decision")[0]["applied"]
    assert rig.records("start")[0]["penalties"]["reconfiguration"] == 0.25
