"""Domain randomisation of training episodes: carbon traces, synthetic shapes, load levels and
moving load patterns."""
from __future__ import annotations

from dataclasses import dataclass

from clover_rl.errors import ConfigError


@dataclass(frozen=True)
class Randomization:
    """Domain randomisation for training: which carbon traces episodes are drawn from, how often
    a synthetic trace replaces them, and how far the load level moves."""

    traces: tuple[str, ...] = ()  # shipped names / paths; empty = the scenario's own trace
    period: str = "train"
    synthetic_prob: float = 0.0
    rate_scale: tuple[float, float] = (1.0, 1.0)
    load_patterns: tuple[str, ...] = ()  # drawn per episode: see clover_rl.workload.randomize
    rate_traces: tuple[str, ...] = ()  # rate / request trace files for the "trace" pattern

    @staticmethod
    def from_dict(d: dict | None) -> Randomization | None:
        if not d:
            return None
        allowed = {"traces", "period", "synthetic_prob", "rate_scale", "load_patterns", "rate_traces"}
        bad = set(d) - allowed
        if bad:
            raise ConfigError(f"randomization: unknown field(s) {sorted(bad)} (allowed: {sorted(allowed)})")
        rs = tuple(float(x) for x in d.get("rate_scale", (1.0, 1.0)))
        if len(rs) != 2 or not 0 < rs[0] <= rs[1]:
            raise ConfigError(f"randomization.rate_scale must be [low, high] with 0 < low <= high, got {rs}")
        p = float(d.get("synthetic_prob", 0.0))
        if not 0.0 <= p <= 1.0:
            raise ConfigError(f"randomization.synthetic_prob must be in [0, 1], got {p}")
        from clover_rl.workload.randomize import check_patterns

        pats = check_patterns(d.get("load_patterns", ()), d.get("rate_traces", ()))
        return Randomization(tuple(d.get("traces", ())), str(d.get("period", "train")), p, rs,  # type: ignore[arg-type]
                             pats, tuple(str(x) for x in d.get("rate_traces", ())))
