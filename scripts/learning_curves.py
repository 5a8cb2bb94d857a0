"""The paper's Fig. 3a for any set of training runs: reward per episode (running mean) of each run,
read from the run folders' ``scalars.csv`` (``oransim train`` writes them), on one plot
(``analysis.learning_curves``).

    python scripts/learning_curves.py --held-out --out docs/img/curves.png \
        Diffusion-QL=runs/train/paper_default-diffusion_ql-seed0 DQN=runs/train/paper_default-dqn-seed0 \
        SS-VAE=runs/train/paper_default-ssvae-seed0

Episodes are those of each run's own schedule (Table I: 100 decisions each). With ``--held-out``
a second panel shows each run's held-out weighted-objective ratio to the optimum (``oransim train``
evaluates every ``eval_every_steps``) against the training's wall time, which also covers runs and
phases without episodes (SS-VAE, offline steps on a dataset). A run with neither series is a
one-line error naming the folder (exit code 2); the PNG is written atomically.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", help="LABEL=RUN_FOLDER")
    ap.add_argument("--out", type=Path, required=True, help="PNG to write")
    ap.add_argument("--window", type=int, default=10, help="episodes of the running mean")
    ap.add_argument("--held-out", action="store_true", help="add the held-out ratio against wall time")
    args = ap.parse_args(argv)

    from analysis.learning_curves import CurveError, plot_learning_curves

    runs = []
    for item in args.runs:
        label, sep, folder = item.partition("=")
        if not sep or not label or not folder:
            print(f"error: {item}: expected LABEL=RUN_FOLDER", file=sys.stderr)
            sys.exit(2)
        runs.append((label, folder))
    try:
        out = plot_learning_curves(runs, args.out, args.window, args.held_out)
    except CurveError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    except OSError as exc:
        print(f"error: could not write {args.out}: {exc.strerror or exc}", file=sys.stderr)
        sys.exit(1)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
