"""Diffusion-QL against PF inside the simulator: paired DES runs over seeds, KPIs with 95 % intervals.

Each seed runs the same scenario (same UE drop, channel and traffic, since they follow the seed)
once per policy, as ``oransim run SCENARIO --policy P --seed S`` does, through ``oransim sweep``'s
machinery (the sweep folder resumes; its job keys hash the checkpoint's content and the code, and the default
folder is named after the checkpoint's content and the runs' settings). Per run, from the run folder (``analysis.kpis``):

- ``w_goodput_mbps``: delivered weighted throughput, sum over slices of the slice weight times the
  bits of delivered packets / simulated time;
- ``w_tput_mbps``: the same over the bits served over the air (the sweep's ``run_wtput_mbps``);
- per slice (by default URLLC): delay QoS (% of ended packets delivered within the slice's
  maximum delay), drop %, p95 delay of delivered packets, rate QoS (% of UE-intervals at the
  minimum rate or with the buffer emptied).

Printed: each policy's mean and 95 % Student-t interval over the seeds, and the paired difference
(learned policy minus PF, seed by seed) with its 95 % interval; "beats" means that interval lies
above 0 (below 0 for drops and delays).

Then the slice's delay QoS per packet, all seeds pooled: packets that ended (delivered or dropped),
the share delivered within the deadline with a 95 % interval that treats the seeds as clusters (the
ratio estimator's t interval: packets of one run are not independent), and the delivered packets'
delay split into its parts (``analysis``'s packets table: CU and DU processing, waiting in the
buffer from the DU to the first transmission, which includes the wait for the next TTI boundary,
the transmission TTIs, the fronthaul latency), min / median / max over the delivered packets, next
to the floor no packet can beat: one TTI plus the fronthaul latency. When that floor exceeds the
deadline no policy can meet it and delay QoS is 0 % for every policy (paper_default at numerology
0: 1 ms TTIs + 50 us against 1 ms).

    python benchmarks/dql_in_simulator.py                      # paper_default, seeds 1-10, shipped checkpoint
    python benchmarks/dql_in_simulator.py --first-seed 6001    # seeds 6001-6010: drops no training or
                                                               # checkpoint choice used (those: 1-40, >= 2^32)
    python benchmarks/dql_in_simulator.py --seeds 3 --duration 1 --checkpoint models/other.pt
    python benchmarks/dql_in_simulator.py --set cell.numerology=1    # any scenario field, as a sweep's set
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import typer
import yaml

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

#: (column, label, sign): sign +1 when more is better, -1 when less is better.
KPIS = (("w_goodput_mbps", "delivered weighted throughput (Mbit/s)", +1),
        ("w_tput_mbps", "weighted throughput over the air (Mbit/s)", +1),
        ("delay_qos_pct", "{slice} delay QoS (%)", +1),
        ("drop_pct", "{slice} packets dropped (%)", -1),
        ("delay_p95_ms", "{slice} p95 delay (ms)", -1),
        ("rate_qos_pct", "{slice} rate QoS (%)", +1))


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:10]


def _value(text: str):
    return yaml.safe_load(text)


def run_sweep(scenario: Path, policies: list[str], seeds: list[int], duration: float | None,
              sets: dict, out: Path, workers: int) -> Path:
    """Run (or resume) the sweep of every seed x policy; returns the sweep folder."""
    import oransim.cli  # noqa: F401  (loads the command line's modules in their order)
    from oransim.sweep_cli import execute

    spec = {"name": "dql-vs-pf", "scenario": str(scenario.resolve()), "seeds": seeds, "policies": policies,
            "run": {"record_packets": True, **({"duration_s": duration} if duration else {})}}
    if sets:
        spec["set"] = sets
    with tempfile.TemporaryDirectory() as tmp:
        sweep_file = Path(tmp) / "dql_vs_pf.yaml"
        sweep_file.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
        try:
            folder, summary = execute(sweep_file, out, workers, None, quiet=True)
        except typer.Exit as exc:  # the one-line error is already printed; no traceback after it
            sys.exit(exc.exit_code)
    if summary["failed"]:
        sys.exit(f"{summary['failed']} run(s) failed; see {folder}/jobs/*.json")
    return folder


def run_kpis(folder: Path, slice_name: str) -> pd.DataFrame:
    """One row per (policy, seed) of the sweep folder's runs: the KPIs of the module docstring."""
    from analysis.kpis import delay_percentiles, load_run, slice_kpis

    table = pd.read_parquet(folder / "results.parquet")
    rows = []
    for r in table.itertuples():
        run = load_run(folder / r.run_dir)
        k = slice_kpis(run)
        weight = {s["name"]: float(s["weight"]) for s in run.manifest["scenario"]["slices"]}
        if slice_name not in k.index:
            sys.exit(f"--slice: the scenario has no slice '{slice_name}' (slices: {', '.join(k.index)})")
        rows.append({"policy": r.policy, "seed": int(r.seed),
                     "w_goodput_mbps": float(sum(weight[s] * k.loc[s, "goodput_mbps"] for s in k.index)),
                     "w_tput_mbps": float(r.run_wtput_mbps),
                     "delay_qos_pct": float(k.loc[slice_name, "delay_qos_pct"]),
                     "drop_pct": float(k.loc[slice_name, "drop_pct"]),
                     "delay_p95_ms": float(delay_percentiles(run, (95.0,)).loc[slice_name, "p95"]),
                     "rate_qos_pct": float(k.loc[slice_name, "rate_qos_pct"])})
    return pd.DataFrame(rows)


