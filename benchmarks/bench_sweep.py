"""Wall time of one sweep in this process, on a local Ray instance with 1 worker and with 2.

The sweep: POLICIES x UE counts x seeds of DES runs of the paper cell (scenarios/paper_default.yaml),
each a fresh sweep folder. Prints each wall time, Ray's start-up (from ray.init to ready) and the
speed-up of 2 workers over 1 (both on Ray, so the start-up is in both; the speed-up without it is
printed too). Run on an idle machine for a speed-up that means anything: the workers compete for
cores with whatever else runs.

    python benchmarks/bench_sweep.py                       # 3 policies x 10 UE counts x 5 seeds, 2 s runs
    python benchmarks/bench_sweep.py --ues 5,20 --seeds 2 --duration 0.5
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--policies", default="rr,pf,maxcqi")
    ap.add_argument("--ues", default="5,10,15,20,25,30,35,40,45,50", help="UEs per slice")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--duration", type=float, default=2.0, help="simulated seconds per run")
    ap.add_argument("--modes", default="0,1,2", help="workers per measurement (0: in this process)")
    args = ap.parse_args()

    from oransim.sweep import expand, load_sweep
    from oransim.sweep_run import run_sweep

    ues = [int(u) for u in args.ues.split(",")]
    text = (f"name: bench\nscenario: {ROOT / 'scenarios' / 'paper_default.yaml'}\n"
            f"set: {{duration_s: {args.duration}}}\ngrid:\n  \"slices[*].ues\": {ues}\n"
            f"seeds: {{first: 1, count: {args.seeds}}}\npolicies: [{args.policies}]\nrun: {{record_packets: true}}\n")
    print(f"sweep: {len(args.policies.split(','))} policies x {len(ues)} UE counts x {args.seeds} seeds of "
          f"{args.duration:g} s runs; {os.cpu_count()} CPUs; load average {os.getloadavg()[0]:.1f}")
    times = {}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.yaml"
        path.write_text(text)
        spec = load_sweep(path)
        points, jobs = expand(spec, path)
        for w in (int(m) for m in args.modes.split(",")):
            t0 = time.perf_counter()
            s = run_sweep(spec, path, points, jobs, Path(tmp) / f"out{w}", workers=w)
            wall = time.perf_counter() - t0
            start = s["ray_start_s"] or 0.0
            times[w] = (wall, start)
            label = "in this process" if w == 0 else f"Ray, {w} worker(s)"
            print(f"{label:>18}: {len(jobs)} runs in {wall:7.1f} s" + (f" (Ray start-up {start:.1f} s)" if w else "")
                  + f"; failed {s['failed']}; load average after {os.getloadavg()[0]:.1f}", flush=True)
    if 1 in times and 2 in times:
        (w1, s1), (w2, s2) = times[1], times[2]
        print(f"speed-up 2 vs 1 worker: {w1 / w2:.2f}x; without Ray's start-up: {(w1 - s1) / (w2 - s2):.2f}x")
    if 0 in times and 1 in times:
        print(f"Ray with 1 worker vs in this process: {times[1][0] / times[0][0]:.2f}x the wall time")


if __name__ == "__main__":
    main()
