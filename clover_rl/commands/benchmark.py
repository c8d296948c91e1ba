"""`clover-rl benchmark`: the fixed benchmark suite for any set of policies (tables, CSV/JSON/PNG)."""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer


def benchmark(
    policy: Annotated[list[str] | None, typer.Option(
        "--policy", metavar="NAME|PATH",
        help="repeatable; default: shipped, clover, mpc, base, oracle ('shipped' = the scenario's "
             "checkpoint)")] = None,
    case: Annotated[list[str] | None, typer.Option(
        "--case", metavar="TEXT", help="repeatable: only cases whose name contains TEXT")] = None,
    workers: Annotated[int | None, typer.Option(
        "--workers", metavar="N", help="worker processes (default 2); with --ray, Ray workers (default: "
                                       "the cluster's CPUs)")] = None,
    ray: Annotated[str | None, typer.Option(
        "--ray", metavar="auto|ADDRESS", help="run the cases on a Ray cluster: 'auto' joins RAY_ADDRESS or "
                                              "starts a local one; else HOST:6379 or ray://HOST:10001 "
                                              "(needs the 'ray' extra)")] = None,
    seed: Annotated[int, typer.Option("--seed", metavar="S", min=0, help="seed of policies and backend")] = 0,
    out: Annotated[Path | None, typer.Option(
        "--out", metavar="DIR", help="write benchmark.csv, .json, .md (Markdown table) and .png here")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
    list_cases: Annotated[bool, typer.Option("--list", help="list the suite's cases and exit")] = False,
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="progress bar on a terminal")] = True,
) -> None:
    """Run the benchmark suite: a table per case, then each policy's median and worst oracle gap.

    Each case's table prints as it finishes; --out DIR also writes benchmark.csv, .json, .png
    and benchmark.md."""
    from clover_rl.errors import ConfigError
    from clover_rl.evaluation.benchmark import DEFAULT_POLICIES, CaseResult, run_suite
    from clover_rl.evaluation.benchmark_report import (
        format_case,
        format_summary,
        to_json,
        write_outputs,
    )
    from clover_rl.evaluation.suite import SUITE_VERSION, select_cases
    from clover_rl.paths import writable_dir
    from clover_rl.progress import ProgressBar
    from clover_rl.telemetry.table import Column, print_table

    if workers is not None and workers < 1:
        raise ConfigError(f"--workers must be >= 1, got {workers}")
    if ray is not None:
        from clover_rl.distributed.runtime import require_ray

        require_ray()  # a missing extra fails before anything runs
    if out is not None:
        writable_dir(out, "--out")  # before the suite runs, so no result is lost
    cases = select_cases(case)
    if list_cases:
        cols = [Column("name", "case", align="left", drop=0), Column("grid", "grid", align="left", drop=0),
                Column("start", "start", align="left", drop=0), Column("hours", "hours", "{:d}", drop=1),
                Column("load", "load", align="left", drop=0)]
        print_table([c.to_dict() for c in cases], cols, title=f"benchmark suite {SUITE_VERSION}")
        return
    policies = list(policy or _default_policies(DEFAULT_POLICIES))
    with ProgressBar(progress and not as_json, "benchmark", total=len(cases)) as bar:
        def done(r: CaseResult) -> None:  # each case's table as soon as it is done
            bar.advance(name=r.case.name)
            if not as_json:
                bar.print(format_case(r) + "\n")

        n = workers if workers is not None or ray else 2  # with --ray: the cluster's CPUs
        res = run_suite(cases, policies, seed=seed, workers=n, on_case=done,
                        ray_address=ray)
    if as_json:
        sys.stdout.write(json.dumps(to_json(res), indent=2) + "\n")
    else:
        print(format_summary(res))
    if out is not None:
        paths = write_outputs(res, out)
        print(f"wrote {', '.join(str(p) for p in paths.values())}", file=sys.stderr if as_json else sys.stdout)


def _default_policies(names: tuple[str, ...]) -> list[str]:
    """The defaults that are available (``mpc`` only where the registry has it)."""
    from clover_rl.agents.registry import POLICY_NAMES

    return [p for p in names if p == "shipped" or p in POLICY_NAMES]


def register(app: typer.Typer) -> None:
    app.command("benchmark")(benchmark)
