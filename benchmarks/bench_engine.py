"""Engine throughput and memory: simulated TTIs per wall second and peak memory, paper cell, PF.

Three parts, each size or case in a fresh process so that peak memory (ru_maxrss) is its own:

1. Sizes: the paper's default cell (1 RU, 30 PRBs, numerology 0, decisions every 10 TTIs) with
   3 x N UEs for N in ``--sizes``, packet-level and per-TTI records on; the cost per TTI relative
   to the first size shows how it grows with the number of UEs.
2. Per-TTI scheduling (``--per-tti``): the same cell at 3 x 30 UEs with PF deciding every TTI
   (``scheduling.interval_tti: 1``, what a MAC scheduler does) next to every 10 TTIs, and PF every
   TTI with a CSI report every ``--csi-period`` TTIs (``phy.csi.period_tti``, default 5: the
   observation's channel part is rebuilt only at reports), run alternately in the same invocation
   so that all see the same machine load. ``--ref TREE``
   runs both cases with another source tree too (e.g. a checkout of main:
   ``git archive main | tar -x -C /tmp/main``), alternated with this one, and prints the speed-up
   of each case against it. The target of a per-TTI MAC scheduler is 5,000 TTI/s at 3 x 30 UEs.
3. Instructions (``--instructions``, needs valgrind; slow: each run under callgrind): CPU
   instructions per TTI of PF every TTI and every 10 TTIs at 3 x 30 UEs, this tree (and ``--ref``),
   counted by ``valgrind --tool=callgrind`` over a whole process that simulates 300 TTIs minus one
   that simulates 100 (start-up, imports and the warm-up cancel), divided by 200. Deterministic:
   the machine's load does not change it, so it is the figure to compare on a shared machine.
4. Compiled-kernel cache (``--cache-check``): ``oransim run`` of ``quick.yaml`` (and of quick.yaml with
   the calibration profile's built-in side) twice, each in a fresh process, with numba's cache in an
   empty folder (``NUMBA_CACHE_DIR``) and ``NUMBA_DEBUG_CACHE=1``: the first run compiles and saves
   its kernels, the second must load them all and save nothing (a kernel whose cache key changes
   from process to process, e.g. a closure over a dispatcher, would compile on every run). Exit 1
   when the second run saved a file.
5. One simulated hour (``--hour``, several minutes): the paper cell at 3 x 30 UEs with records on,
   written as ``oransim run`` writes it (tables spooled to the run folder's staging folder while
   the run goes); prints the peak resident memory, the resident memory along the run, the packet
   rows still held at the end, and the size of each table on disk.

The engine's cost is mostly the fixed overhead of small numpy calls, which differs several-fold
between machines (and on a shared machine from minute to minute); the first line printed measures
it here (wall time of one small numpy call and of one pure-Python loop step) so that figures from
different machines and moments can be compared.

    python benchmarks/bench_engine.py [--duration 5] [--sizes 10,30,100] [--per-tti [--ref TREE] [--csi-period 5]]
                                      [--instructions [--ref TREE]] [--cache-check] [--hour [--hour-s 3600]]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

CHILD = r"""
import json, resource, sys, time
sys.path.insert(0, sys.argv[4])
if len(sys.argv) > 5 and sys.argv[5]:  # another source tree's simcore and policies
    sys.path.insert(0, sys.argv[5])
from cells import paper_cell
from simcore.run import simulate
from simcore.scenario import parse_scenario
n, dur, interval = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
csi_period = int(sys.argv[6]) if len(sys.argv) > 6 else 1
def cell(d):
    data = paper_cell(n, duration_s=d).model_dump()
    data["scheduling"]["interval_tti"] = interval
    if csi_period > 1:
        data["phy"]["csi"] = {"period_tti": csi_period, "delay_tti": 0}
    return parse_scenario(data)
