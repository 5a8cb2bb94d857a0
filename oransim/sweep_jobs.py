"""One sweep job, as a worker runs it: a DES run or an evaluation, reduced to rows of KPIs.

``run_job(job, out_dir)`` is what the executors call, in this process (``--workers 0``) or in a
Ray worker. It never raises for a failure of the job itself: the rows then carry the error in one
line, so one bad point does not stop a sweep. A run folder is built in a staging folder and
published whole (``simcore.outputs``); a job interrupted by a signal leaves only that staging
folder's removal to do, which its ``finally`` does (a worker killed outright leaves a hidden
``.NAME.tmp-*`` folder that the next sweep start removes).

Row columns (one row per point x seed x policy; ``mode`` says which job made it):

- DES runs (``run_*``): ``run_tput_mbps`` (bits served over the air / simulated time, all
  slices), ``run_wtput_mbps`` (the same weighted by the slices' weights), ``run_goodput_mbps``,
  and per slice S ``run_tput_mbps_S``, ``run_delay_ms_S`` (mean, delivered packets),
  ``run_delay_p95_ms_S``, ``run_drop_pct_S``, ``run_delay_qos_pct_S``, ``run_rate_qos_pct_S``;
  ``run_wall_s``, ``run_dir``.
- Evaluations (``eval_*``, means over the job's states): ``eval_tput_mbps`` (unweighted rate that
  counts under the objective), ``eval_wtput_mbps`` (the objective), ``eval_opt_wtput_mbps`` (the
  optimum's), ``eval_tput_mbps_S`` per slice, ``eval_max_interference_dbm`` (mean over states of
  the largest interference on a served PRB; NaN with one RU), and the agreement table's
  ``eval_ratio`` (objective / optimum's), ``eval_qos_pct``, ``eval_mae``, ``eval_r2``,
  ``eval_cosine``, ``eval_baep_pct``, ``eval_decide_ms``; for a policy that says how it solved
  (``optimal``) ``eval_mode`` (``single_ru``, ``joint``, ``certified``, ...) and ``eval_gap_pct``
  (largest gap to the true optimum over the states: 0 where proven exact, NaN where not known);
  ``eval_violation_mbps`` and
  ``eval_opt_violation_mbps`` (total rate shortfall against the needs, the policy's and the
  optimum's) and ``eval_beats_opt`` (states where the policy ranks above the optimum: must be 0).
"""

from __future__ import annotations

import math
import shutil
import time
import traceback
from pathlib import Path

import numpy as np

from oransim.guard import signal_in


