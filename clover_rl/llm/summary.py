"""LLM figures in evaluation rows, summaries and tables (TTFT / TPOT p95, energy and carbon per
1k output tokens). Request services have none of these keys, so their outputs are unchanged.

An LLM interval's ``served`` counts output tokens (:mod:`clover_rl.llm.replay`), so per 1k
tokens = total over ``served`` x 1000; TTFT/TPOT p95 summaries are the mean and the max of
the intervals' p95s (as ``p95_ms`` / ``p95_max_ms`` are for request services)."""
from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from clover_rl.telemetry.table import Column

#: Per-interval fields kept from the env's step info when present.
ROW_FIELDS: tuple[str, ...] = ("ttft_p95_ms", "tpot_p95_ms")
#: Summary fields (evaluate), in report order.
SUMMARY_FIELDS: tuple[str, ...] = ("ttft_p95_ms", "ttft_p95_max_ms", "tpot_p95_ms", "tpot_p95_max_ms",
                                   "energy_per_1k_tokens_j", "carbon_per_1k_tokens_g")
#: The evaluate and benchmark table columns that replace p95 ms and g/request for LLM services.
COLUMNS: tuple[Column, ...] = (
    Column("ttft_p95_ms", "TTFT p95 ms", "{:.0f}", drop=0),
    Column("tpot_p95_ms", "TPOT p95 ms", "{:.1f}", drop=0),
    Column("energy_per_1k_tokens_j", "J/1k tok", "{:.0f}", drop=0),
    Column("carbon_per_1k_tokens_g", "g/1k tok", "{:.4f}", drop=2),
)


def is_llm_rows(rows: Sequence[Mapping[str, Any]]) -> bool:
    return bool(rows) and rows[0].get("ttft_p95_ms") is not None


def summarize(rows: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    """The LLM summary of one policy's intervals ({} for a request service's rows)."""
    if not is_llm_rows(rows):
        return {}
    ttft = np.array([float(r["ttft_p95_ms"]) for r in rows])
    tpot = np.array([float(r["tpot_p95_ms"]) for r in rows])
    tokens = float(sum(r["served"] for r in rows))
    per_k = 1000.0 / tokens if tokens else math.nan
    return {"ttft_p95_ms": float(np.nanmean(ttft)), "ttft_p95_max_ms": float(np.nanmax(ttft)),
            "tpot_p95_ms": float(np.nanmean(tpot)), "tpot_p95_max_ms": float(np.nanmax(tpot)),
            "energy_per_1k_tokens_j": float(sum(r["energy_j"] for r in rows)) * per_k,
            "carbon_per_1k_tokens_g": float(sum(r["carbon_g"] for r in rows)) * per_k}


def with_llm_columns(columns: Sequence[Column], after: str, *, keys: Sequence[str] | None = None,
                     demote: Sequence[str] = (),
                     replace: Sequence[str] = ("p95_ms", "p95_max_ms", "carbon_per_request_g")) -> tuple[Column, ...]:
    """``columns`` with the request latency / per-request ones swapped for :data:`COLUMNS` (those
    named in ``keys``; default all), placed after the column ``after``; the columns named in
    ``demote`` may drop at narrow widths (rank 1), so the LLM ones fit 80 columns."""
    llm = [c for c in COLUMNS if keys is None or c.key in keys]
    out: list[Column] = []
    for c in columns:
        if c.key in replace:
            continue
        out.append(dataclasses.replace(c, drop=max(c.drop, 1)) if c.key in demote else c)
        if c.key == after:
            out.extend(llm)
    return tuple(out)