scn = cell(dur)
simulate(cell(0.02))  # warm caches and imports
rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
cpu0 = time.process_time()
res = simulate(scn)
cpu = time.process_time() - cpu0
print(json.dumps({"ues": 3 * n, "tti": scn.n_tti, "wall_s": res.wall_s, "cpu_s": cpu, "interval": interval,
                  "packets": res.counts["generated_packets"],
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "rss_before_mb": rss0 / 1024}))
"""

HOUR = r"""
import json, os, resource, shutil, sys, tempfile, time
from pathlib import Path
sys.path.insert(0, sys.argv[3])
from cells import paper_cell
from simcore.engine import Engine
from simcore.plugins import make_phy, make_policy
from simcore.outputs import staging_folder
from simcore.run import save_run, simulate
n, dur = int(sys.argv[1]), float(sys.argv[2])
page = os.sysconf("SC_PAGE_SIZE")
def rss_mb():
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * page / 2**20
simulate(paper_cell(n, duration_s=0.02))  # warm caches and imports
rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
trace, held = [], {"rows": 0, "table_mb": 0.0, "fifo": 0}
root = Path(tempfile.mkdtemp(prefix="bench-hour-"))
try:
    out = root / "run"
    scn = paper_cell(n, duration_s=dur)
    eng = None
    def progress(done, total):
        pk, buf = eng.packets, eng.buffers
        held["rows"] = max(held["rows"], pk.held)
        held["table_mb"] = max(held["table_mb"], (pk.f.nbytes + pk.i.nbytes + pk.c.nbytes) / 2**20)
        held["fifo"] = max(held["fifo"], buf.queued_packets())
        trace.append((done, rss_mb()))
    eng = Engine(scn, make_policy(scn.policy.name, scn.policy.params), make_phy(scn.phy.backend, scn.phy.params),
                 progress=progress, spool_dir=staging_folder(out))
    t0 = time.perf_counter()
    res = eng.run()
    folder = save_run(res, out)
    wall = time.perf_counter() - t0
    disk = {p.name: p.stat().st_size for p in folder.iterdir()}
finally:
    shutil.rmtree(root, ignore_errors=True)
