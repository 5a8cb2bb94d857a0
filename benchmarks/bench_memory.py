"""The memory and disk estimate of ``simcore.budget`` against measured peaks.

For each case (a scenario shaped so that one term of the estimate dominates: per-TTI records,
packets, channel state, fading trajectories) one fresh process imports everything, runs a tiny
warm-up (the default cell for 10 ms), notes its resident set (ru_maxrss), runs the case and writes its run folder, and reports
the growth of the peak resident set and the bytes written. The estimate leaves out the baseline
(imports), so the comparable figure is the estimate minus ``BASELINE_BYTES`` against the growth.
A ratio (measured / estimated) at or below 1 means the estimate is on the safe side.

    python benchmarks/bench_memory.py
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CHILD = r"""
import json, resource, sys, tempfile, pathlib
from simcore.outputs import staging_folder
from simcore.run import save_run, simulate
from simcore.scenario import Scenario, parse_scenario
data = json.loads(sys.argv[1])
with tempfile.TemporaryDirectory() as d:
    save_run(simulate(Scenario().with_overrides(duration_s=0.01)), pathlib.Path(d) / "w")  # imports, caches
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    out = pathlib.Path(d) / "r"
    res = simulate(parse_scenario(data), spool_dir=staging_folder(out))  # as oransim run: tables spooled
    out = save_run(res, out)
    disk = sum(f.stat().st_size for f in out.iterdir())
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"growth": peak - rss0, "disk": disk, "packets": res.counts["generated_packets"]}))
"""


def case(name: str, **top) -> tuple[str, dict]:
    from simcore.scenario import Scenario

    data = Scenario().model_dump(mode="json")
    for key, value in top.items():
        node, *path = key.split(".")
        target = data
        for part in [node, *path][:-1]:
            target = target[int(part)] if part.isdigit() else target[part]
        last = [node, *path][-1]
        target[int(last) if last.isdigit() else last] = value
    return name, data


CASES = [
    case("per-TTI records (300 UEs, 20 s)", duration_s=20.0, **{"slices.0.ues": 100, "slices.1.ues": 100,
                                                                 "slices.2.ues": 100}),
    case("packets (urllc 20k pps x 10 UEs, 10 s)", duration_s=10.0, **{"slices.1.traffic.rate_pps": 20000.0,
                                                                       "record.tti": False}),
    case("channel (2000 UEs, 3 RUs x 100 PRBs)", duration_s=0.05, **{
        "cell.prbs_per_ru": 100, "cell.rus": [{"x_m": 0.0}, {"x_m": 500.0}, {"x_m": 1000.0}],
        "slices.0.ues": 222, "slices.1.ues": 222, "slices.2.ues": 222}),
    case("fading trajectories (3 RUs x 275 PRBs, decisions every 2000 TTIs, full load)", duration_s=4.0, **{
        "cell.prbs_per_ru": 275, "cell.rus": [{"x_m": 0.0}, {"x_m": 500.0}, {"x_m": 1000.0}],
        "scheduling.interval_tti": 2000, "record.tti": False, "slices.0.traffic.rate_mbps": 100.0}),
]


def main() -> None:
    from simcore.budget import BASELINE_BYTES, estimate, gib
    from simcore.scenario import parse_scenario

    print(f"{'case':<68} {'estimated':>10} {'measured':>10} {'ratio':>6} {'disk est':>9} {'disk':>9}")
    for name, data in CASES:
        est = estimate(parse_scenario(data))
        res = subprocess.run([sys.executable, "-c", CHILD, json.dumps(data)], capture_output=True, text=True,
                             cwd=ROOT, check=True)
        got = json.loads(res.stdout.strip().splitlines()[-1])
        run_bytes = est.memory_bytes - BASELINE_BYTES
        print(f"{name:<68} {gib(run_bytes):>10} {gib(got['growth']):>10} {got['growth'] / run_bytes:>6.2f} "
              f"{gib(est.disk_bytes):>9} {gib(got['disk']):>9}")


if __name__ == "__main__":
    main()
