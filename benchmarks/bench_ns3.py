"""Wall time per TTI: built-in PHY vs ns3-shm vs ns-3 running the same LTE cell on its own.

The paper cell (1 RU, 30 PRBs, numerology 0: 1 ms TTIs, PF deciding every 10 TTIs) with 3 x N UEs:

- builtin:   the engine with the numpy PHY (wall time of the run / TTIs);
- ns3-shm:   the engine with the PHY delegated to the ns-3 server over shared memory; start-up
             (ns-3 set-up, random access of every UE) is shown apart from the per-TTI cost;
- LTE-only:  the server's own network (the same eNBs, UEs, channel) run by ns-3 alone with its
             round-robin scheduler granting every PRB to full-buffer UEs, no engine and no shared
             memory (``oransim_phy_server CONFIG --lte-only MS``): the cost of the LTE model itself.

ns3-shm runs one ns-3 subframe per engine TTI (the grants are handed to the eNB PHY between two
subframes), so its cost per TTI is compared with LTE-only's cost per subframe.

``--ref-server FILE`` also times ns3-shm with another version of the server source (e.g. the
previous one, from ``git show REV:ns3_bridge/server/oransim_phy_server.cc``) on the same runs,
alternated with this one, and prints the ratio of their per-TTI times (a ratio within one run: the
machine's load moves both alike).

``--profile FILE`` applies a calibration profile (``oransim calibrate --profile``; e.g.
``scenarios/calibration/ns3_lte.yaml``): its ``scenario`` part to every run, its ``builtin`` part
to the built-in runs, so the built-in column is the PHY as calibrated against ns-3 (the last column,
ns3-shm / builtin, is then calibrate's speed ratio per TTI, start-up left out), and the ideal built-in
PHY (no profile) is timed alongside: the profile's cost per TTI against it.

    python benchmarks/bench_ns3.py [--sizes 4,10,30] [--duration 1.0] [--ref-server OLD.cc] [--profile FILE]

``--scenarios quick,paper_default,multi_ru`` (names under ``scenarios/`` or YAML files) instead times
both PHYs on each of those scenarios as they are (their seed, policy and duration unless
``--duration`` is given), the built-in one with the profile's ``builtin`` part: the engine's set-up,
ns-3's start-up (set-up and random access, shown apart) and the TTIs. Runs alternate builtin,
ns3-shm, builtin, ... ``--repeat`` times and the fastest of each is kept (the machine's load only
ever slows a run down). Printed per scenario: ms per TTI of each PHY and their ratio, and the
whole-run ratio (set-up and start-up included: what ``oransim calibrate`` compares). With a profile,
the built-in PHY is also timed with only the profile's ``scenario`` part (its CSI reports, no
link-to-system model) and ideal: the ratios a free link-to-system step would leave.

    python benchmarks/bench_ns3.py --scenarios quick,paper_default,multi_ru \
        --profile scenarios/calibration/ns3_lte.yaml [--repeat 3] [--duration S]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
import time
from pathlib import Path

from bench_engine import machine_reference
from cells import paper_cell
from ns3_bridge.build import server_binary
from ns3_bridge.shm import Ns3ShmPhy, segment_layout, server_config
from simcore.engine import Engine
from simcore.phy import BuiltinPhy
from simcore.plugins import make_policy
from oransim.calibrate import apply_profile
from simcore.scenario import Scenario, load_scenario, parse_scenario
from simcore.yamlio import load_yaml_text, read_text_file


class TimedShm(Ns3ShmPhy):
    def __init__(self, source: Path | None = None):
        super().__init__()
        self.server_source = source

    def open(self, *args, **kw):
        t0, c0 = time.perf_counter(), time.process_time()
        super().open(*args, **kw)
        self.open_s = time.perf_counter() - t0
        self.open_cpu_s = time.process_time() - c0
        self.server_cpu0 = server_cpu_s(self.proc.pid)

    def close(self):
        self.server_cpu_s = server_cpu_s(self.proc.pid) - self.server_cpu0  # the server's CPU over the TTIs
        t0 = time.perf_counter()
        super().close()
        self.close_s = time.perf_counter() - t0


def server_cpu_s(pid: int) -> float:
    """CPU seconds (user + system) the process ``pid`` has used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def lte_only(scn: Scenario, subframes: int) -> dict:
    eng = Engine(scn, make_policy("pf"), BuiltinPhy())  # only for the drop: the same geometry and serving RUs
    lay = segment_layout(eng.n_ues, eng.n_rus, eng.n_prbs)
    with tempfile.TemporaryDirectory() as tmp:
        cfg = Path(tmp) / "server.cfg"
        cfg.write_text(server_config(scn, eng.geo, eng.serving_ru, "unused", lay))
        out = subprocess.run([str(server_binary()), str(cfg), "--lte-only", str(subframes)],
                             capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def scenario_file(name: str) -> Path:
    path = Path(name)
    if path.suffix in (".yaml", ".yml"):
        return path
    return Path(__file__).resolve().parent.parent / "scenarios" / f"{name}.yaml"


def timed_run(scn: Scenario, phy) -> dict:
    """Wall seconds of one run: engine set-up, ns-3 start-up (open/close, 0 for the built-in PHY), TTIs."""
    t0 = time.perf_counter()
    eng = Engine(scn, make_policy(scn.policy.name, scn.policy.params), phy)
    setup = time.perf_counter() - t0
    c0 = time.process_time()
    r = eng.run()
    cpu = time.process_time() - c0 - getattr(phy, "open_cpu_s", 0.0) + getattr(phy, "server_cpu_s", 0.0)
    start = getattr(phy, "open_s", 0.0) + getattr(phy, "close_s", 0.0)
    return {"setup_s": setup, "start_s": start, "tti_ms": (r.wall_s - start) / scn.n_tti * 1e3,
            "cpu_ms": cpu / scn.n_tti * 1e3, "whole_s": setup + r.wall_s}


def scenarios_mode(args, profile: dict) -> None:
    rows = []
    for name in args.scenarios.split(","):
        base = load_scenario(scenario_file(name))
        if args.duration is not None:
            base = parse_scenario({**base.model_dump(mode="python"), "duration_s": args.duration})
        fast = apply_profile(base, profile, "builtin")
        ref = apply_profile(base, profile, "ns3-shm")
        timed_run(parse_scenario({**fast.model_dump(mode="python"), "duration_s": 0.01}), BuiltinPhy())  # warm caches
        # the floors: the built-in PHY with the profile's CSI reports but no link-to-system model, and ideal
        csi = apply_profile(base, {"scenario": profile.get("scenario", {})}, "builtin")
        runs = {"builtin": [], "ns3-shm": [], "csi_only": [], "ideal": []}
        for _ in range(args.repeat):
            runs["builtin"].append(timed_run(fast, BuiltinPhy()))
            runs["ns3-shm"].append(timed_run(ref, TimedShm()))
            if profile:
                runs["csi_only"].append(timed_run(csi, BuiltinPhy()))
                runs["ideal"].append(timed_run(base, BuiltinPhy()))
        best = {phy: {key: min(r[key] for r in rs) for key in ("setup_s", "start_s", "tti_ms", "cpu_ms", "whole_s")}
                for phy, rs in runs.items() if rs}
        rows.append((base.name, fast.n_tti, best))
    print(f"both PHYs on each scenario, same seed and duration, fastest of {args.repeat} alternated runs"
          + (f"; built-in side with profile {args.profile}" if args.profile else ""))
    print(f"{'scenario':>14} {'TTIs':>6} {'builtin ms/TTI':>15} {'ns3-shm ms/TTI':>15} {'per-TTI ratio':>14} "
          f"{'builtin setup s':>16} {'ns-3 start s':>13} {'builtin run s':>14} {'ns3-shm run s':>14} {'whole-run ratio':>16}")
    for name, n_tti, best in rows:
        b, n = best["builtin"], best["ns3-shm"]
        print(f"{name:>14} {n_tti:>6} {b['tti_ms']:>15.3f} {n['tti_ms']:>15.3f} {n['tti_ms'] / b['tti_ms']:>14.1f} "
              f"{b['setup_s']:>16.2f} {n['start_s']:>13.2f} {b['whole_s']:>14.2f} {n['whole_s']:>14.2f} "
              f"{n['whole_s'] / b['whole_s']:>16.1f}")
    print("per-TTI: run wall less ns-3's start-up, over the TTIs; whole run: engine set-up + run, start-up included")
    print(f"\nCPU time per TTI over the TTIs (start-up left out; ns3-shm: the engine's process and the server's, "
          f"whose waits spin briefly before they sleep), less moved by the machine's load than wall time:")
    print(f"{'scenario':>14} {'builtin CPU ms/TTI':>19} {'ns3-shm CPU ms/TTI':>19} {'ratio':>7}" +
          (f" {'CSI-only':>9} {'ideal':>7} {'ns3-shm / CSI-only':>19} {'ns3-shm / ideal':>16}" if profile else ""))
    for name, _, best in rows:
        b, n = best["builtin"]["cpu_ms"], best["ns3-shm"]["cpu_ms"]
        line = f"{name:>14} {b:>19.3f} {n:>19.3f} {n / b:>7.1f}"
        if profile:
            c, i = best["csi_only"]["cpu_ms"], best["ideal"]["cpu_ms"]
            line += f" {c:>9.3f} {i:>7.3f} {n / c:>19.1f} {n / i:>16.1f}"
        print(line)
    if profile:
        print("\nthe built-in PHY in the same runs without the profile's link-to-system part (its CSI reports "
              "only), and ideal (no profile): the ratio each would give")
        print(f"{'scenario':>14} {'CSI-only ms/TTI':>16} {'ideal ms/TTI':>13} {'profile / CSI-only':>19} "
              f"{'ns3-shm / CSI-only':>19} {'ns3-shm / ideal':>16}")
        for name, _, best in rows:
            b, n, c, i = (best[k]["tti_ms"] for k in ("builtin", "ns3-shm", "csi_only", "ideal"))
            print(f"{name:>14} {c:>16.3f} {i:>13.3f} {b / c:>19.2f} {n / c:>19.1f} {n / i:>16.1f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="4,10,30", help="UEs per slice")
    ap.add_argument("--duration", type=float, default=None,
                    help="simulated seconds per run (default 1; with --scenarios each scenario's own)")
    ap.add_argument("--ref-server", type=Path, default=None, help="another server source to time alongside")
    ap.add_argument("--profile", type=Path, default=None, help="calibration profile for the runs (see above)")
    ap.add_argument("--scenarios", default=None, help="time both PHYs on these scenarios instead (see above)")
    ap.add_argument("--repeat", type=int, default=1, help="with --scenarios: alternated runs of each PHY, the fastest kept")
    args = ap.parse_args()
    profile = load_yaml_text(read_text_file(args.profile)) if args.profile else {}
    server_binary()  # compile outside the timings
    if args.scenarios:
        # the machine's speed at the start and the end (bench_engine's reference: it varies with the load)
        line = "machine reference{}: {:.2f} us per small numpy call, {:.1f} ns per Python loop step"
        print(line.format("", *machine_reference()))
        scenarios_mode(args, profile)
        print(line.format(" again", *machine_reference()))
        return
    args.duration = 1.0 if args.duration is None else args.duration
    if args.ref_server:
        server_binary(source=args.ref_server)

    def shm_ms(scn, source=None):
        phy = TimedShm(source)
        r = Engine(scn, make_policy("pf"), phy).run()
        return (r.wall_s - phy.open_s - phy.close_s) / scn.n_tti * 1e3, phy

    rows = []
    for n in (int(x) for x in args.sizes.split(",")):
        base = paper_cell(n, duration_s=args.duration)
        scn = apply_profile(base, profile, "ns3-shm")
        fast = apply_profile(base, profile, "builtin")
        r_b = Engine(fast, make_policy("pf"), BuiltinPhy()).run()
        r_i = Engine(base, make_policy("pf"), BuiltinPhy()).run() if profile else r_b  # the ideal PHY alongside
        ms, phy = shm_ms(scn)
        ref_ms = None
        if args.ref_server:  # this, reference, this, reference: alternated, the mean of two of each
            ref_a, ref_phy = shm_ms(scn, args.ref_server)
            ms_b, _ = shm_ms(scn)
            ref_b, _ = shm_ms(scn, args.ref_server)
            ms, ref_ms = (ms + ms_b) / 2, (ref_a + ref_b) / 2
            ref_sf = (ref_phy.counters["ns3_subframes"] - ref_phy.counters["warmup_subframes"]) / scn.n_tti
        lte = lte_only(scn, scn.n_tti)
        rows.append({"ref_ms": ref_ms, "ref_sf": ref_sf if ref_ms else None,
            "ues": 3 * n, "tti": scn.n_tti,
            "builtin_ms": r_b.wall_s / scn.n_tti * 1e3, "ideal_ms": r_i.wall_s / scn.n_tti * 1e3,
            "shm_ms": ms, "shm_start_s": phy.open_s,
            "subframes_per_tti": (phy.counters["ns3_subframes"] - phy.counters["warmup_subframes"]) / scn.n_tti,
            "lte_ms": lte["run_s"] / lte["subframes"] * 1e3, "lte_setup_s": lte["setup_s"],
        })
    print(f"paper cell (30 PRBs, 1 ms TTI), PF every 10 TTIs, {args.duration:g} s simulated per run"
          + (f", profile {args.profile}" if args.profile else ""))
    print(f"{'UEs':>4} {'builtin ms/TTI':>15} {'ns3-shm ms/TTI':>15} {'ns3-shm start s':>16} "
          f"{'subframes/TTI':>14} {'LTE-only ms/sf':>15} {'LTE-only setup s':>17} {'shm / LTE-only':>15} "
          f"{'shm / builtin':>14}")
    for r in rows:
        print(f"{r['ues']:>4} {r['builtin_ms']:>15.3f} {r['shm_ms']:>15.3f} {r['shm_start_s']:>16.2f} "
              f"{r['subframes_per_tti']:>14.2f} {r['lte_ms']:>15.3f} {r['lte_setup_s']:>17.2f} "
              f"{r['shm_ms'] / r['lte_ms']:>15.2f} {r['shm_ms'] / r['builtin_ms']:>14.1f}")
    print("ns3-shm start: set-up and random access of every UE (in ns-3 time: until all are connected, + 40 ms)")
    if profile:
        print("\nthe built-in PHY without the profile (ideal CSI and link) in the same run:")
        print(f"{'UEs':>4} {'ideal ms/TTI':>13} {'profile ms/TTI':>15} {'profile / ideal':>16} {'ns3-shm / ideal':>16}")
        for r in rows:
            print(f"{r['ues']:>4} {r['ideal_ms']:>13.3f} {r['builtin_ms']:>15.3f} {r['builtin_ms'] / r['ideal_ms']:>16.2f} "
                  f"{r['shm_ms'] / r['ideal_ms']:>16.1f}")
    if args.ref_server:
        print(f"\nreference server {args.ref_server} (runs alternated with this one; mean of two each):")
        print(f"{'UEs':>4} {'ref ms/TTI':>11} {'ref subframes/TTI':>18} {'this ms/TTI':>12} {'ref / this':>11}")
        for r in rows:
            print(f"{r['ues']:>4} {r['ref_ms']:>11.3f} {r['ref_sf']:>18.2f} {r['shm_ms']:>12.3f} {r['ref_ms'] / r['shm_ms']:>11.2f}")


if __name__ == "__main__":
    main()
