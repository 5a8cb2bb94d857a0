"""The paper's Fig. 3a for any set of training runs: reward per episode (running mean) of each run,
read from the run folders' ``scalars.csv`` (``oransim train`` writes them), on one plot.

    python scripts/learning_curves.py --out docs/img/curves.png \
        Diffusion-QL=runs/train/paper_default-diffusion_ql-seed0 DQN=runs/train/paper_default-dqn-seed0

Episodes are those of each run's own schedule (Table I: 100 decisions each); a label without a
folder's ``charts/episodic_return`` is an error naming the folder.
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
    args = ap.parse_args()

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    fig, ax = plt.subplots(figsize=(6, 3.5))
    for item in args.runs:
        label, sep, folder = item.partition("=")
        if not sep:
            sys.exit(f"{item}: expected LABEL=RUN_FOLDER")
        path = Path(folder) / "scalars.csv"
        if not path.exists():
            sys.exit(f"{path}: no such file")
        df = pd.read_csv(path)
        ret = df[df["tag"] == "charts/episodic_return"]["value"].reset_index(drop=True)
        if ret.empty:
            sys.exit(f"{path}: no charts/episodic_return")
        line, = ax.plot(ret.index + 1, ret, lw=0.5, alpha=0.3)
        ax.plot(ret.index + 1, ret.rolling(args.window, min_periods=1).mean(), lw=1.8, color=line.get_color(),
                label=f"{label} (mean of {args.window})")
    ax.set_xlabel("episode")
    ax.set_ylabel("reward per episode")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_name(f".{args.out.name}.tmp.png")
    fig.savefig(tmp, dpi=120)
    tmp.replace(args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