def _one_line(exc: BaseException) -> str:
    text = (str(exc).strip().splitlines() or [""])[0]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _run_rows(job: dict, out_dir: Path) -> list[dict]:
    from analysis.kpis import delay_percentiles, load_run, slice_kpis
    from simcore.outputs import staging_folder
    from simcore.run import preflight, save_run, simulate
    from simcore.scenario import parse_scenario

    scn = parse_scenario(job["scenario"])
    problems = preflight(scn)
    if problems:
        raise ValueError("; ".join(f"{f}: {m}" for f, m in problems))
    target = out_dir / "runs" / job["job_id"]
    staging = staging_folder(target)
    try:
        result = simulate(scn, spool_dir=staging)
        folder = save_run(result, target, scenario_file=job.get("scenario_file"), overwrite=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    run = load_run(folder)
    k = slice_kpis(run)
    p95 = delay_percentiles(run, (95.0,))["p95"]
    weight = {sl.name: sl.weight for sl in scn.slices}
    tput = k["throughput_mbps"] if "throughput_mbps" in k else k["goodput_mbps"] * np.nan
    row = {"run_tput_mbps": float(tput.sum()), "run_goodput_mbps": float(k["goodput_mbps"].sum()),
           "run_wtput_mbps": float(sum(weight[s] * tput[s] for s in k.index)),
           "run_wall_s": float(result.wall_s), "run_dir": str(Path("runs") / job["job_id"])}
    for s in k.index:
        row[f"run_tput_mbps_{s}"] = float(tput[s])
        row[f"run_delay_ms_{s}"] = float(k.loc[s, "mean_delay_ms"])
        row[f"run_delay_p95_ms_{s}"] = float(p95[s])
        row[f"run_drop_pct_{s}"] = float(k.loc[s, "drop_pct"])
        row[f"run_delay_qos_pct_{s}"] = float(k.loc[s, "delay_qos_pct"])
        if "rate_qos_pct" in k:
            row[f"run_rate_qos_pct_{s}"] = float(k.loc[s, "rate_qos_pct"])
    return [{"policy": job["policies"][0], **row}]


def _ranks_above(r: dict) -> bool:
    """The policy's allocation ranks above the optimum's on the optimum's first two tiers (less
    shortfall, or as little and a larger objective; 1e-6 relative, the MILP's gap): impossible for
    an exact optimum, so any count but 0 is a bug (or a MILP stopped by its time limit)."""
    tol_v = 1e-6 * max(r["opt_violation_bps"], 1.0) + 0.01
    tol_f = 1e-6 * max(abs(r["opt_objective_bps"]), 1.0) + 0.01
    if r["violation_bps"] < r["opt_violation_bps"] - tol_v:
        return True
    return abs(r["violation_bps"] - r["opt_violation_bps"]) <= tol_v and r["objective_bps"] > r["opt_objective_bps"] + tol_f


#: States sampled and optima solved by this process, by state: sweeps of one reproduction share
#: points (Fig. 3c's grid holds Fig. 3b's and 3d's), and a point x seed evaluated again with other
#: policies need not sample or solve again. Oldest first out beyond ``_MEMO`` entries.
_STATES: dict = {}
_SOLVED: dict = {}
_MEMO = 512


def _remember(memo: dict, key, value) -> None:
    memo[key] = value
    while len(memo) > _MEMO:
        memo.pop(next(iter(memo)))


def _state_key(scenario: dict, state_seed: int, warmup_tti: int) -> str:
    """What determines a sampled state: the scenario but its seed and duration (``sample_states``
    sets both), the state's seed and the warm-up."""
    import hashlib
    import json

    rest = {k: v for k, v in scenario.items() if k not in ("seed", "duration_s")}
    text = json.dumps([rest, state_seed, warmup_tti], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _evaluate_rows(job: dict) -> list[dict]:
    from oransim.evaluate import evaluate, sample_states
    from simcore.plugins import plugin_problems, policy_spec
    from simcore.scenario import PolicyConfig, parse_scenario

    scn = parse_scenario(job["scenario"])
    opt = job["options"]
    rows, fitting = [], []
    for spec in job["policies"]:  # a policy that cannot decide here (a checkpoint for fewer UEs) is a row's error
        name, params = policy_spec(spec)
        problems = plugin_problems(scn.model_copy(update={"policy": PolicyConfig(name=name, params=params)}))
        if problems:
            rows.append({"policy": spec, "eval_error": "; ".join(f"{f}: {m}" for f, m in problems)})
        else:
            fitting.append(spec)
    if not fitting:
        return rows
    first = job["seed"] * opt["states"]
    keys = [_state_key(job["scenario"], first + i, opt["warmup_tti"]) for i in range(opt["states"])]
    for key, i in zip(keys, range(first, first + opt["states"])):
        if key not in _STATES:
            _remember(_STATES, key, sample_states(scn, 1, i, opt["warmup_tti"])[0])
    states = [_STATES[k] for k in keys]
    table, records = evaluate(states, fitting, optimum=opt["optimum"], seed=first, objective=opt["objective"],
                              solved=_SOLVED, state_keys=keys)
    while len(_SOLVED) > _MEMO:
        _SOLVED.pop(next(iter(_SOLVED)))
    slices = states[0].slice_names
    for spec in fitting:
        rs = [r for r in records if r["policy"] == spec]
        t = table.loc[spec]
        interf = [r["max_interference_w"] for r in rs]
        row = {"policy": spec, "eval_states": len(rs), "eval_optimum": table.attrs["optimum"],
               "eval_tput_mbps": float(np.mean([r["throughput_bps"] for r in rs])) / 1e6,
               "eval_wtput_mbps": float(np.mean([r["objective_bps"] for r in rs])) / 1e6,
               "eval_opt_wtput_mbps": float(np.mean([r["opt_objective_bps"] for r in rs])) / 1e6,
               "eval_violation_mbps": float(np.mean([r["violation_bps"] for r in rs])) / 1e6,
               "eval_opt_violation_mbps": float(np.mean([r["opt_violation_bps"] for r in rs])) / 1e6,
               "eval_beats_opt": sum(_ranks_above(r) for r in rs),
               "eval_max_interference_dbm": (10 * math.log10(np.mean(interf) * 1e3)
                                             if states[0].n_rus > 1 and np.mean(interf) > 0 else float("nan")),
               "eval_ratio": float(t["throughput_ratio"]), "eval_qos_pct": float(t["qos_pct"]),
               "eval_mae": float(t["mae"]), "eval_r2": float(t["r2"]), "eval_cosine": float(t["cosine"]),
               "eval_baep_pct": float(t["baep_pct"]), "eval_decide_ms": float(t["decide_ms"])}
        if "mode" in t and isinstance(t["mode"], str) and t["mode"]:  # a policy that reports how it solved (optimal)
            row["eval_mode"], row["eval_gap_pct"] = t["mode"], float(t["gap_pct"])
        per_slice = np.mean([r["slice_throughput_bps"] for r in rs], axis=0) / 1e6
        row.update({f"eval_tput_mbps_{s}": float(v) for s, v in zip(slices, per_slice)})
        rows.append(row)
    order = {p: i for i, p in enumerate(job["policies"])}
    return sorted(rows, key=lambda r: order[r["policy"]])


def run_job(job: dict, out_dir: str) -> dict:
    """Run one job; returns ``{"key", "job_id", "mode", "ok", "error", "rows", "wall_s"}``. Failures
    of the job are caught and reported (the error in one line); a signal (``Stopped``,
    ``KeyboardInterrupt``) is not caught, so the caller's cleanup runs."""
    t0 = time.perf_counter()
    out = {"key": job["key"], "job_id": job["job_id"], "mode": job["mode"], "ok": True, "error": None}
    try:
        rows = _run_rows(job, Path(out_dir)) if job["mode"] == "run" else _evaluate_rows(job)
    except MemoryError:
        out.update(ok=False, error="MemoryError: out of memory")
        rows = []
    except Exception as exc:  # the job failed: say why in one line, keep the sweep going
        stop = signal_in(exc)
        if stop is not None:  # a signal that surfaced inside compiled code: stop, do not record a failure
            raise stop from None
        out.update(ok=False, error=_one_line(exc))
        out["traceback"] = traceback.format_exc(limit=8)
        rows = []
    if not out["ok"]:
        col = "run_error" if job["mode"] == "run" else "eval_error"
        rows = [{"policy": p, col: out["error"]} for p in job["policies"]]
    out["rows"] = rows
    out["wall_s"] = time.perf_counter() - t0
    return out
