"""`clover-rl evaluate`: policies side by side on one carbon-trace window (table, JSON, files)."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer


def evaluate(
    scenario: Annotated[str, typer.Option(
        "--scenario", metavar="NAME|FILE", help="shipped scenario name or YAML path")],
    policy: Annotated[list[str], typer.Option(
        "--policy", metavar="NAME|PATH",
        help="repeatable: base, clover, random, oracle, greedy-carbon, mpc, or a run folder / model.zip",
    )],
    carbon_trace: Annotated[str | None, typer.Option(
        "--carbon-trace", metavar="NAME|FILE[,column=C][,time_column=T][,unit=U]",
        help="replace the scenario's trace: shipped name or file; column picks a value column "
             "(Electricity Maps: lca (default) or direct), unit one of g/kWh, kg/kWh, t/MWh, "
             "lbs/MWh")] = None,
    hours: Annotated[int | None, typer.Option(
        "--hours", metavar="H",
        help="hours of trace to run (24 h = 288 intervals at a 300 s control interval; "
             "default: the whole hours left in the trace from --start)")] = None,
    start: Annotated[int, typer.Option(
        "--start", metavar="I", help="first interval of the trace window (an index, not an hour)")] = 0,
    seed: Annotated[int, typer.Option(
        "--seed", metavar="S", min=0, help="seed of policies and backend noise")] = 0,
    as_json: Annotated[bool, typer.Option(
        "--json", help="print one JSON object keyed by --policy")] = False,
    out: Annotated[Path | None, typer.Option(
        "--out", metavar="DIR",
        help="write summary.csv/json, intervals.csv, evaluation.png and tb/ here")] = None,
    tb_dir: Annotated[Path | None, typer.Option(
        "--tb-dir", metavar="DIR",
        help="write TensorBoard runs here as <scenario>__eval__<policy>__<seed>__<time>/tb "
             "(like training run folders) instead of OUT/tb")] = None,
    progress: Annotated[bool, typer.Option(
        "--progress/--no-progress", help="progress bar on a terminal")] = True,
    ray: Annotated[str | None, typer.Option(
        "--ray", metavar="auto|ADDRESS", help="run the policies in parallel on a Ray cluster: 'auto' joins "
                                              "RAY_ADDRESS or starts a local one; else HOST:6379 or "
                                              "ray://HOST:10001 (needs the 'ray' extra); same figures")] = None,
    workers: Annotated[int | None, typer.Option(
        "--workers", metavar="N", help="with --ray: Ray workers (default: the cluster's CPUs)")] = None,
) -> None:
    """Evaluate policies on the same trace window; BASE and ORACLE always run as references."""
    from rich.console import Console

    from clover_rl.evaluation import evaluate_policies
    from clover_rl.evaluation.report import render_table, to_json_text, write_outputs
    from clover_rl.paths import writable_dir

    if ray is not None:
        from clover_rl.distributed.runtime import require_ray

        require_ray()  # a missing extra fails before anything runs
    if workers is not None and (ray is None or workers < 1):
        from clover_rl.errors import ConfigError

        raise ConfigError(f"--workers {workers}: needs --ray and a count >= 1")
    for flag, folder in (("--out", out), ("--tb-dir", tb_dir)):
        if folder is not None:
            writable_dir(folder, flag)  # before the run, so no result is lost at the end
    res = evaluate_policies(scenario, policy, carbon_trace=carbon_trace, hours=hours, seed=seed,
                            start=start, progress=progress, ray_address=ray, workers=workers)
    # With --json stdout carries only the JSON object; file notes go to stderr.
    console = Console(stderr=as_json, highlight=False, soft_wrap=True)
    if as_json:
        sys.stdout.write(to_json_text(res) + "\n")
    else:
        render_table(res)
    if out is not None:
        paths = write_outputs(res, out)
        console.print(f"wrote {', '.join(str(p) for p in paths.values())}")
    if out is not None or tb_dir is not None:
        from clover_rl.telemetry.tensorboard import write_evaluation

        if tb_dir is not None:
            runs = write_evaluation(res, tb_dir, run_names=True)
        else:
            runs = write_evaluation(res, Path(out) / "tb")  # type: ignore[arg-type]
        root = tb_dir if tb_dir is not None else Path(out) / "tb"  # type: ignore[arg-type]
        console.print(f"TensorBoard: {len(runs)} run(s) under {root} (tensorboard --logdir {root})")


def register(app: typer.Typer) -> None:
    app.command("evaluate")(evaluate)
