"""Fitted request-length generator and the Azure-layout reader."""
from __future__ import annotations

import numpy as np
import pytest

from clover_rl.errors import ConfigError, TraceError
from clover_rl.llm.lengths import fit_lengths, load_fitted, load_token_trace


def test_shipped_fit_reproduces_its_quantiles():
    fit = load_fitted("conv")
    p, o = fit.sample(40_000, np.random.default_rng(0))
    assert p.min() >= 1 and o.min() >= 1
    for q in (0.25, 0.5, 0.9):
        assert np.quantile(p, q) == pytest.approx(np.interp(q, fit.levels, fit.prompt_q), rel=0.05)
        assert np.quantile(o, q) == pytest.approx(np.interp(q, fit.levels, fit.output_q), rel=0.05)
    assert load_fitted("code").output_q[50] < fit.output_q[50]  # code completions are short
    with pytest.raises(ConfigError, match="nope"):
        load_fitted("nope")


def test_fit_recovers_correlation():
    rng = np.random.default_rng(1)
    x = rng.lognormal(6, 1, 5000)
    y = x * rng.lognormal(0, 0.3, 5000)  # strongly rank-correlated
    fit = fit_lengths("t", x, y, span_s=100.0)
    assert fit.copula_rho > 0.9 and fit.mean_rate == 50.0
    p, o = fit.sample(5000, rng)
    assert np.corrcoef(np.argsort(np.argsort(p)), np.argsort(np.argsort(o)))[0, 1] > 0.85


def test_reads_azure_layout(tmp_path):
    f = tmp_path / "t.csv"
    f.write_text("TIMESTAMP,ContextTokens,GeneratedTokens\n"
                 "2023-11-16 18:15:50.5,396,109\n2023-11-16 18:15:46.0,374,44\n2023-11-16 18:15:47.0,10,0\n")
    tr = load_token_trace(f)
    assert tr.arrival_s.tolist() == [0.0, 4.5] and tr.prompt.tolist() == [374, 396]
    assert tr.output.tolist() == [44, 109]
    f.write_text("TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:50,x,1\n")
    with pytest.raises(TraceError, match="line 2: ContextTokens"):
        load_token_trace(f)
    f.write_text("TIMESTAMP,Prompt\n2023-11-16 18:15:50,1\n")
    with pytest.raises(TraceError, match="no column 'ContextTokens'"):
        load_token_trace(f)