#: Parts of a delivered packet's delay (columns of the packets table, ms), in the order they happen.
DELAY_PARTS = ("cu_ms", "du_ms", "queue_ms", "tx_ms", "fh_ms", "delay_ms")


def run_packets(folder: Path, slice_name: str) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """Per (policy, seed): the slice's ended and on-time packet counts; the slice's delivered packets'
    delay parts (one row per packet, with the policy); and the deadline and delay floor (ms)."""
    from analysis.kpis import load_run

    table = pd.read_parquet(folder / "results.parquet")
    counts, parts, limits = [], [], {}
    for r in table.itertuples():
        run = load_run(folder / r.run_dir)
        scn = run.manifest["scenario"]
        deadline = next(float(sl["max_delay_ms"]) for sl in scn["slices"] if sl["name"] == slice_name)
        floor = float(run.manifest["tti_s"]) * 1e3 + float(scn["fronthaul"]["latency_us"]) * 1e-3
        limits = {"deadline_ms": deadline, "floor_ms": floor}
        pk = run.packets[run.packets["slice"] == slice_name]
        delivered = pk[pk["status"] == "delivered"]
        counts.append({"policy": r.policy, "seed": int(r.seed),
                       "ended": int(pk["status"].isin(["delivered", "dropped"]).sum()),
                       "delivered": len(delivered), "on_time": int((delivered["delay_ms"] <= deadline).sum())})
        parts.append(delivered[list(DELAY_PARTS)].assign(policy=r.policy))
    return pd.DataFrame(counts), pd.concat(parts, ignore_index=True), limits


def pooled_share(hits, totals) -> tuple[float, float, float]:
    """Share sum(hits) / sum(totals) over clusters (seeds) with its 95 % interval: the ratio
    estimator's variance from the clusters' residuals hits - share * totals, Student t with
    clusters - 1 degrees of freedom. Percent."""
    from scipy import stats

    h, n = np.asarray(hits, dtype=float), np.asarray(totals, dtype=float)
    share = h.sum() / max(n.sum(), 1.0)
    k = h.size
    if k < 2:
        return 100 * share, 100 * share, 100 * share
    resid = h - share * n
    se = np.sqrt(k / (k - 1) * (resid ** 2).sum()) / n.sum()
    half = stats.t.ppf(0.975, k - 1) * se
    return 100 * share, 100 * max(share - half, 0.0), 100 * min(share + half, 1.0)


def per_packet(counts: pd.DataFrame, parts: pd.DataFrame, limits: dict, slice_name: str) -> str:
    """The text of the per-packet view (module docstring)."""
    lines = [f"{slice_name} delay QoS as above = per run, packets delivered within {limits['deadline_ms']:g} ms / packets "
             f"ended (delivered or dropped; still queued at the end left out), drops and late deliveries both misses.",
             f"Per packet, seeds pooled (95 % interval with the seeds as clusters); delay floor = one TTI + fronthaul = "
             f"{limits['floor_ms']:.3f} ms against the {limits['deadline_ms']:g} ms deadline"
             + (": no packet can meet it" if limits["floor_ms"] > limits["deadline_ms"] else "") + ":"]
    rows = []
    for policy, c in counts.groupby("policy", sort=False):
        share, lo, hi = pooled_share(c["on_time"], c["ended"])
        of_delivered = 100 * c["on_time"].sum() / max(c["delivered"].sum(), 1)
        rows.append({"policy": policy, "ended": int(c["ended"].sum()), "delivered": int(c["delivered"].sum()),
                     "on time": int(c["on_time"].sum()), "on time / ended (%)": f"{share:.2f} [{lo:.2f}, {hi:.2f}]",
                     "on time / delivered (%)": f"{of_delivered:.2f}"})
    lines.append(pd.DataFrame(rows).set_index("policy").to_string())
    lines.append(f"Delay of the delivered {slice_name} packets by part (ms; min / median / max over packets):")
    q = parts.groupby("policy", sort=False)[list(DELAY_PARTS)].agg(["min", "median", "max"])
    table = pd.DataFrame({part: [f"{q.loc[p, (part, 'min')]:.4f} / {q.loc[p, (part, 'median')]:.4f} / "
                                 f"{q.loc[p, (part, 'max')]:.4f}" for p in q.index] for part in DELAY_PARTS},
                         index=q.index)
    lines.append(table.T.to_string())
    return "\n".join(lines)


