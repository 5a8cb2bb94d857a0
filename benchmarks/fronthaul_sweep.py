"""Where the fronthaul binds: throughput against fronthaul capacity, and PRB capacity against bits.

Two measurements, both printed as tables; the second also drawn (PNG):

1. Mean PRB capacity of the paper cell (``scenarios/paper_default.yaml``) against the quantizer's
   bits per I/Q component: the mean over UEs and PRBs of the per-PRB rate a scheduler sees at the
   decision (equal power, ``Observation.prb_rate_bps``), over ``--drops`` drops, relative to 16 bits.
2. Weighted throughput sum_s w_s (bits served to slice s) / duration of ``pf`` and ``optimal``
   (the exact MILP as the RIC policy) on ``scenarios/fronthaul_limited.yaml`` for each fronthaul
   capacity in ``--capacities`` (Mbit/s; bits = floor(C / (2 f_s))). Same seed for every capacity
   and policy, so the drop, fading and traffic are the same: only the fronthaul changes. By default
   ``optimal`` uses pf's equal power per PRB (``--optimal-levels 1.0``), so the two differ only in
   the PRB assignment; with three levels (0.5, 1, 2) some fronthaul-limited states, where every UE
   has nearly the same per-PRB rate, take the MILP tens of seconds to prove.

    python benchmarks/fronthaul_sweep.py [--duration 2] [--drops 20] [--png docs/fronthaul_sweep.png]
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from simcore.engine import Engine  # noqa: E402
from simcore.plugins import make_phy, make_policy  # noqa: E402
from simcore.scenario import Scenario, load_scenario  # noqa: E402


def with_fronthaul(s: Scenario, **fields) -> Scenario:
    return s.with_overrides(fronthaul={**s.fronthaul.model_dump(), **fields})


def prb_capacity_table(base: Scenario, bits_list, drops: int) -> list[tuple[int, float]]:
    """(bits, mean per-PRB rate bit/s) over ``drops`` drops (seeds 1..drops) at TTI 0."""
    out = []
    for bits in bits_list:
        caps = []
        for seed in range(1, drops + 1):
            s = with_fronthaul(base.with_overrides(seed=seed), quantizer_bits=bits)
            eng = Engine(s, make_policy("pf"), make_phy("builtin"))
            caps.append(float(eng.observation(0).prb_rate_bps.mean()))
        out.append((bits, float(np.mean(caps))))
    return out


def weighted_throughput_mbps(s: Scenario, policy: str, params: dict) -> float:
    eng = Engine(s.with_overrides(policy=policy), make_policy(policy, params), make_phy("builtin"))
    eng.run()
    weight = eng.slice_weight[eng.geo.ue_slice]
    return float(weight @ eng.served_bits_total) / (eng.n_tti * eng.tti_s) / 1e6


def sqnr_equal_share_db(s: Scenario) -> float:
    """SQNR of a PRB at the equal share P_max / K (the fronthaul noise is the same on every PRB)."""
    from simcore.phy import LinkModel
    from simcore.units import dbm_to_w

    link = LinkModel.from_scenario(s, ue_slice=np.zeros(0, dtype=int))
    share = dbm_to_w(s.cell.rus[0].max_power_dbm) / s.cell.prbs_per_ru
    return 10 * math.log10(share / link.quant_noise_w[0])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scenario", default=str(ROOT / "scenarios" / "fronthaul_limited.yaml"))
    ap.add_argument("--paper", default=str(ROOT / "scenarios" / "paper_default.yaml"))
    ap.add_argument("--capacities", default="16,32,48,64,80,96,112,128,160", help="fronthaul Mbit/s")
    ap.add_argument("--policies", default="pf,optimal")
    ap.add_argument("--optimal-levels", default="1.0",
                    help="the optimal policy's power levels (x P/K); 1.0: pf's equal power, so the two differ "
                         "only in the PRB assignment")
    ap.add_argument("--duration", type=float, default=2.0, help="simulated seconds per run")
    ap.add_argument("--drops", type=int, default=20, help="drops for the PRB-capacity table (0: skip it)")
    ap.add_argument("--png", default=str(ROOT / "docs" / "fronthaul_sweep.png"), help="figure path ('' : none)")
    args = ap.parse_args()

    if args.drops:
        paper = load_scenario(args.paper)
        rows = prb_capacity_table(paper, (16, 10, 9, 8, 6, 5, 4, 3, 2, 1), args.drops)
        ref = rows[0][1]
        print(f"mean PRB capacity, {paper.name} ({args.drops} drops, equal power, TTI 0)")
        print(f"{'bits':>5} {'kbit/s':>9} {'vs 16 bits':>11}")
        for bits, cap in rows:
            print(f"{bits:>5} {cap / 1e3:>9.1f} {cap / ref:>11.4f}")
        print()

    base = load_scenario(args.scenario).with_overrides(duration_s=args.duration)
    policies = args.policies.split(",")
    params = {p: {"level_factors": [float(x) for x in args.optimal_levels.split(",")]} if p == "optimal" else {}
              for p in policies}
    caps = [float(c) for c in args.capacities.split(",")]
    table = []
    for c in caps:
        s = with_fronthaul(base, capacity_mbps=c)
        table.append((c, s.quantizer_bits, sqnr_equal_share_db(s), [weighted_throughput_mbps(s, p, params[p]) for p in policies]))
    print(f"weighted throughput sum_s w_s T_s (Mbit/s), {base.name}, {args.duration:g} s simulated, seed {base.seed}, "
          f"optimal at power levels {args.optimal_levels} x P/K")
    print(f"{'C_FH Mbit/s':>11} {'bits':>5} {'SQNR dB':>8} " + " ".join(f"{p:>9}" for p in policies))
    for c, bits, sqnr, tput in table:
        print(f"{c:>11g} {bits:>5} {sqnr:>8.1f} " + " ".join(f"{t:>9.2f}" for t in tput))
    print("SQNR: of a PRB at the equal share P_max / K (6.02 b + 4.77 - papr_backoff_db + 10 log10(f_s / K B_PRB))")

    if args.png:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6.4, 4.0))
        for i, p in enumerate(policies):
            ax.plot([t[0] for t in table], [t[3][i] for t in table], marker="o", label=p)
        for c, bits, _, _ in table:
            ax.annotate(f"{bits} b", (c, 0), xycoords=("data", "axes fraction"), xytext=(0, 4),
                        textcoords="offset points", ha="center", fontsize=8, color="0.4")
        ax.set_xlabel("fronthaul capacity C_FH (Mbit/s); bits per I/Q component below")
        ax.set_ylabel("weighted throughput (Mbit/s)")
        ax.set_ylim(bottom=0)
        ax.set_title(f"{base.name}: fronthaul quantization noise, {args.duration:g} s per point")
        ax.grid(alpha=0.3)
        ax.legend()
        fig.tight_layout()
        out = Path(args.png)
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_suffix(".tmp.png")
        fig.savefig(tmp, dpi=110)
        tmp.replace(out)  # atomic: a failed run leaves the old figure
        print(f"figure: {out}")


if __name__ == "__main__":
    main()
