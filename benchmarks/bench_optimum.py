"""Wall time of the two optima: ESA (exhaustive) and the exact MILP (`optimal`).

Both solve the same snapshot problem (simcore.snapshot: 3 power levels per PRB, the unique optimum
of its four tiers) on states sampled from the paper's default cell (1 RU, 3 slices, numerology 0)
after a warm-up under PF, so buffers and rate needs are those of a running network.

- ESA, U = 2..8 UEs (slices filled in turn): the paper cell's 30 PRBs give (3U + 1)^30 allocations,
  beyond any enumeration, so ESA is timed on cells with few PRBs (``--esa-prbs``, default 4 and 6)
  next to the MILP on the same states; the column "same" counts the states where both returned the
  very same allocation (the MILP here with ``mip_gap`` 1e-9). Sizes above ESA's limit are shown as
  refused, with the size. The last lines extrapolate ESA to the paper cell from the enumeration
  speed measured here (stated as an extrapolation, not run).
- MILP on the paper cell itself (30 PRBs), U = 3 x {4, 10, 30, 50, 100}: median CPU time, and the
  share of states whose optimality was proven. Target: median under 1 s at 3 x 30 UEs.
- Several RUs (``--multi-ru-states``): the 2-RU cell of ``scenarios/esa_small_2ru.yaml`` (2 RUs 300 m
  apart, 2 PRBs, 6 UEs), where ``optimal`` is exact (joint formulation), timed next to ESA with the
  count of identical allocations, and the same cell with the certified mode forced (how tight its bound
  is where RUs interfere strongly); and 3 RUs 500 m apart x 3 x 10 UEs x 30 PRBs (the paper cell's
  slices), where ``optimal`` reports a certified gap: CPU time and gap per objective. Target there:
  gap <= 2 % in under 5 s.
- Which side of that gap is loose (``--loose-states``): on 2 RUs 500 m apart x 3 x 2 UEs x 6 PRBs, small
  enough for the exact joint MILP, the certified mode forced next to the exact optimum: how far its
  allocation falls below the optimum (primal loss) and how far its bound lies above it (bound slack).
- Branch-and-price on the joint bound (``--branch-nodes``): on the same cells under rate, the bound's slack at the
  exact optimum's shortfall after each node budget (nodes beyond the root).
- Labels: optimum allocations per CPU second on the paper cell (3 x 10 UEs), the rate at which
  supervised-learning labels are made, for each objective; with the machine reference of
  bench_engine.py (one small numpy call), since machines differ several-fold.

    python benchmarks/bench_optimum.py [--states 5] [--optimal-sizes 4,10,30,50,100] [--esa-prbs 3,4]
                                       [--objective served|rate] [--label-states 40] [--multi-ru-states 3]
                                       [--loose-states 0] [--branch-nodes 0,64,256]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from bench_engine import machine_reference
from cells import paper_cell
from oransim.evaluate import sample_states
from policies.esa import ExhaustiveSearch, SearchSpaceTooLarge, esa_space_size
from policies.optimal import ExactOptimum
from simcore.scenario import load_scenario, parse_scenario
from simcore.snapshot import DEFAULT_LEVEL_FACTORS

ROOT = Path(__file__).resolve().parent.parent


def spread(total: int) -> list[int]:
    """``total`` UEs over the three slices, filled in turn (eMBB, URLLC, mMTC, eMBB, ...)."""
    return [total // 3 + (1 if i < total % 3 else 0) for i in range(3)]


def timed(policy, obs):
    """The allocation and the CPU seconds it took (CPU time: the machines these run on are shared)."""
    t0 = time.process_time()
    alloc = policy.decide(obs)
    return alloc, time.process_time() - t0


def esa_table(n_states: int, prbs_list: list[int], max_space: int, objective: str) -> float:
    esa = ExhaustiveSearch(max_space=max_space, objective=objective)
    opt = ExactOptimum(mip_gap=1e-9, objective=objective)
    n_lvl = len(DEFAULT_LEVEL_FACTORS)
    print(f"ESA vs MILP on small cells (1 RU, L={n_lvl} power levels, objective {objective}), median of {n_states} "
          f"states, ESA limit {max_space:,} allocations")
    print(f"{'PRBs':>4} {'UEs':>4} {'ESA space':>16} {'ESA s':>9} {'alloc/s':>10} {'MILP s':>8} {'same':>6}   (CPU s)")
    speeds = []
    for prbs in prbs_list:
        for u in range(2, 9):
            size = esa_space_size(u, 1, prbs, n_lvl)
            states = sample_states(paper_cell(spread(u), prbs=prbs), n_states, seed=100, warmup_tti=100)
            t_esa, t_opt, same = [], [], 0
            refused = False
            for obs in states:
                a_opt, s_opt = timed(opt, obs)
                t_opt.append(s_opt)
                try:
                    a_esa, s_esa = timed(esa, obs)
                except SearchSpaceTooLarge:
                    refused = True
                    continue
                t_esa.append(s_esa)
                same += bool((a_esa.prb_owner == a_opt.prb_owner).all() and (a_esa.power_w == a_opt.power_w).all())
            if refused:
                print(f"{prbs:>4} {u:>4} {size:>16,} {'refused':>9} {'':>10} {np.median(t_opt):>8.3f} {'':>6}")
                continue
            speeds.append(size / np.median(t_esa))
            print(f"{prbs:>4} {u:>4} {size:>16,} {np.median(t_esa):>9.3f} {speeds[-1]:>10.3g} "
                  f"{np.median(t_opt):>8.3f} {same:>3}/{len(states):<2}")
    return float(np.median(speeds)) if speeds else float("nan")


def optimal_table(n_states: int, sizes: list[int], objective: str) -> None:
    opt = ExactOptimum(objective=objective)
    print(f"\nMILP (HiGHS via scipy.optimize.milp) on the paper cell (1 RU, 30 PRBs, L=3, objective {objective}), "
          f"{n_states} states per size")
    print(f"{'UEs':>5} {'binaries':>9} {'median s':>9} {'max s':>8} {'proven':>7} {'worst gap':>10}   (CPU s)")
    for n in sizes:
        states = sample_states(paper_cell(n, prbs=30), n_states, seed=200, warmup_tti=100)
        times, proven, gaps, binaries = [], 0, [], 0
        for obs in states:
            alloc, s = timed(opt, obs)
            times.append(s)
            proven += bool(alloc.info["proven_optimal"])
            gaps.append(alloc.info["mip_gap"])
            binaries = max(binaries, alloc.info["binaries"])
        print(f"{3 * n:>5} {binaries:>9} {np.median(times):>9.3f} {max(times):>8.3f} {proven:>3}/{n_states:<3} "
              f"{max(gaps):>10.1e}")


def labels_table(n_states: int) -> None:
    per_call, _ = machine_reference()
    states = sample_states(paper_cell(10, prbs=30), n_states, seed=300, warmup_tti=100)
    print(f"\nLabels: the MILP's optimum on {n_states} paper-cell states (3 x 10 UEs, 30 PRBs, L=3), CPU time; "
          f"machine reference {per_call:.2f} us per small numpy call")
    print(f"{'objective':>9} {'states/CPU-s':>12} {'median ms':>10} {'max ms':>8} {'phases':>7}  shortcuts")
    for objective in ("served", "rate"):
        opt = ExactOptimum(objective=objective)
        times, phases, shortcuts = [], [], {}
        for obs in states:
            t0 = time.process_time()
            alloc = opt.decide(obs)
            times.append(time.process_time() - t0)
            phases.append(alloc.info["phases"])
            shortcuts[alloc.info["shortcut"]] = shortcuts.get(alloc.info["shortcut"], 0) + 1
        print(f"{objective:>9} {len(times) / sum(times):>12.2f} {np.median(times) * 1e3:>10.0f} {max(times) * 1e3:>8.0f} "
              f"{np.mean(phases):>7.1f}  " + ", ".join(f"{k}: {v}" for k, v in sorted(shortcuts.items())))


def three_ru_cell():
    """The paper cell's slices, 10 UEs per slice per RU, on 3 RUs 500 m apart (a triangle), 30 PRBs each."""
    base = paper_cell(10, prbs=30).model_dump()
    base["cell"]["rus"] = [dict(base["cell"]["rus"][0], x_m=x, y_m=y) for x, y in ((0, 0), (500, 0), (250, 433))]
    return parse_scenario(base)


