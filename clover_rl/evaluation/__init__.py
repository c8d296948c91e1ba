"""Policy evaluation: run policies side by side on one trace window and compare them.

``evaluate_policies`` (runner) produces an ``EvaluationResult``; ``report`` prints and writes
it; ``clover_rl.telemetry.plots`` / ``.tensorboard`` draw it.
"""
from __future__ import annotations

from clover_rl.evaluation.runner import (
    BASE,
    ORACLE,
    ROW_FIELDS,
    SUMMARY_FIELDS,
    EvaluationResult,
    PolicyRun,
    compare,
    evaluate_policies,
    summarize,
)

__all__ = [
    "BASE", "ORACLE", "ROW_FIELDS", "SUMMARY_FIELDS", "EvaluationResult", "PolicyRun",
    "compare", "evaluate_policies", "summarize",
]
