"""SS-VAE label efficiency: held-out agreement with the optimum versus the number of labelled states.

Labels cost one MILP solve each (about 0.5-2 labelled states per second on the shared 2-core
machine); Diffusion-QL needs none. This script trains the SS-VAE on the first L states of a
labelled dataset for each L of ``--sizes``, once with the labelled states only and once with an
unlabelled set as well (``--arms``), all with the same config and step budget, and scores each on
the same held-out paper-cell states (seeds ``scenario.seed + i``, never used by a dataset, whose
run seeds are >= 2^32): ratio to the optimum, QoS %, MAE, R^2, cosine, BAEP %.

The held-out states and their optimum are solved once and cached (``--cache``); every finished
training appends a row to ``OUT.csv`` (so an interrupted sweep keeps what it did, and ``--resume``
skips those rows), and ``OUT.md`` / ``OUT.png`` are redrawn from the CSV after each row.

    python benchmarks/ssvae_label_efficiency.py --labelled data/lab.parquet --unlabelled data/unl.parquet \\
        --sizes 100,300,1000,3000 --steps 2000 --held-out 200 --out docs/img/ssvae_label_efficiency
"""

from __future__ import annotations

import argparse
import csv
import pickle
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

METRICS = ("throughput_ratio", "qos_pct", "mae", "r2", "cosine", "baep_pct")
ARMS = {"labelled": dict(unlabelled=False, contrastive=True),
        "labelled+unlabelled": dict(unlabelled=True, contrastive=True),
        "no-contrastive": dict(unlabelled=True, contrastive=False)}


def held_out(scenario, n: int, objective: str, cache: Path):
    """The HeldOut set of the first ``n`` evaluation seeds, from ``cache`` when it matches."""
    from policies.learned.checkpoint import scenario_hash
    from policies.learned.train import HeldOut

    key = (scenario_hash(scenario), scenario.seed, n, objective)
    if cache.exists():
        saved = pickle.loads(cache.read_bytes())
        if saved["key"] == key:
            return saved["held_out"]
    t0 = time.perf_counter()
    ho = HeldOut.sample(scenario, n, objective,
                        progress=lambda i, k: print(f"\rheld-out optimum {i}/{k}", end="", flush=True))
    print(f"\nheld-out: {n} states solved in {time.perf_counter() - t0:.0f} s")
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_name(cache.name + ".tmp")
    tmp.write_bytes(pickle.dumps({"key": key, "held_out": ho}))
    tmp.replace(cache)
    return ho


def train_one(scenario, scenario_path, ho, cfg, seed: int, threads: int) -> tuple[dict, dict, float]:
    import torch

    from policies.learned import ssvae
    from policies.learned.train import RunLog, TrainContext

    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    with tempfile.TemporaryDirectory() as tmp:
        ctx = TrainContext("ssvae", scenario, str(scenario_path), Path(tmp), seed, torch.device("cpu"), threads,
                           False, None, len(ho.states), log=RunLog(Path(tmp), tensorboard=False))
        ctx._held_out = ho
        t0 = time.perf_counter()
        result = ssvae.train(ctx, cfg)
        wall = time.perf_counter() - t0
        ctx.log.close()
    return result.metrics, result.extra, wall


