"""A hand-made EvaluationResult (no env, no backend) for plot and TensorBoard tests."""
from __future__ import annotations

import pytest

from clover_rl.evaluation.runner import EvaluationResult, PolicyRun, compare, summarize


def _rows(carbon: list[float], share_b7: list[float]) -> list[dict]:
    return [{"step": i, "action": 0, "reward": 0.01 * i, "time": f"2021-03-01T{i:02d}:00:00",
             "ci": 100.0 + 10 * i, "config": "7g:b7", "variant_share": {"b1": 1 - s, "b7": s},
             "carbon_g": c, "carbon_per_request_g": c / 100, "energy_j": c * 1e4, "accuracy": 78 + 6 * s,
             "p95_ms": 90.0 + i, "sla_ms": 100.0, "sla_violated": False, "reconfigurations": i % 2,
             "probes": 0, "objective": 0.01 * i * (1 - s), "served": 100, "dropped": 0}
            for i, (c, s) in enumerate(zip(carbon, share_b7))]


@pytest.fixture
def fake_result() -> EvaluationResult:
    rows = {"base": _rows([10, 11, 12, 13], [1, 1, 1, 1]),
            "runs/ppo 1/": _rows([6, 5, 7, 6], [0.5, 0.2, 0.0, 0.7]),
            "oracle": _rows([5, 5, 5, 5], [0, 0, 0, 0])}
    runs = {k: PolicyRun(k, k.split("/")[0], r, summarize(r)) for k, r in rows.items()}
    base, oracle = runs["base"].summary, runs["oracle"].summary
    for r in runs.values():
        r.summary = compare(r.summary, base, oracle)
    return EvaluationResult("efficientnet", "ciso", "test", 0, 4, 7, 100.0, ("b1", "b7"),
                            ["base", "runs/ppo 1/"], runs)
