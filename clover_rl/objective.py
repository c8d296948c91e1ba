"""The paper's score, and the pieces the RL reward is built from.

score = lambda * dC - (1 - lambda) * dA, with
  dC = (C_ref - C) / C_ref   C = carbon per request now, C_ref = BASE's carbon per request at
                             the reference intensity (paper: 250 g/kWh x PUE 1.5)
  dA = (A_base - A) / A_base
and, when p95 > SLA, the score multiplied by SLA / p95 (as in the Clover artifact; note that
this shrinks a negative score toward zero, which is why the RL reward adds its own SLA penalty).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

JOULES_PER_KWH = 3.6e6


def carbon_g(energy_j: float, intensity_g_per_kwh: float, pue: float = 1.0) -> float:
    """Carbon = energy x CI x PUE."""
    return energy_j / JOULES_PER_KWH * intensity_g_per_kwh * pue


@dataclass(frozen=True)
class ObjectiveReference:
    c_ref_g: float  # BASE carbon per request at the reference intensity
    a_base: float  # BASE accuracy
    sla_ms: float
    lam: float = 0.1

    @staticmethod
    def from_base(base_energy_per_request_j: float, a_base: float, sla_ms: float, lam: float = 0.1,
                  reference_intensity: float = 250.0, reference_pue: float = 1.5) -> ObjectiveReference:
        c_ref = carbon_g(base_energy_per_request_j, reference_intensity, reference_pue)
        return ObjectiveReference(c_ref, a_base, sla_ms, lam)


@dataclass(frozen=True)
class Score:
    delta_c: float
    delta_a: float
    raw: float  # before the SLA factor
    sla_factor: float  # 1, or SLA/p95 when violated
    value: float

    def to_dict(self) -> dict:
        return asdict(self)


def score(carbon_per_request_g: float, accuracy: float, p95_ms: float, ref: ObjectiveReference) -> Score:
    dc = (ref.c_ref_g - carbon_per_request_g) / ref.c_ref_g
    da = (ref.a_base - accuracy) / ref.a_base
    raw = ref.lam * dc - (1.0 - ref.lam) * da
    factor = ref.sla_ms / p95_ms if p95_ms > ref.sla_ms else 1.0
    return Score(dc, da, raw, factor, raw * factor)


def sla_penalty(p95_ms: float, sla_ms: float, weight: float) -> float:
    """The RL reward's SLA penalty: ``weight * (1 + min(p95/SLA - 1, 10))`` when violated.

    A fixed part as well as a proportional one: a policy must not learn that breaking the SLA
    by a few percent is nearly free (the paper's SLA/p95 factor even rewards it when scores are
    negative), so every violating interval costs at least ``weight``.
    """
    if p95_ms <= sla_ms:
        return 0.0
    return weight * (1.0 + min(p95_ms / sla_ms - 1.0, 10.0))