def compare(ho, policies: str, add_row: str, out: Path) -> None:
    """Score each policy on the held-out states (the metrics of ``oransim evaluate``), one thread."""
    import torch

    from policies.learned.checkpoint import load_checkpoint
    from simcore.plugins import make_policy

    torch.set_num_threads(1)
    print(f"{len(ho.states)} held-out states (seeds scenario.seed + i), objective served")
    print("| policy | w-tput / opt | QoS % | MAE | R² | cosine | BAEP % | decision ms |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    scores = {}
    for spec in policies.split(","):
        name, _, ckpt = spec.partition(":")
        pol = make_policy(name, {"checkpoint": ckpt} if ckpt else {})
        m = scores[spec] = ho.evaluate(pol.decide)
        print(f"| {name} | {m['throughput_ratio']:.4f} | {m['qos_pct']:.1f} | {m['mae']:.4f} | {m['r2']:.3f} | "
              f"{m['cosine']:.3f} | {m['baep_pct']:.2f} | {m['decide_ms']:.2f} |", flush=True)
    if add_row:
        arm, _, ckpt = add_row.partition(":")
        blob = load_checkpoint(ckpt, "ssvae")
        m = scores.get(f"ssvae:{ckpt}") or ho.evaluate(make_policy("ssvae", {"checkpoint": ckpt}).decide)
        tr = blob["training"]
        cfg = blob["config"]
        row = [arm, tr["labelled_states"], tr["unlabelled_states"], tr["steps"], cfg["batch_labelled"],
               *(m[k] for k in METRICS),
               m["decide_ms"], tr["wall_s"], blob["seed"]]
        with out.with_suffix(".csv").open("a", newline="") as f:
            csv.writer(f).writerow(row)
        draw(list(csv.DictReader(out.with_suffix(".csv").open())), out)


def draw(rows: list[dict], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lines = ["| arm | labelled | unlabelled | steps x batch | seed | w-tput / opt | QoS % | MAE | R² | cosine | BAEP % "
             "| train s |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in sorted(rows, key=lambda r: (r["arm"], int(r["labelled"]), int(r["seed"]))):
        lines.append(f"| {r['arm']} | {r['labelled']} | {r['unlabelled']} | {r['steps']} x {r['batch']} | {r['seed']} | "
                     f"{float(r['throughput_ratio']):.4f} | {float(r['qos_pct']):.1f} | {float(r['mae']):.4f} | "
                     f"{float(r['r2']):.3f} | {float(r['cosine']):.3f} | {float(r['baep_pct']):.2f} | "
                     f"{float(r['wall_s']):.0f} |")
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    fig, axes = plt.subplots(1, 4, figsize=(13, 3.2))
    for arm in sorted({r["arm"] for r in rows}):
        xs = sorted({int(r["labelled"]) for r in rows if r["arm"] == arm})
        for ax, (key, label) in zip(axes, [("throughput_ratio", "weighted throughput / optimum"),
                                           ("qos_pct", "QoS satisfied %"), ("mae", "MAE"), ("baep_pct", "BAEP %")]):
            vals = [[float(r[key]) for r in rows if r["arm"] == arm and int(r["labelled"]) == x] for x in xs]
            mean = [sum(v) / len(v) for v in vals]
            err = [[m - min(v) for m, v in zip(mean, vals)], [max(v) - m for m, v in zip(mean, vals)]]
            ax.errorbar(xs, mean, yerr=err, marker="o", capsize=3, label=arm)  # mean over seeds, bars: min-max
            ax.set_xscale("log")
            ax.set_xlabel("labelled states")
            ax.set_title(label, fontsize=10)
            ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out.with_suffix(".png"), dpi=110)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenario", default=str(ROOT / "scenarios" / "paper_default.yaml"))
    ap.add_argument("--labelled", default="", help="labelled dataset (oransim dataset --label optimal)")
    ap.add_argument("--unlabelled", default="", help="unlabelled dataset (for the labelled+unlabelled arm)")
    ap.add_argument("--unlabelled-states", type=int, default=0, help="first N unlabelled states (0: all)")
    ap.add_argument("--sizes", default="100,300,1000,3000", help="numbers of labelled states")
    ap.add_argument("--arms", default="labelled,labelled+unlabelled", help=f"of {', '.join(ARMS)}")
    ap.add_argument("--steps", type=int, default=2000, help="gradient steps of every training")
    ap.add_argument("--batch", type=int, default=64, help="labelled and unsupervised states per step")
    ap.add_argument("--held-out", type=int, default=200, help="held-out paper-cell states")
    ap.add_argument("--cache", default=str(ROOT / "runs" / "ssvae_held_out.pkl"))
    ap.add_argument("--out", default=str(ROOT / "docs" / "img" / "ssvae_label_efficiency"))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--resume", action="store_true", help="keep the rows already in OUT.csv")
    ap.add_argument("--held-out-only", action="store_true", help="solve and cache the held-out set, then stop")
    ap.add_argument("--compare", default="", help="policies (NAME or NAME:CHECKPOINT, comma-separated) to score on "
                    "the held-out states, one thread; prints a table, then stops")
    ap.add_argument("--add-row", default="", help="with --compare: ARM:CHECKPOINT, append that SS-VAE checkpoint's "
                    "scores to OUT.csv as a row of ARM (its labelled/unlabelled counts from the checkpoint)")
    ap.add_argument("--merge", default="", help="comma-separated CSVs of earlier sweeps: redraw OUT from them, then stop")
    args = ap.parse_args()
    if args.merge:
        merged = [r for f in args.merge.split(",") for r in csv.DictReader(open(f))]
        out = Path(args.out)
        with out.with_suffix(".csv").open("w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(merged[0]))
            w.writeheader()
            w.writerows(merged)
        draw(merged, out)
        return

    from policies.learned import ssvae
    from policies.learned.train import resolve_config
    from simcore.scenario import load_scenario

    scenario = load_scenario(args.scenario)
    ho = held_out(scenario, args.held_out, "served", Path(args.cache))
    if args.held_out_only:
        return
    if args.compare:
        compare(ho, args.compare, args.add_row, Path(args.out))
        return
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    path = out.with_suffix(".csv")
    rows = list(csv.DictReader(path.open())) if args.resume and path.exists() else []
    done = {(r["arm"], int(r["labelled"])) for r in rows}
    fields = ["arm", "labelled", "unlabelled", "steps", "batch", *METRICS, "decide_ms", "wall_s", "seed"]
    if not rows:
        with path.open("w", newline="") as f:
            csv.writer(f).writerow(fields)
    for n in (int(x) for x in args.sizes.split(",")):
        for arm in args.arms.split(","):
            if (arm, n) in done:
                continue
            spec = ARMS[arm]
            if spec["unlabelled"] and not args.unlabelled:
                sys.exit(f"--arms {arm}: needs --unlabelled")
            cfg = resolve_config(ssvae.Config, None, dict(
                labelled=args.labelled, labelled_states=n, steps=args.steps, contrastive=spec["contrastive"],
                unlabelled=args.unlabelled if spec["unlabelled"] else "",
                unlabelled_states=args.unlabelled_states if spec["unlabelled"] else 0,
                eval_every_steps=args.steps + 1, batch_labelled=args.batch, batch_unlabelled=args.batch))
            metrics, extra, wall = train_one(scenario, args.scenario, ho, cfg, args.seed, args.threads)
            n_unl = extra["unlabelled_states"]
            row = {"arm": arm, "labelled": n, "unlabelled": n_unl, "steps": args.steps, "batch": args.batch,
                   **{k: metrics[k] for k in METRICS}, "decide_ms": metrics.get("decide_ms", float("nan")),
                   "wall_s": round(wall, 1), "seed": args.seed}
            with path.open("a", newline="") as f:
                csv.writer(f).writerow([row[k] for k in fields])
            rows.append({k: str(v) for k, v in row.items()})
            print(f"{arm:>20} L={n:5d}: " + ", ".join(f"{k} {metrics[k]:.4g}" for k in METRICS)
                  + f" ({wall:.0f} s)", flush=True)
            draw(rows, out)


if __name__ == "__main__":
    main()
