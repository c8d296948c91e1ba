"""TensorBoard scalars of evaluations, one run folder per policy.

Written with tensorboard's own event-file writer (no torch import, same files as
``torch.utils.tensorboard.SummaryWriter``); :class:`ScalarWriter` is the project's one writer
(the deployment's ``deploy/*`` log uses it too). Tags are grouped under ``offline/`` (CleanRL-style
groups; not ``eval/``, which training uses for its periodic evaluations), and run names follow ``{scenario}__eval__{policy}__{seed}__{time}`` so evaluation runs sit next to
training runs (``{env}__{exp}__{seed}__{time}``) in one TensorBoard log dir.
"""
from __future__ import annotations

import math
import time
from collections.abc import Iterable
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from clover_rl.telemetry.table import short_name, short_names

if TYPE_CHECKING:
    from clover_rl.evaluation.runner import EvaluationResult

#: Per-interval tags (step = interval index in the evaluated window) -> (row field, meaning).
#: ``offline/``, never ``eval/``: training's ``eval/*`` are means over periodic evaluation
#: episodes at training-step x axes; these are one offline evaluation's intervals.
INTERVAL_TAGS: dict[str, tuple[str, str]] = {
    "offline/carbon_g": ("carbon_g", "carbon of the interval, g (energy x CI x PUE)"),
    "offline/carbon_per_request_g": ("carbon_per_request_g", "carbon per answered request, g"),
    "offline/accuracy": ("accuracy", "request-weighted accuracy of the variants that answered"),
    "offline/p95_ms": ("p95_ms", "p95 latency of the interval, ms"),
    "offline/objective": ("objective", "the scenario objective of the interval"),
    "offline/reconfigurations": ("reconfigurations", "reconfigurations counted in the interval"),
    "offline/ci": ("ci", "grid carbon intensity of the interval, g/kWh"),
    "offline/reward": ("reward", "the env's reward of the interval"),
}
#: Summary tags (one value, at step = number of intervals) -> (summary field, meaning).
SUMMARY_TAGS: dict[str, tuple[str, str]] = {
    "offline/carbon_saving_pct": ("carbon_saving_pct", "carbon per request saved vs BASE, %"),
    "offline/accuracy_drop_pct": ("accuracy_drop_pct", "accuracy lost vs BASE, %"),
    "offline/sla_violation_pct": ("sla_violation_pct", "intervals with p95 over the SLA, %"),
    "offline/oracle_gap_pct": ("oracle_gap_pct", "(oracle - policy) / (oracle - base) objective, %"),
    "offline/total_carbon_g": ("carbon_g", "carbon of the whole window, g"),
    "offline/mean_carbon_per_request_g": ("carbon_per_request_g", "carbon per answered request over the window, g"),
}


class ScalarWriter:
    """The scalar part of a SummaryWriter: ``scalar(tag, value, step)``; skips non-finite values
    (an undefined figure should be absent, not a spike to NaN)."""

    def __init__(self, logdir: str | Path, *, flush_secs: int = 3600, max_queue: int = 1000) -> None:
        from tensorboard.summary.writer.event_file_writer import EventFileWriter

        self.logdir = Path(logdir)
        self.logdir.mkdir(parents=True, exist_ok=True)
        self._w = EventFileWriter(str(self.logdir), max_queue_size=max_queue, flush_secs=flush_secs)

    def scalar(self, tag: str, value: float, step: int, wall_time: float | None = None) -> None:
        from tensorboard.compat.proto.event_pb2 import Event
        from tensorboard.compat.proto.summary_pb2 import Summary

        v = float(value)
        if not math.isfinite(v):
            return
        summ = Summary(value=[Summary.Value(tag=tag, simple_value=v)])
        self._w.add_event(Event(wall_time=wall_time or time.time(), step=int(step), summary=summ))

    def flush(self) -> None:
        self._w.flush()

    def close(self) -> None:
        self._w.flush()
        self._w.close()

    def __enter__(self) -> ScalarWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def safe_name(s: str) -> str:
    """A policy spec (maybe a path) as one folder-name component: the name the evaluate table
    shows (:func:`clover_rl.telemetry.table.short_name`)."""
    return short_name(s)


def eval_run_name(scenario: str, policy: str, seed: int, when: float | None = None) -> str:
    """``{scenario}__eval__{policy}__{seed}__{YYYYmmdd-HHMMSS UTC}``: the training run folders'
    ``{scenario}__{exp_name}__{seed}__{time}`` with ``eval__{policy}`` as the experiment."""
    stamp = datetime.fromtimestamp(when if when is not None else time.time(), timezone.utc)
    scen = Path(scenario).stem if scenario.endswith((".yaml", ".yml")) else scenario
    return f"{safe_name(scen)}__eval__{safe_name(policy)}__{seed}__{stamp.strftime('%Y%m%d-%H%M%S')}"


def _unique(names: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Folder name per policy spec, de-duplicated (two run folders may share a basename)."""
    out: dict[str, str] = {}
    used: set[str] = set()
    for spec, name in names:
        cand, k = name, 2
        while cand in used:
            cand, k = f"{name}_{k}", k + 1
        used.add(cand)
        out[spec] = cand
    return out


def write_evaluation(res: EvaluationResult, root: str | Path, *, run_names: bool = False,
                     when: float | None = None) -> dict[str, Path]:
    """Write each requested policy's scalars under ``root``; returns the run folder per spec.

    ``run_names=False``: ``root/<policy>`` (an evaluation's own ``--out DIR/tb``; earlier event
    files there are replaced so reruns do not pile up). ``run_names=True``:
    ``root/<eval_run_name>/tb`` -- the layout of training run folders (``<run>/tb``), so one
    ``tensorboard --logdir root`` shows training and evaluation runs side by side.
    """
    root = Path(root).expanduser()
    when = when if when is not None else time.time()
    if run_names:
        names = _unique((p, eval_run_name(res.scenario, p, res.seed, when)) for p in res.policies)
    else:
        names = short_names(res.policies)  # the names the evaluate table shows
    out: dict[str, Path] = {}
    for p in res.policies:
        run = res.runs[p]
        d = root / names[p] / "tb" if run_names else root / names[p]
        try:
            d.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            from clover_rl.errors import ConfigError

            raise ConfigError(f"TensorBoard dir {d}: cannot create ({e.strerror})") from None
        if not run_names:
            for old in d.glob("events.out.tfevents.*"):
                old.unlink()
        with ScalarWriter(d) as w:
            for r in run.rows:
                for tag, (key, _) in INTERVAL_TAGS.items():
                    if r.get(key) is not None:
                        w.scalar(tag, float(r[key]), int(r["step"]), when)
            for tag, (key, _) in SUMMARY_TAGS.items():
                val = run.summary.get(key)
                if val is not None:
                    w.scalar(tag, float(val), len(run.rows), when)
        out[p] = d
    return out
