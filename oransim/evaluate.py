"""`oransim evaluate`: policies against the optimum on sampled snapshot states.

States: for state i the scenario is run with seed ``seed + i`` (a new drop, fading and traffic)
for ``warmup_tti`` TTIs under the scenario's own policy, so buffers and throughput averages are
those of a running network; the observation at the last TTI is the state. Every policy and the
optimum decide on the same states; each allocation is scored by the snapshot problem under the
chosen ``objective`` (``served``, buffer-aware, the default; or ``rate``, the paper's full-buffer
objective: see ``simcore.snapshot``), the optimum solving that same objective, and compared with
the optimum's allocation through ``analysis.agreement``.
"""

from __future__ import annotations

import time

import numpy as np

from analysis.agreement import agreement_table, decision_vector
from policies.esa import ExhaustiveSearch, esa_space_size
from simcore.engine import Engine
from simcore.plugins import PluginError, make_phy, make_policy, policy_spec
from simcore.scenario import Scenario
from simcore.snapshot import DEFAULT_LEVEL_FACTORS, SnapshotProblem, objective_checked

#: Policies that solve the snapshot problem exactly (the reference every other policy is compared with).
OPTIMA = ("esa", "optimal")


def sample_states(scenario: Scenario, n_states: int, seed: int, warmup_tti: int = 200, progress=None) -> list:
    states = []
    duration = warmup_tti * scenario.cell.tti_s
    for i in range(n_states):
        scn = scenario.with_overrides(seed=seed + i, duration_s=duration)
        eng = Engine(scn, make_policy(scn.policy.name, scn.policy.params), make_phy(scn.phy.backend, scn.phy.params))
        eng.run()
        states.append(eng.observation(eng.n_tti - 1))
        if progress is not None:
            progress(i + 1, n_states)
    return states


def _make(spec: str, objective: str):
    """The policy ``NAME`` or ``NAME:CHECKPOINT``; those with an ``objective`` parameter (esa, optimal)
    solve the evaluated one (a learned policy keeps the objective its checkpoint was trained for)."""
    name, params = policy_spec(spec)
    try:
        return make_policy(name, {**params, "objective": objective})
    except PluginError:
        return make_policy(name, params)


def choose_optimum(states, name: str = "auto", objective: str = "served"):
    """``esa`` where its space is within its default limit on every state, else ``optimal``; solving ``objective``."""
    if name == "auto":
        o = states[0]  # levels as ESA's own problem has them (more under a tight slice cap)
        size = esa_space_size(o.n_ues, o.n_rus, o.n_prbs, SnapshotProblem(o, DEFAULT_LEVEL_FACTORS).n_levels)
        name = "esa" if size <= ExhaustiveSearch().max_space else "optimal"
    return name, _make(name, objective)


def throughput_parts(ev, alloc, obs) -> dict:
    """What an allocation delivers in the snapshot problem, beyond its objective: the unweighted
    rate that counts under the objective (``throughput_bps``), its split per slice
    (``slice_throughput_bps``, (S,)), and the largest interference any served PRB sees from the
    other RUs (``max_interference_w``; 0 with one RU or nothing served)."""
    counted = ev.rates_bps if ev.served_bps is None else ev.served_bps
    per_slice = np.bincount(obs.slice_id, weights=counted, minlength=len(obs.slice_names))
    owner = alloc.prb_owner
    max_i = 0.0
    if obs.n_rus > 1 and (owner >= 0).any():
        own_ru = np.where(alloc.ue_ru >= 0, alloc.ue_ru, obs.serving_ru)
        interf = obs.link.interference_w(obs.gain, own_ru, alloc.power_w)  # (U, K)
        r, k = np.nonzero(owner >= 0)
        max_i = float(interf[owner[r, k], k].max())
    return {"throughput_bps": float(counted.sum()), "slice_throughput_bps": per_slice, "max_interference_w": max_i}


def evaluate(states, policy_names: list[str], optimum: str = "auto", seed: int = 0, progress=None,
             objective: str = "served", solved: dict | None = None, state_keys: list | None = None):
    """Agreement table (one row per policy) and the per-state records behind it. A policy is named
    ``NAME`` or ``NAME:CHECKPOINT`` (a learned policy, e.g. ``dqn:models/dqn_paper_default.pt``).
    ``solved`` (a mapping the caller keeps across calls) with ``state_keys`` (per state, whatever
    determines it) reuses the optimum's allocation and solve time on a state it has already solved."""
    objective = objective_checked(objective)
    opt_name, opt = choose_optimum(states, optimum, objective)
    policies = {n: _make(n, objective) for n in policy_names}
    for i, p in enumerate([opt, *policies.values()]):
        p.reset(seed + i)
    records, opt_modes, opt_gaps = [], [], []
    for i, obs in enumerate(states):
        prob = SnapshotProblem(obs, objective=objective)
        key = None if solved is None or state_keys is None else (state_keys[i], opt_name, objective)
        if key is not None and key in solved:
            opt_alloc, opt_ms = solved[key]
        else:
            t0 = time.perf_counter()
            opt_alloc = opt.decide(obs)
            opt_ms = (time.perf_counter() - t0) * 1e3
            if key is not None:
                solved[key] = (opt_alloc, opt_ms)
        opt_modes.append(str((opt_alloc.info or {}).get("mode", "")))
        opt_gaps.append(float((opt_alloc.info or {}).get("gap", 0.0)))
        opt_ev = prob.evaluate(opt_alloc)
        opt_vec = decision_vector(opt_alloc, obs)
        for name, pol in policies.items():
            if name == opt_name:  # the optimum listed as a policy: its allocation is the one just solved
                alloc, ms = opt_alloc, opt_ms
            else:
                t0 = time.perf_counter()
                alloc = pol.decide(obs)
                ms = (time.perf_counter() - t0) * 1e3
            ev = prob.evaluate(alloc)
            has_need = ev.need_bps > 0
            records.append({
                "policy": name, "state": i, "vector": decision_vector(alloc, obs), "opt_vector": opt_vec,
                "objective_bps": ev.objective_bps, "opt_objective_bps": opt_ev.objective_bps,
                "violation_bps": ev.violation_bps, "opt_violation_bps": opt_ev.violation_bps,
                "qos_met": int((ev.qos_met & has_need).sum()), "ues_with_need": int(has_need.sum()),
                "decide_ms": ms, "mode": (alloc.info or {}).get("mode"), "gap": (alloc.info or {}).get("gap"),
                **throughput_parts(ev, alloc, obs),
            })
        if progress is not None:
            progress(i + 1, len(states))
    table = agreement_table(records)
    _add_modes(table, records)
    table.attrs["optimum"] = opt_name
    table.attrs["optimum_modes"] = sorted(set(opt_modes))
    table.attrs["optimum_gap_pct"] = 100.0 * max(opt_gaps) if opt_gaps else 0.0
    table.attrs["objective"] = objective
    return table, records


def _add_modes(table, records) -> None:
    """For policies that report how they solved each state (``optimal``: single_ru, joint, worst_case,
    certified), the modes used and the largest certified gap to the optimum (%), NaN where unknown."""
    for name in table.index:
        rs = [r for r in records if r["policy"] == name and r.get("mode")]
        if not rs:
            continue
        if "mode" not in table:
            table["mode"] = ""
            table["gap_pct"] = float("nan")
        table.loc[name, "mode"] = "+".join(sorted({r["mode"] for r in rs}))
        gaps = [r["gap"] for r in rs if r["gap"] is not None]
        if len(gaps) == len(rs):
            table.loc[name, "gap_pct"] = 100.0 * max(gaps)
