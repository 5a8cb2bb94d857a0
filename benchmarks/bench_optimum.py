"""Wall time of the two optima: ESA (exhaustive) and the exact MILP (`optimal`).

Both solve the same snapshot problem (simcore.snapshot: 3 power levels per PRB) on states sampled
from the paper's default cell (1 RU, 3 slices, numerology 0) after a warm-up under PF, so buffers
and rate needs are those of a running network.

- ESA, U = 2..8 UEs (slices filled in turn): the paper cell's 30 PRBs give (3U + 1)^30 allocations,
  beyond any enumeration, so ESA is timed on cells with few PRBs (``--esa-prbs``, default 4 and 6)
  next to the MILP on the same states; the objectives of the two are compared. Sizes above ESA's
  limit are shown as refused, with the size. The last lines extrapolate ESA to the paper cell from
  the enumeration speed measured here (stated as an extrapolation, not run).
- MILP on the paper cell itself (30 PRBs), U = 3 x {4, 10, 30, 50, 100}: median wall time, and the
  share of states whose optimality was proven. Target: median under 1 s at 3 x 30 UEs.

    python benchmarks/bench_optimum.py [--states 5] [--optimal-sizes 4,10,30,50,100] [--esa-prbs 3,4]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from cells import paper_cell
from oransim.evaluate import sample_states
from policies.esa import ExhaustiveSearch, SearchSpaceTooLarge, esa_space_size
from policies.optimal import ExactOptimum
from simcore.snapshot import DEFAULT_LEVEL_FACTORS, SnapshotProblem


def spread(total: int) -> list[int]:
    """``total`` UEs over the three slices, filled in turn (eMBB, URLLC, mMTC, eMBB, ...)."""
    return [total // 3 + (1 if i < total % 3 else 0) for i in range(3)]


def timed(policy, obs):
    t0 = time.perf_counter()
    alloc = policy.decide(obs)
    return alloc, time.perf_counter() - t0


def esa_table(n_states: int, prbs_list: list[int], max_space: int) -> float:
    esa, opt = ExhaustiveSearch(max_space=max_space), ExactOptimum()
    n_lvl = len(DEFAULT_LEVEL_FACTORS)
    print(f"ESA vs MILP on small cells (1 RU, L={n_lvl} power levels), median of {n_states} states, ESA limit "
          f"{max_space:,} allocations")
    print(f"{'PRBs':>4} {'UEs':>4} {'ESA space':>16} {'ESA s':>9} {'alloc/s':>10} {'MILP s':>8} {'max rel diff':>13}")
    speeds = []
    for prbs in prbs_list:
        for u in range(2, 9):
            size = esa_space_size(u, 1, prbs, n_lvl)
            states = sample_states(paper_cell(spread(u), prbs=prbs), n_states, seed=100, warmup_tti=100)
            t_esa, t_opt, diff = [], [], []
            refused = False
            for obs in states:
                prob = SnapshotProblem(obs)
                a_opt, s_opt = timed(opt, obs)
                t_opt.append(s_opt)
                try:
                    a_esa, s_esa = timed(esa, obs)
                except SearchSpaceTooLarge:
                    refused = True
                    continue
                t_esa.append(s_esa)
                e_esa, e_opt = prob.evaluate(a_esa), prob.evaluate(a_opt)
                diff.append(abs(e_esa.objective_bps - e_opt.objective_bps) / max(1.0, abs(e_opt.objective_bps)))
            if refused:
                print(f"{prbs:>4} {u:>4} {size:>16,} {'refused':>9} {'':>10} {np.median(t_opt):>8.3f} {'':>13}")
                continue
            speeds.append(size / np.median(t_esa))
            print(f"{prbs:>4} {u:>4} {size:>16,} {np.median(t_esa):>9.3f} {speeds[-1]:>10.3g} "
                  f"{np.median(t_opt):>8.3f} {max(diff):>13.1e}")
    return float(np.median(speeds)) if speeds else float("nan")


def optimal_table(n_states: int, sizes: list[int]) -> None:
    opt = ExactOptimum()
    print(f"\nMILP (HiGHS via scipy.optimize.milp) on the paper cell (1 RU, 30 PRBs, L=3), {n_states} states per size")
    print(f"{'UEs':>5} {'binaries':>9} {'median s':>9} {'max s':>8} {'proven':>7} {'worst gap':>10}")
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--states", type=int, default=5, help="sampled states per size")
    ap.add_argument("--esa-prbs", default="4,6", help="PRBs of the small cells ESA runs on")
    ap.add_argument("--esa-limit", type=int, default=5_000_000, help="ESA max_space")
    ap.add_argument("--optimal-sizes", default="4,10,30,50,100", help="UEs per slice for the MILP")
    args = ap.parse_args()
    speed = esa_table(args.states, [int(x) for x in args.esa_prbs.split(",")], args.esa_limit)
    optimal_table(args.states, [int(x) for x in args.optimal_sizes.split(",")])
    print(f"\nESA enumerates about {speed:.3g} allocations/s here. Extrapolated (not run) to the paper cell, 30 PRBs:")
    for u in (2, 3, 30):
        size = esa_space_size(u, 1, 30, len(DEFAULT_LEVEL_FACTORS))
        years = size / speed / 3.15e7
        print(f"  U={u:>2}: (3U+1)^30 = {float(size):.2e} allocations, about {years:.1e} years")


if __name__ == "__main__":
    main()
