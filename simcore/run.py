"""Run a scenario end to end and write its run folder (the library entry the CLI calls)."""

from __future__ import annotations

import datetime as _dt
from pathlib import Path

from .budget import memory_problems
from .engine import Engine, RunResult
from .numerics import numeric_platform
from .plugins import make_phy, make_policy, plugin_problems
from .recorder import git_revision, package_versions, write_run_folder
from .scenario import Scenario
from .threads import thread_counts


def preflight(scenario: Scenario) -> list[tuple[str, str]]:
    """``[(field, message)]`` for everything that would stop a run of ``scenario`` beyond its schema:
    the policy and PHY (names, parameters, what they cannot run) and the memory the run needs.
    ``oransim validate`` and ``oransim run`` both call it, so validate's OK means run starts."""
    problems = plugin_problems(scenario)
    if problems:
        return problems
    period = make_policy(scenario.policy.name, scenario.policy.params).decision_period_tti
    return memory_problems(scenario, period)


def simulate(scenario: Scenario, progress=None, spool_dir: str | Path | None = None) -> RunResult:
    """Build the policy and PHY named in the scenario and run the engine (check ``preflight`` first).

    ``spool_dir``: write the packets, tti, decisions and timing tables there while the run goes
    (Parquet, chunk by chunk) instead of keeping them in memory: give it
    ``simcore.outputs.staging_folder(out)`` and ``save_run(result, out)`` publishes it as the run
    folder. Long runs need it: an hour of TTIs does not fit in memory as tables.
    """
    policy = make_policy(scenario.policy.name, scenario.policy.params)
    phy = make_phy(scenario.phy.backend, scenario.phy.params)
    return Engine(scenario, policy, phy, progress=progress, spool_dir=spool_dir).run()


def manifest(result: RunResult, scenario_file: str | None = None) -> dict:
    s = result.scenario
    return {
        "oransim_run": 1,
        "scenario_file": scenario_file,
        "scenario": s.model_dump(mode="json"),
        "seed": s.seed,
        "policy": {"name": result.policy_name, "params": s.policy.params, **(result.policy_info or {})},
        "phy": {"backend": result.phy_name, "params": s.phy.params, **(result.phy_info or {})},
        "versions": package_versions(),
        "threads": thread_counts(),
        "numerics": numeric_platform(),  # what decides the last bits (simcore/numerics.py)
        "git_revision": git_revision(),
        "wall_time_s": round(result.wall_s, 4),
        "simulated_s": s.n_tti * s.cell.tti_s,
        "n_tti": s.n_tti,
        "tti_s": s.cell.tti_s,
        "interval_tti": s.scheduling.interval_tti,
        "slices": [sl.name for sl in s.slices],
        "counts": result.counts,
        "solve_ms": _timing_summary(result.timing),
        "created_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }


def _timing_summary(timing) -> dict:
    ms = timing["solve_ms"]
    if not len(ms):
        return {}
    return {"decisions": int(len(ms)), "mean": float(ms.mean()), "p50": float(ms.median()),
            "p95": float(ms.quantile(0.95)), "max": float(ms.max())}


def save_run(result: RunResult, out_dir: str | Path, scenario_file: str | None = None,
             overwrite: bool = False) -> Path:
    """Write the run folder. A spooled result's tables are already in its staging folder, which
    becomes the run folder (it must come from ``simcore.outputs.staging_folder(out_dir)``)."""
    if result.spool_dir is not None:
        staged = Path(result.spool_dir)
        tables = {"ues": result.ues}
    else:
        staged = None
        tables = {"packets": result.packets, "tti": result.tti, "decisions": result.decisions,
                  "timing": result.timing, "ues": result.ues}
    return write_run_folder(out_dir, manifest(result, scenario_file), tables, overwrite=overwrite, staging=staged)