def multi_ru_table(n_states: int) -> None:
    print(f"\nSeveral RUs: `optimal` (mode, CPU s, certified gap; certified stops its starts at gap_target "
          f"{100 * ExactOptimum().gap_target:g} %) on {n_states} states per row")
    print(f"{'cell':>28} {'objective':>9} {'mode':>10} {'median s':>9} {'max s':>7} {'median gap %':>13} "
          f"{'max gap %':>10} {'ESA s':>7} {'same':>6}")
    small = sample_states(load_scenario(ROOT / "scenarios" / "esa_small_2ru.yaml"), n_states, seed=1, warmup_tti=200)
    large = sample_states(three_ru_cell(), n_states, seed=400, warmup_tti=100)
    rows = (("2 RUs x 6 UEs x 2 PRBs", small, "auto", True), ("2 RUs x 6 UEs x 2 PRBs", small, "certified", True),
            ("3 RUs x 3x10 UEs x 30 PRBs", large, "auto", False))
    for label, states, interference, with_esa in rows:
        for objective in ("served", "rate"):
            opt = ExactOptimum(objective=objective, mip_gap=1e-9 if with_esa else 1e-6, interference=interference)
            esa = ExhaustiveSearch(objective=objective)
            times, gaps, modes, t_esa, same, detail = [], [], set(), [], 0, []
            for obs in states:
                a, s = timed(opt, obs)
                times.append(s)
                gaps.append(a.info["gap"])
                modes.add(a.info["mode"])
                if a.info["mode"] == "certified" and not with_esa:  # per state: shortfall / least proved, gap
                    detail.append(f"{a.info['violation_bps'] / 1e3:.2f}/{a.info['shortfall_lower_bound_bps'] / 1e3:.2f} "
                                  f"kb/s {100 * a.info['gap']:.2f} %")
                if with_esa:
                    b, s = timed(esa, obs)
                    t_esa.append(s)
                    same += bool((a.prb_owner == b.prb_owner).all() and (a.power_w == b.power_w).all())
            esa_cols = f"{np.median(t_esa):>7.2f} {same:>3}/{len(states):<2}" if with_esa else f"{'':>7} {'':>6}"
            print(f"{label:>28} {objective:>9} {'+'.join(sorted(modes)):>10} {np.median(times):>9.2f} "
                  f"{max(times):>7.2f} {100 * np.median(gaps):>13.3g} {100 * max(gaps):>10.3g} {esa_cols}", flush=True)
            if detail:
                print(f"{'':>28} per state, shortfall / least proved, gap: {'; '.join(detail)}", flush=True)


