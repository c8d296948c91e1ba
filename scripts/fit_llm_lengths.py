"""Fit the shipped LLM request-length generator (clover_rl/llm/data/azure_lengths.yaml).

Usage: python scripts/fit_llm_lengths.py ../shared/data/azure_llm
(the folder holding AzureLLMInferenceTrace_code.csv and AzureLLMInferenceTrace_conv.csv from
Azure/AzurePublicDataset, CC BY 4.0). Only the fitted quantiles are written, never the data.
"""
from __future__ import annotations

import sys
from pathlib import Path

import yaml

from clover_rl.llm.lengths import FITTED_PATH, fit_lengths, load_token_trace

HEADER = """\
# Fitted request lengths (prompt and output tokens) of the Azure LLM inference traces, 2023:
# Patel et al., "Splitwise: Efficient generative LLM inference using phase splitting", ISCA 2024;
# data from github.com/Azure/AzurePublicDataset (CC BY 4.0). Empirical quantiles at 101 levels
# + a Gaussian-copula correlation; rebuilt by scripts/fit_llm_lengths.py (the data is not shipped).
"""


def main(folder: str) -> None:
    fits = {}
    for name in ("code", "conv"):
        tr = load_token_trace(Path(folder) / f"AzureLLMInferenceTrace_{name}.csv")
        fit = fit_lengths(name, tr.prompt, tr.output, tr.span_s)
        fits[name] = fit.to_dict()
        print(f"{name}: {len(tr.prompt)} requests, rho={fit.copula_rho:.3f}, rate={fit.mean_rate:.3f}/s")
    FITTED_PATH.parent.mkdir(parents=True, exist_ok=True)
    FITTED_PATH.write_text(HEADER + yaml.safe_dump({"fits": fits}, sort_keys=False, default_flow_style=None))
    print(f"wrote {FITTED_PATH}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "../shared/data/azure_llm")
