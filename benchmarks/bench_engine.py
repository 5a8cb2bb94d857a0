"""Engine throughput: simulated TTIs per wall second and peak memory, paper cell, PF.

Runs the paper's default cell (1 RU, 30 PRBs, numerology 0, decisions every 10 TTIs) with 3 x N
UEs for N in {10, 30, 100}, packet-level records and per-TTI records on. Each size runs in a fresh
process so that peak memory (ru_maxrss) belongs to that size alone. Prints a table; also the cost
per TTI relative to the 3 x 10 case, to show how it grows with the number of UEs.

The engine's cost is mostly the fixed overhead of small numpy calls, which differs several-fold
between machines; the first line printed measures it here (mean wall time of one small numpy call
and of one pure-Python loop step) so that figures from different machines can be compared.

    python benchmarks/bench_engine.py [--duration 5] [--sizes 10,30,100]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

CHILD = r"""
import json, resource, sys, time
sys.path.insert(0, sys.argv[3])
from cells import paper_cell
from simcore.run import simulate
n, dur = int(sys.argv[1]), float(sys.argv[2])
scn = paper_cell(n, duration_s=dur)
simulate(paper_cell(n, duration_s=0.02))  # warm caches and imports
rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
res = simulate(scn)
print(json.dumps({"ues": 3 * n, "tti": scn.n_tti, "wall_s": res.wall_s,
                  "packets": res.counts["generated_packets"],
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "rss_before_mb": rss0 / 1024}))
"""


def machine_reference() -> tuple[float, float]:
    """(us per small numpy call, ns per pure-Python loop step) on this machine, best of 5."""
    import timeit

    import numpy as np

    a, b = np.ones(64), np.ones(64)
    per_call = min(timeit.repeat(lambda: np.add(a, b), number=20000, repeat=5)) / 20000 * 1e6
    per_step = min(timeit.repeat("for i in range(10000): x = i + 1", number=20, repeat=5)) / 200000 * 1e9
    return per_call, per_step


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=float, default=5.0, help="simulated seconds per size")
    ap.add_argument("--sizes", default="10,30,100", help="UEs per slice")
    args = ap.parse_args()
    rows = []
    for n in (int(x) for x in args.sizes.split(",")):
        out = subprocess.run([sys.executable, "-c", CHILD, str(n), str(args.duration), str(Path(__file__).parent)],
                             capture_output=True, text=True, check=True).stdout
        rows.append(json.loads(out.strip().splitlines()[-1]))
    ref = rows[0]["wall_s"] / rows[0]["tti"]
    call_us, step_ns = machine_reference()
    print(f"machine reference: {call_us:.2f} us per small numpy call, {step_ns:.1f} ns per Python loop step")
    print(f"paper cell, PF, {args.duration:g} s simulated per size, records on (one process per size)")
    print(f"{'UEs':>5} {'TTIs':>7} {'packets':>9} {'wall s':>8} {'TTI/s':>8} {'us/TTI':>8} "
          f"{'cost x':>7} {'UEs x':>6} {'peak RSS MB':>12}")
    for r in rows:
        per = r["wall_s"] / r["tti"]
        print(f"{r['ues']:>5} {r['tti']:>7} {r['packets']:>9} {r['wall_s']:>8.2f} {r['tti'] / r['wall_s']:>8.0f} "
              f"{per * 1e6:>8.1f} {per / ref:>7.2f} {r['ues'] / rows[0]['ues']:>6.1f} {r['peak_rss_mb']:>12.0f}")
    print("cost x: wall time per TTI relative to the first size; UEs x: UEs relative to the first size")


if __name__ == "__main__":
    main()