def two_ru_cell(ues_per_slice: int, prbs: int):
    """The paper cell's slices on 2 RUs 500 m apart: small enough for the exact joint MILP."""
    base = paper_cell(ues_per_slice, prbs=prbs).model_dump()
    base["cell"]["rus"] = [dict(base["cell"]["rus"][0], x_m=x, y_m=0) for x in (0, 500)]
    return parse_scenario(base)


def loose_side_table(n_states: int, ues_per_slice: int = 2, prbs: int = 6) -> None:
    """Which side of the certified gap is loose: on cells small enough for the exact joint MILP, the
    certified mode (forced) next to the exact optimum. Where both reach the same shortfall (and the optimum is
    proven: "same V" counts these), the primal's
    loss is (F* - F) / F* and the bound's slack (UB - F*) / UB; their sum is about the gap."""
    states = sample_states(two_ru_cell(ues_per_slice, prbs), n_states, seed=500, warmup_tti=100)
    n_ues = 2 * 3 * ues_per_slice
    print(f"\nWhich side is loose: 2 RUs 500 m apart x 3 x {ues_per_slice} UEs x {prbs} PRBs ({n_ues} UEs), "
          f"`certified` forced vs the exact joint MILP, {n_states} states per row (CPU s)")
    print(f"{'objective':>9} {'same V':>7} {'primal loss % med/max':>22} {'bound slack % med/max':>22} "
          f"{'gap % med/max':>14} {'exact s':>8} {'certified s':>12}")
    for objective in ("served", "rate"):
        # HiGHS's time limit is wall-clock: generous, so that a loaded machine still proves the optimum
        exact = ExactOptimum(objective=objective, interference="joint", max_joint_choices=10**6, time_limit_s=600)
        cert = ExactOptimum(objective=objective, interference="certified")
        loss, slack, gaps, t_ex, t_ce, same = [], [], [], [], [], 0
        for obs in states:
            a, s_ex = timed(exact, obs)
            b, s_ce = timed(cert, obs)
            t_ex.append(s_ex)
            t_ce.append(s_ce)
            gaps.append(b.info["gap"])
            f_star, ub = a.info["objective_bps"], b.info["upper_bound_bps"]
            same_v = abs(a.info["violation_bps"] - b.info["violation_bps"]) <= max(1.0, 1e-9 * f_star)
            if a.info["proven_optimal"] and same_v:
                same += 1
                loss.append(max(0.0, (f_star - b.info["objective_bps"]) / f_star) if f_star > 0 else 0.0)
                slack.append(max(0.0, (ub - f_star) / ub) if ub > 0 else 0.0)

        def med_max(v):
            return f"{100 * np.median(v):.2f} / {100 * max(v):.2f}" if v else "-"

        print(f"{objective:>9} {same:>3}/{len(states):<3} {med_max(loss):>22} {med_max(slack):>22} {med_max(gaps):>14} "
              f"{np.median(t_ex):>8.2f} {np.median(t_ce):>12.2f}", flush=True)


