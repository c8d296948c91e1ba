"""TensorBoard eval scalars: one run per policy, offline/ tags readable by TensorBoard itself."""
from __future__ import annotations

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from clover_rl.telemetry.tensorboard import eval_run_name, safe_name, write_evaluation

INTERVAL = ["offline/carbon_g", "offline/carbon_per_request_g", "offline/accuracy", "offline/p95_ms",
            "offline/objective", "offline/reconfigurations"]
SUMMARY = ["offline/carbon_saving_pct", "offline/accuracy_drop_pct", "offline/sla_violation_pct",
           "offline/oracle_gap_pct"]


def _scalars(d):
    acc = EventAccumulator(str(d))
    acc.Reload()
    return acc


def test_runs_per_policy_with_eval_tags(tmp_path, fake_result):
    runs = write_evaluation(fake_result, tmp_path / "tb")
    assert {p.name for p in runs.values()} == {"base", "ppo_1"}
    acc = _scalars(runs["runs/ppo 1/"])
    tags = set(acc.Tags()["scalars"])
    assert set(INTERVAL + SUMMARY) <= tags
    carbon = acc.Scalars("offline/carbon_g")
    assert [e.step for e in carbon] == [0, 1, 2, 3] and [e.value for e in carbon] == [6, 5, 7, 6]
    saving = acc.Scalars("offline/carbon_saving_pct")
    assert len(saving) == 1 and saving[0].step == 4
    assert saving[0].value == pytest.approx(fake_result.runs["runs/ppo 1/"].summary["carbon_saving_pct"])
    # a rerun into the same folder replaces the events instead of piling them up
    write_evaluation(fake_result, tmp_path / "tb")
    assert len(list(runs["base"].glob("events.out.tfevents.*"))) == 1


def test_run_names_match_training_convention(tmp_path, fake_result):
    runs = write_evaluation(fake_result, tmp_path, run_names=True, when=1700000000)
    # like training run folders: <scenario>__<exp>__<seed>__<UTC time>/tb
    assert runs["base"] == tmp_path / "efficientnet__eval__base__7__20231114-221320" / "tb"
    assert runs["runs/ppo 1/"].parent.name == "efficientnet__eval__ppo_1__7__20231114-221320"
    assert list(runs["base"].glob("events.out.tfevents.*"))
    assert eval_run_name("a/b.yaml", "x", 0, 0.0) == "b__eval__x__0__19700101-000000"
    assert safe_name("./") == "policy"


def test_offline_tags_have_their_own_group_and_a_meaning():
    from clover_rl.telemetry.tensorboard import INTERVAL_TAGS, SUMMARY_TAGS

    for tag, (field, meaning) in {**INTERVAL_TAGS, **SUMMARY_TAGS}.items():
        assert tag.startswith("offline/") and field and len(meaning) > 10, tag
