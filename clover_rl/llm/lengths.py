"""Prompt/output token counts of LLM requests: a fitted generator and the Azure trace reader.

The generator draws (prompt, output) pairs from empirical quantiles (piecewise-linear inverse
CDF) joined by a Gaussian copula whose correlation is fitted from the trace's Spearman rank
correlation (``rho = 2 sin(pi rho_s / 6)``). The shipped fit
(``clover_rl/llm/data/azure_lengths.yaml``) is made by ``scripts/fit_llm_lengths.py`` from the
Azure LLM inference traces (Patel et al., "Splitwise", ISCA 2024; Azure/AzurePublicDataset,
CC BY 4.0); only the fitted quantiles are shipped, never the data.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from clover_rl.config_io import load_yaml_mapping
from clover_rl.errors import ConfigError, TraceError
from clover_rl.paths import PACKAGE_DIR

FITTED_PATH = PACKAGE_DIR / "llm" / "data" / "azure_lengths.yaml"
LEVELS = np.linspace(0.0, 1.0, 101)
_ERF = np.frompyfunc(math.erf, 1, 1)


@dataclass(frozen=True)
class TokenLengths:
    """Joint distribution of (prompt tokens, output tokens) per request."""

    name: str
    levels: np.ndarray  # probability levels, 0..1, increasing
    prompt_q: np.ndarray  # prompt tokens at ``levels``
    output_q: np.ndarray  # output tokens at ``levels``
    copula_rho: float  # Gaussian-copula correlation
    mean_rate: float  # requests/s in the source trace (0: unknown)

    def sample(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """``n`` pairs as int64 arrays (prompt >= 1, output >= 1 tokens)."""
        z1 = rng.standard_normal(n)
        z2 = self.copula_rho * z1 + math.sqrt(1.0 - self.copula_rho ** 2) * rng.standard_normal(n)
        u1 = 0.5 * (1.0 + _ERF(z1 / math.sqrt(2.0)).astype(np.float64))
        u2 = 0.5 * (1.0 + _ERF(z2 / math.sqrt(2.0)).astype(np.float64))
        p = np.rint(np.interp(u1, self.levels, self.prompt_q)).astype(np.int64)
        o = np.rint(np.interp(u2, self.levels, self.output_q)).astype(np.int64)
        return np.maximum(p, 1), np.maximum(o, 1)

    def to_dict(self) -> dict:
        return {"levels": [round(float(x), 4) for x in self.levels],
                "prompt_tokens": [round(float(x), 1) for x in self.prompt_q],
                "output_tokens": [round(float(x), 1) for x in self.output_q],
                "copula_rho": round(self.copula_rho, 4), "mean_rate": round(self.mean_rate, 4)}


def _ranks(x: np.ndarray) -> np.ndarray:
    order = np.argsort(x, kind="stable")
    r = np.empty(len(x))
    r[order] = np.arange(len(x))
    # average ties
    _, inv, counts = np.unique(x, return_inverse=True, return_counts=True)
    sums = np.bincount(inv, weights=r)
    return sums[inv] / counts[inv]


def fit_lengths(name: str, prompt: np.ndarray, output: np.ndarray, span_s: float = 0.0) -> TokenLengths:
    """Empirical quantiles at ``LEVELS`` and the copula correlation of the pairs."""
    prompt, output = np.asarray(prompt, float), np.asarray(output, float)
    if len(prompt) < 2 or len(prompt) != len(output):
        raise TraceError(f"{name}: need >= 2 (prompt, output) pairs of equal length")
    rho_s = float(np.corrcoef(_ranks(prompt), _ranks(output))[0, 1])
    rho = 2.0 * math.sin(math.pi * rho_s / 6.0)
    return TokenLengths(name, LEVELS.copy(), np.quantile(prompt, LEVELS), np.quantile(output, LEVELS),
                        rho, len(prompt) / span_s if span_s > 0 else 0.0)


def load_fitted(name: str = "conv", path: Path = FITTED_PATH) -> TokenLengths:
    """A shipped fit by name (``conv``: conversation, ``code``: code completion)."""
    doc = load_yaml_mapping(path)
    fits = doc.get("fits", {})
    if name not in fits:
        raise ConfigError(f"{path}: no fitted lengths {name!r} (known: {', '.join(fits)})")
    d = fits[name]
    return TokenLengths(name, np.asarray(d["levels"], float), np.asarray(d["prompt_tokens"], float),
                        np.asarray(d["output_tokens"], float), float(d["copula_rho"]), float(d["mean_rate"]))


@dataclass(frozen=True)
class TokenTrace:
    """Requests of a per-request LLM trace, sorted by arrival."""

    arrival_s: np.ndarray  # seconds since the first request
    prompt: np.ndarray  # int64
    output: np.ndarray  # int64
    path: str

    @property
    def span_s(self) -> float:
        return float(self.arrival_s[-1]) if len(self.arrival_s) else 0.0


def load_token_trace(path: str | Path, prompt_column: str = "ContextTokens",
                     output_column: str = "GeneratedTokens", time_column: str = "TIMESTAMP") -> TokenTrace:
    """Read the Azure LLM inference layout ``TIMESTAMP,ContextTokens,GeneratedTokens``.

    Rows with non-positive token counts are dropped (a request with no output has no decode);
    unparsable cells raise :class:`TraceError` naming the file, line and column."""
    import pandas as pd

    p = Path(path)
    if not p.is_file():
        raise TraceError(f"{p}: file not found")
    try:
        df = pd.read_csv(p, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, ValueError, UnicodeDecodeError) as e:
        raise TraceError(f"{p}: not a CSV file ({str(e).splitlines()[0]})") from None
    for col in (time_column, prompt_column, output_column):
        if col not in df.columns:
            raise TraceError(f"{p}: no column {col!r} (columns: {', '.join(map(str, df.columns))})")
    cols = {}
    for col in (prompt_column, output_column):
        v = pd.to_numeric(df[col].str.strip(), errors="coerce")
        if v.isna().any():
            i = int(np.argmax(v.isna().to_numpy()))
            raise TraceError(f"{p}: line {i + 2}: {col} {df[col].iloc[i]!r} is not a number")
        cols[col] = v.to_numpy(np.float64)
    t = pd.to_datetime(df[time_column].str.strip(), utc=True, errors="coerce", format="mixed")
    if t.isna().any():
        i = int(np.argmax(t.isna().to_numpy()))
        raise TraceError(f"{p}: line {i + 2}: cannot parse {time_column} {df[time_column].iloc[i]!r}")
    ns = t.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy().astype("datetime64[ns]").astype(np.int64)
    keep = (cols[prompt_column] >= 1) & (cols[output_column] >= 1)
    order = np.argsort(ns[keep], kind="stable")
    secs = (ns[keep][order] - ns[keep][order][0]) / 1e9 if keep.any() else np.zeros(0)
    return TokenTrace(secs.astype(np.float64), cols[prompt_column][keep][order].astype(np.int64),
                      cols[output_column][keep][order].astype(np.int64), str(p))