step = max(1, len(trace) // 10)
print(json.dumps({"ues": 3 * n, "tti": scn.n_tti, "wall_s": wall, "sim_wall_s": res.wall_s,
                  "packets": res.counts["generated_packets"], "rss_before_mb": rss0,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "trace": trace[::step] + trace[-1:], "disk": disk, "held": held}))
"""


def machine_reference() -> tuple[float, float]:
    """(us per small numpy call, ns per pure-Python loop step) on this machine, best of 5."""
    import timeit

    import numpy as np

    a, b = np.ones(64), np.ones(64)
    per_call = min(timeit.repeat(lambda: np.add(a, b), number=20000, repeat=5)) / 20000 * 1e6
    per_step = min(timeit.repeat("for i in range(10000): x = i + 1", number=20, repeat=5)) / 200000 * 1e9
    return per_call, per_step


def _child(n: int, duration: float, interval: int, tree: str | None = None, csi_period: int = 1) -> dict:
    cmd = [sys.executable, "-c", CHILD, str(n), str(duration), str(interval), str(Path(__file__).parent),
           str(Path(tree).resolve()) if tree else "", str(csi_period)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def sizes(args) -> None:
    rows = [_child(int(x), args.duration, 10) for x in args.sizes.split(",")]
    ref = rows[0]["wall_s"] / rows[0]["tti"]
    print(f"paper cell, PF every 10 TTIs, {args.duration:g} s simulated per size, records on (one process per size)")
    print(f"{'UEs':>5} {'TTIs':>7} {'packets':>9} {'wall s':>8} {'TTI/s':>8} {'us/TTI':>8} "
          f"{'cost x':>7} {'UEs x':>6} {'peak RSS MB':>12}")
    for r in rows:
        per = r["wall_s"] / r["tti"]
        print(f"{r['ues']:>5} {r['tti']:>7} {r['packets']:>9} {r['wall_s']:>8.2f} {r['tti'] / r['wall_s']:>8.0f} "
              f"{per * 1e6:>8.1f} {per / ref:>7.2f} {r['ues'] / rows[0]['ues']:>6.1f} {r['peak_rss_mb']:>12.0f}")
    print("cost x: wall time per TTI relative to the first size; UEs x: UEs relative to the first size")


def per_tti(args, repeats: int = 3) -> None:
    """Decisions every TTI vs every 10 TTIs at 3 x 30 UEs, alternated (with ``--ref``, this tree and
    the reference tree alternated too), plus decisions every TTI with a CSI report every
    ``--csi-period`` TTIs (this tree only); best of ``repeats`` each, by CPU time of the run."""
    trees = {"this tree": None} | ({"reference": args.ref} if args.ref else {})
    cases = [(10, 1), (1, 1)] + ([(1, args.csi_period)] if args.csi_period > 1 else [])
    best: dict[tuple[str, int, int], dict] = {}
    for _ in range(repeats):
        for interval, period in cases:
            for name, tree in trees.items():
                if period > 1 and tree is not None:
                    continue  # the reference tree may not know phy.csi
                r = _child(30, args.duration, interval, tree, period)
                if (name, interval, period) not in best or r["cpu_s"] < best[name, interval, period]["cpu_s"]:
                    best[name, interval, period] = r
    print(f"paper cell, 3 x 30 UEs, PF, {args.duration:g} s simulated, records on; best of {repeats} alternated runs"
          + (f"; reference tree {args.ref}" if args.ref else ""))
    print("TTI/s and us/TTI from the run's CPU time (process time: less sensitive than wall time to other "
          "processes on a shared machine); wall TTI/s alongside")
    print(f"{'decisions every':>16} {'CSI every':>10} {'tree':>10} {'TTI/s':>8} {'us/TTI':>8} {'wall TTI/s':>11} "
          f"{'vs every 10':>12}" + (f" {'vs reference':>13}" if args.ref else ""))
    for interval, period in cases:
        for name in trees:
            if (name, interval, period) not in best:
                continue
            r = best[name, interval, period]
            line = (f"{interval:>11} TTI{'s' if interval > 1 else ' '} {period:>6} TTI{'s' if period > 1 else ' '} "
                    f"{name:>10} {r['tti'] / r['cpu_s']:>8.0f} {r['cpu_s'] / r['tti'] * 1e6:>8.1f} "
                    f"{r['tti'] / r['wall_s']:>11.0f} {best[name, 10, 1]['cpu_s'] / r['cpu_s']:>12.2f}")
            if args.ref:
                line += f" {best['reference', interval, 1]['cpu_s'] / r['cpu_s']:>12.2f}x"
            print(line)
    print("target for PF deciding every TTI: 5,000 TTI/s (200 us per TTI); vs reference: speed-up against the "
          "reference tree's same case (its ideal-CSI case for a CSI period)")


def _instructions_per_tti(interval: int, tree: str | None) -> float:
    """Instructions per TTI (callgrind): a 300-TTI run minus a 100-TTI run, over 200."""
    import re
    import tempfile

    totals = []
    with tempfile.TemporaryDirectory(prefix="bench-cg-") as tmp:
        for n_tti in (100, 300):
            out = Path(tmp) / f"cg.{n_tti}"
            cmd = ["valgrind", "--tool=callgrind", "--dump-instr=no", f"--callgrind-out-file={out}",
                   sys.executable, "-c", CHILD, "30", str(n_tti / 1000), str(interval), str(Path(__file__).parent),
                   str(Path(tree).resolve()) if tree else "", "1"]
            subprocess.run(cmd, capture_output=True, text=True, check=True)
            totals.append(int(re.search(r"^summary: (\d+)", out.read_text(), re.M).group(1)))
    return (totals[1] - totals[0]) / 200


def instructions(args) -> None:
    import shutil

    if shutil.which("valgrind") is None:
        sys.exit("bench_engine: --instructions needs valgrind on PATH")
    trees = {"this tree": None} | ({"reference": args.ref} if args.ref else {})
    print("paper cell, 3 x 30 UEs, PF, records on: CPU instructions per TTI (callgrind, a 300-TTI run minus "
          "a 100-TTI run, / 200; independent of the machine's load)")
    print(f"{'decisions every':>16} {'tree':>10} {'M instr/TTI':>12}" + (f" {'vs reference':>13}" if args.ref else ""))
    for interval in (int(x) for x in args.intervals.split(",")):
        got = {name: _instructions_per_tti(interval, tree) for name, tree in trees.items()}
        for name, v in got.items():
            line = f"{interval:>11} TTI{'s' if interval > 1 else ' '} {name:>10} {v / 1e6:>12.3f}"
            if args.ref:
                line += f" {got['reference'] / v:>12.2f}x"
            print(line)


def cache_check(args) -> bool:
    """``--cache-check``: True when the second of two ``oransim run`` processes saved no compiled kernel."""
    import os
    import tempfile

    root = Path(__file__).resolve().parent.parent
    ok = True
    with tempfile.TemporaryDirectory(prefix="bench-cache-") as tmp:
        env = {**os.environ, "NUMBA_CACHE_DIR": str(Path(tmp) / "numba"), "NUMBA_DEBUG_CACHE": "1"}
        profiled = Path(tmp) / "quick_profile.yaml"
        subprocess.run([sys.executable, "-c", PROFILED, str(root), str(profiled)], check=True)
        print(f"numba cache in an empty folder; oransim run SCENARIO --duration {args.cache_duration:g}, twice")
        print(f"{'scenario':>24} {'run':>4} {'kernels saved':>14} {'loaded':>7} {'wall s':>7}")
        for scn in (root / "scenarios" / "quick.yaml", profiled):
            for run in (1, 2):
                t0 = time.perf_counter()
                out = subprocess.run([sys.executable, "-m", "oransim", "run", str(scn), "--duration",
                                      str(args.cache_duration), "--out", str(Path(tmp) / f"{scn.stem}-{run}")],
                                     capture_output=True, text=True, env=env, cwd=tmp)
                wall = time.perf_counter() - t0
                if out.returncode:
                    sys.exit(f"bench_engine: oransim run {scn.name} failed: {out.stderr.strip()[-500:]}")
                saved = [x for x in out.stdout.splitlines() if "[cache] data saved to" in x]
                loaded = sum("[cache] data loaded from" in x for x in out.stdout.splitlines())
                print(f"{scn.stem:>24} {run:>4} {len(saved):>14} {loaded:>7} {wall:>7.1f}")
                if run == 2 and saved:
                    ok = False
                    print("  compiled again on the second run: " + "; ".join(x.split("data saved to")[-1].strip()
                                                                           for x in saved))
    print("second runs compiled nothing" if ok else "FAIL: a second run compiled kernels again")
    return ok


#: writes quick.yaml with the calibration profile's built-in side applied to argv[2] (argv[1]: the repository)
PROFILED = r"""
import sys
sys.path.insert(0, sys.argv[1])
from oransim.calibrate import apply_profile
from simcore.scenario import load_scenario
from simcore.yamlio import load_yaml_text, read_text_file
import yaml
base = load_scenario(sys.argv[1] + "/scenarios/quick.yaml")
prof = load_yaml_text(read_text_file(sys.argv[1] + "/scenarios/calibration/ns3_lte.yaml"))
data = apply_profile(base, prof, "builtin").model_dump(mode="json")
data["name"] = "quick_profile"
open(sys.argv[2], "w").write(yaml.safe_dump(data))
"""


def hour(args) -> None:
    out = subprocess.run([sys.executable, "-c", HOUR, "30", str(args.hour_s), str(Path(__file__).parent)],
                         capture_output=True, text=True, check=True).stdout
    r = json.loads(out.strip().splitlines()[-1])
    print(f"paper cell, 3 x 30 UEs, PF every 10 TTIs, {args.hour_s:g} s simulated ({r['tti']:,} TTIs, "
          f"{r['packets']:,} packets), records on, spooled as oransim run does")
    print(f"wall time {r['wall_s']:.0f} s (simulation {r['sim_wall_s']:.0f} s, {r['tti'] / r['sim_wall_s']:,.0f} TTI/s); "
          f"resident memory after imports and warm-up {r['rss_before_mb']:.0f} MB, "
          f"peak {r['peak_rss_mb']:.0f} MB")
    print("resident memory along the run: " + ", ".join(f"{100 * d / r['tti']:.0f}%: {m:.0f} MB" for d, m in r["trace"]))
    h = r["held"]
    print(f"largest packet table held: {h['rows']:,} packets in flight ({h['table_mb']:.0f} MB of arrays), "
          f"{h['fifo']:,} packets queued in the UE buffers")
    print("run folder: " + ", ".join(f"{k} {v / 2**20:,.1f} MB" for k, v in sorted(r["disk"].items())))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=float, default=5.0, help="simulated seconds per size / per-TTI case")
    ap.add_argument("--sizes", default="10,30,100", help="UEs per slice; empty to skip")
    ap.add_argument("--per-tti", action="store_true", help="PF deciding every TTI vs every 10 TTIs, 3 x 30 UEs")
    ap.add_argument("--ref", default=None, help="with --per-tti or --instructions: a reference source tree to compare with")
    ap.add_argument("--csi-period", type=int, default=5,
                    help="with --per-tti: also PF every TTI with a CSI report every this many TTIs (1: skip)")
    ap.add_argument("--instructions", action="store_true",
                    help="instructions per TTI (valgrind callgrind), PF every TTI and every 10 TTIs (--intervals), 3 x 30 UEs")
    ap.add_argument("--intervals", default="1,10", help="with --instructions: decision intervals (TTIs) to count")
    ap.add_argument("--cache-check", action="store_true",
                    help="a second oransim run (quick.yaml, with and without the calibration profile) compiles nothing")
    ap.add_argument("--cache-duration", type=float, default=0.1, help="with --cache-check: simulated seconds per run")
    ap.add_argument("--hour", action="store_true", help="peak memory of one simulated hour, 3 x 30 UEs")
    ap.add_argument("--hour-s", type=float, default=3600.0, help="simulated seconds of the --hour run")
    args = ap.parse_args()
    call_us, step_ns = machine_reference()
    print(f"machine reference: {call_us:.2f} us per small numpy call, {step_ns:.1f} ns per Python loop step")
    if args.sizes:
        sizes(args)
    if args.per_tti:
        per_tti(args)
    if args.instructions:
        instructions(args)
    cache_ok = cache_check(args) if args.cache_check else True
    if args.hour:
        hour(args)
    call_us, step_ns = machine_reference()
    print(f"machine reference again: {call_us:.2f} us per small numpy call, {step_ns:.1f} ns per Python loop step")
    if not cache_ok:
        sys.exit(1)


if __name__ == "__main__":
    main()