def summary(kpis: pd.DataFrame, learned: str, reference: str, slice_name: str) -> pd.DataFrame:
    """Per KPI: each policy's mean [95 % CI], the paired difference learned - reference [95 % CI], verdict."""
    from analysis.sweep_plots import t_interval

    a = kpis[kpis["policy"] == learned].set_index("seed").sort_index()
    b = kpis[kpis["policy"] == reference].set_index("seed").sort_index()
    seeds = a.index.intersection(b.index)
    out = []
    for col, label, sign in KPIS:
        row = {"kpi": label.format(slice=slice_name)}
        for name, df in ((learned, a), (reference, b)):
            lo, hi = t_interval(df.loc[seeds, col])
            row[name] = f"{df.loc[seeds, col].mean():.4g} [{lo:.4g}, {hi:.4g}]"
        d = (a.loc[seeds, col] - b.loc[seeds, col]).to_numpy()
        lo, hi = t_interval(d)
        row["difference"] = f"{d.mean():+.4g} [{lo:+.4g}, {hi:+.4g}]"
        gain = (lo, hi) if sign > 0 else (-hi, -lo)  # interval of the improvement
        if np.all(d == 0):
            row["verdict"] = "equal on every seed"
        elif gain[0] > 0:
            row["verdict"] = "better"
        elif gain[1] < 0:
            row["verdict"] = "worse"
        else:
            row["verdict"] = "no significant difference"
        out.append(row)
    return pd.DataFrame(out).set_index("kpi")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenario", type=Path, default=ROOT / "scenarios" / "paper_default.yaml")
    ap.add_argument("--checkpoint", type=Path, default=ROOT / "models" / "diffusion_ql_paper_default.pt")
    ap.add_argument("--reference", default="pf", help="the policy compared against (default pf)")
    ap.add_argument("--seeds", type=int, default=10, help="number of seeds (default 10)")
    ap.add_argument("--first-seed", type=int, default=1,
                    help="first seed; the runs use FIRST ... FIRST + SEEDS - 1 (default 1)")
    ap.add_argument("--duration", type=float, default=None, help="simulated seconds (default: the scenario's)")
    ap.add_argument("--slice", default="urllc", help="slice of the per-slice rows (default urllc)")
    ap.add_argument("--set", action="append", default=[], metavar="PATH=VALUE",
                    help="scenario field for every run, as a sweep's set (repeatable)")
    ap.add_argument("--workers", type=int, default=0, help="0: runs one after the other in this process (default); "
                                                            "N: a local Ray instance with N CPUs")
    ap.add_argument("--out", type=Path, default=None,
                    help="sweep folder (default sweeps/dql-vs-REFERENCE-CHECKPOINTHASH-RUNSHASH; resumed when it exists)")
    args = ap.parse_args()
    if args.seeds < 1:
        sys.exit(f"--seeds: must be at least 1 (got {args.seeds})")
    if args.first_seed < 0:
        sys.exit(f"--first-seed: must be at least 0 (got {args.first_seed})")
    if not args.checkpoint.is_file():
        sys.exit(f"--checkpoint: {args.checkpoint}: no such file")
    sets = {}
    for item in args.set:
        path, sep, value = item.partition("=")
        if not sep:
            sys.exit(f"--set: '{item}' is not PATH=VALUE")
        sets[path] = _value(value)
    learned = f"diffusion_ql:{args.checkpoint.resolve()}"
    # the sweep's job keys hash the policy string, not the file: the folder is named after the
    # checkpoint's content and everything else that defines the runs
    seeds = list(range(args.first_seed, args.first_seed + args.seeds))
    what = f"{args.scenario.resolve()} {args.reference} {seeds} {args.duration} {sorted(sets.items())}"
    out = args.out or ROOT / "sweeps" / (f"dql-vs-{args.reference}-{_digest(args.checkpoint)}-"
                                         f"{hashlib.sha256(what.encode()).hexdigest()[:6]}")
    folder = run_sweep(args.scenario, [args.reference, learned], seeds,
                       args.duration, sets, out, args.workers)
    kpis = run_kpis(folder, args.slice)
    label = "diffusion_ql"
    kpis["policy"] = kpis["policy"].where(kpis["policy"] == args.reference, label)
    pd.set_option("display.width", 200)
    pd.set_option("display.max_colwidth", 40)
    title = f"{args.scenario.name}" + "".join(f", {k}={v}" for k, v in sets.items())
    print(f"{title}: diffusion_ql ({args.checkpoint.name}, sha256 {_digest(args.checkpoint)}) vs {args.reference}, "
          f"seeds {seeds[0]}-{seeds[-1]}, runs in {folder}")
    print("mean [95 % t interval over seeds]; difference = diffusion_ql - "
          f"{args.reference}, paired by seed")
    print(summary(kpis, label, args.reference, args.slice).to_string())
    counts, parts, limits = run_packets(folder, args.slice)
    for df in (counts, parts):
        df["policy"] = df["policy"].where(df["policy"] == args.reference, label)
    print(per_packet(counts, parts, limits, args.slice))


if __name__ == "__main__":
    main()
