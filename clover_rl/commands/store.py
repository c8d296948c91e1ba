"""`clover-rl store`: compute a scenario's steady states once, into the persistent store."""
from __future__ import annotations

import time

import typer


def store(
    scenario: list[str] = typer.Argument(..., help="shipped scenario names or YAML paths"),
    nominal_only: bool = typer.Option(False, "--nominal-only",
                                      help="only the nominal load (default: also the 16 load levels of the "
                                           "planners' tables and of training, nominal x 1.1^k)"),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="progress bar on a terminal"),
) -> None:
    """Precompute every configuration's replay steady states so later runs start warm.

    Fills the steady-state store (clover_rl.serving.steady_store) with every feasible
    configuration's steady state at the scenario's nominal load and at the load levels that the
    oracle's and mpc's tables (objectives.table_rate) and training (randomization.load_levels)
    use, so that training runs, vectorised-env workers and evaluations on this machine start
    warm: a steady state simulated on first use costs ~1 ms (a 50,000-request simulation), read
    from the store ~20 us."""
    import math

    from clover_rl.envs.config_table import fill_tables
    from clover_rl.envs.randomization import LEVEL_RANGE, LEVEL_REL
    from clover_rl.objectives import table_rate
    from clover_rl.progress import ProgressBar
    from clover_rl.service_model import ServiceModel
    from clover_rl.serving.steady_store import STORE, stored_rows

    if STORE.disabled:
        print("the steady-state store is off (CLOVER_RL_STEADY_STORE=0): nothing to fill")
        return
    for name in scenario:
        before, c0, w0 = stored_rows(), time.process_time(), time.perf_counter()
        model = ServiceModel.from_scenario(name)
        nominal = model.mean_rate
        ks = [0] if nominal_only else range(LEVEL_RANGE[0], LEVEL_RANGE[1] + 1)
        # the tables' rates; each between two rate grid points, so training's levels (the upper one) too
        rates = [table_rate(nominal * math.exp(k * math.log1p(LEVEL_REL)), nominal) for k in ks]
        with ProgressBar(progress, model.scenario.name, total=len(rates), unit="load levels", eta=True) as bar:
            n = fill_tables(model, rates, bar.advance)
        added = stored_rows() - before
        print(f"{model.scenario.name}: {n:,} steady states ({len(rates)} load(s) x "
              f"{n // len(rates):,} configurations), {added:,} new rows in {time.process_time() - c0:.1f} s CPU "
              f"({time.perf_counter() - w0:.1f} s wall); store {STORE.path}")


def register(app: typer.Typer) -> None:
    app.command("store")(store)