def branch_table(n_states: int, budgets: list[int], ues_per_slice: int = 2, prbs: int = 6) -> None:
    """The joint bound's slack with branch-and-price (``policies.joint_branch``) after each node budget, on the
    which-side-is-loose cells under rate: the bound at the exact optimum's shortfall V* (the exact allocation
    among the columns, so only the bound is measured), (UB - F*) / UB, and the shortfall bound's distance V* - V_lb."""
    from policies.joint_bound import JointRelaxation
    from policies.optimal import _UNIT_BPS
    from simcore.snapshot import SnapshotProblem

    states = sample_states(two_ru_cell(ues_per_slice, prbs), n_states, seed=500, warmup_tti=100)
    exact = ExactOptimum(objective="rate", interference="joint", max_joint_choices=10**6, time_limit_s=600)
    optima = [(obs, exact.decide(obs)) for obs in states]
    print(f"\nBranch-and-price on the joint bound: 2 RUs x 3 x {ues_per_slice} UEs x {prbs} PRBs, rate, {n_states} states, "
          f"bound at the exact optimum's shortfall (CPU s for both tiers)")
    print(f"{'nodes':>6} {'slack % med/max':>16} {'V*-V_lb kb/s med/max':>21} {'CPU s med/max':>14}")
    for nodes in budgets:
        slack, v_gap, times = [], [], []
        for obs, a in optima:
            prob = SnapshotProblem(obs, objective="rate")
            relax = JointRelaxation(prob, _UNIT_BPS)
            relax.add_allocation(a)
            t0 = time.process_time()
            v_lb = relax.shortfall_lower_bound(600.0, nodes=nodes)
            ub = relax.objective_upper_bound(a.info["violation_bps"] + prob.violation_tol, 600.0, nodes=nodes)
            times.append(time.process_time() - t0)
            slack.append(max(0.0, (ub - a.info["objective_bps"]) / ub))
            v_gap.append(max(0.0, a.info["violation_bps"] - v_lb) / 1e3)
        print(f"{nodes:>6} {100 * np.median(slack):>7.2f} / {100 * max(slack):<6.2f} {np.median(v_gap):>10.1f} / "
              f"{max(v_gap):<8.1f} {np.median(times):>6.2f} / {max(times):<6.2f}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--states", type=int, default=5, help="sampled states per size")
    ap.add_argument("--esa-prbs", default="4,6", help="PRBs of the small cells ESA runs on ('' to skip ESA)")
    ap.add_argument("--esa-limit", type=int, default=5_000_000, help="ESA max_space")
    ap.add_argument("--optimal-sizes", default="4,10,30,50,100", help="UEs per slice for the MILP")
    ap.add_argument("--objective", default="served", choices=["served", "rate"], help="snapshot objective")
    ap.add_argument("--label-states", type=int, default=40, help="paper-cell states for the labels line (0: skip)")
    ap.add_argument("--multi-ru-states", type=int, default=3, help="states per multi-RU row (0: skip)")
    ap.add_argument("--loose-states", type=int, default=0,
                    help="states per objective of the which-side-is-loose table (exact joint MILP; 0: skip)")
    ap.add_argument("--branch-nodes", default="",
                    help="node budgets of the branch-and-price table on the loose cells, e.g. 0,64,256 ('' to skip)")
    args = ap.parse_args()
    if args.multi_ru_states:
        multi_ru_table(args.multi_ru_states)
    if args.loose_states:
        loose_side_table(args.loose_states)
    budgets = [int(x) for x in args.branch_nodes.split(",") if x]
    if budgets:
        branch_table(max(args.loose_states, 8), budgets)
    esa_prbs = [int(x) for x in args.esa_prbs.split(",") if x]
    speed = esa_table(args.states, esa_prbs, args.esa_limit, args.objective) if esa_prbs else float("nan")
    sizes = [int(x) for x in args.optimal_sizes.split(",") if x]
    if sizes:
        optimal_table(args.states, sizes, args.objective)
    if args.label_states:
        labels_table(args.label_states)
    if not esa_prbs:
        return
    print(f"\nESA enumerates about {speed:.3g} allocations/s here. Extrapolated (not run) to the paper cell, 30 PRBs:")
    for u in (2, 3, 30):
        size = esa_space_size(u, 1, 30, len(DEFAULT_LEVEL_FACTORS))
        years = size / speed / 3.15e7
        print(f"  U={u:>2}: (3U+1)^30 = {float(size):.2e} allocations, about {years:.1e} years")


if __name__ == "__main__":
    main()
