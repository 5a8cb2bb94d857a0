"""The paper's Fig. 3a for any set of training runs: reward per episode (running mean) of each run,
read from the run folders' ``scalars.csv`` (``oransim train`` writes them), on one plot.

    python scripts/learning_curves.py --out docs/img/curves.png \
        Diffusion-QL=runs/train/paper_default-diffusion_ql-seed0 DQN=runs/train/paper_default-dqn-seed0

Episodes are those of each run's own schedule (Table I: 100 decisions each). With ``--held-out``
a second panel shows each run's held-out weighted-objective ratio to the optimum (``oransim train``
evaluates every ``eval_every_steps``) against the training's wall time, which also covers phases
without episodes (offline steps on a dataset). A run with neither series is an error naming the folder.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", help="LABEL=RUN_FOLDER")
    ap.add_argument("--out", type=Path, required=True, help="PNG to write")
    ap.add_argument("--window", type=int, default=10, help="episodes of the running mean")
    ap.add_argument("--held-out", action="store_true", help="add the held-out ratio against wall time")
    args = ap.parse_args()

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    fig, axes = plt.subplots(1, 2 if args.held_out else 1, figsize=(11 if args.held_out else 6, 3.5), squeeze=False)
    ax, ax_eval = axes[0][0], (axes[0][1] if args.held_out else None)
    for n, item in enumerate(args.runs):
        label, sep, folder = item.partition("=")
        if not sep:
            sys.exit(f"{item}: expected LABEL=RUN_FOLDER")
        path = Path(folder) / "scalars.csv"
        if not path.exists():
            sys.exit(f"{path}: no such file")
        df = pd.read_csv(path)
        color = f"C{n}"
        ret = df[df["tag"] == "charts/episodic_return"]["value"].reset_index(drop=True)
        held = df[df["tag"] == "eval/throughput_ratio"]
        if ret.empty and (ax_eval is None or held.empty):
            sys.exit(f"{path}: no charts/episodic_return" + (" and no eval/throughput_ratio" if args.held_out else ""))
        if not ret.empty:
            ax.plot(ret.index + 1, ret, lw=0.5, alpha=0.3, color=color)
            ax.plot(ret.index + 1, ret.rolling(args.window, min_periods=1).mean(), lw=1.8, color=color,
                    label=f"{label} (mean of {args.window})")
        if ax_eval is not None and not held.empty:
            ax_eval.plot(held["wall_s"] / 60.0, held["value"], marker="o", ms=3, color=color, label=label)
    ax.set_xlabel("episode")
    ax.set_ylabel("reward per episode")
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend()
    if ax_eval is not None:
        ax_eval.set_xlabel("training wall time (min)")
        ax_eval.set_ylabel("held-out objective / optimum")
        ax_eval.grid(alpha=0.3)
        ax_eval.legend()
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_name(f".{args.out.name}.tmp.png")
    fig.savefig(tmp, dpi=120)
    tmp.replace(args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
