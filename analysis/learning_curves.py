"""Learning curves of training runs (the paper's Fig. 3a), read from the run folders' ``scalars.csv``.

``oransim train`` logs, per run folder, ``charts/episodic_return`` (the reward of each finished
episode, numbered in the order episodes end) and, every ``eval_every_steps``, ``eval/throughput_ratio``
(the held-out weighted objective over the exact optimum's) with the wall time since the start. One
figure holds any number of runs: reward per episode (thin: each episode; thick: running mean of
``window`` episodes) and, with ``held_out``, a second panel of the held-out ratio against wall time,
which also shows runs without episodes (SS-VAE, offline steps on a dataset). The PNG is written to a
temporary name beside the target and renamed, so a failed plot leaves no half-written file.

    python scripts/learning_curves.py --held-out --out fig3a.png DQN=RUN_A Diffusion-QL=RUN_B SS-VAE=RUN_C
"""

from __future__ import annotations

import os
from pathlib import Path

#: Tags of ``scalars.csv`` read here (written by ``policies.learned.train.RunLog``).
TAG_RETURN = "charts/episodic_return"
TAG_HELD_OUT = "eval/throughput_ratio"


class CurveError(ValueError):
    """A run folder without the series asked for (the message names the folder)."""


def read_curves(folder: str | Path):
    """(rewards per episode: a Series indexed 1.. in the order episodes ended; held-out rows: a
    DataFrame with columns ``wall_s`` and ``value``) of one run folder."""
    import pandas as pd

    path = Path(folder) / "scalars.csv"
    if not path.is_file():
        raise CurveError(f"{path}: no such file (not a run folder of `oransim train`?)")
    df = pd.read_csv(path)
    if not {"tag", "value", "wall_s"} <= set(df.columns):
        raise CurveError(f"{path}: not a scalars.csv of `oransim train` (columns {', '.join(map(str, df.columns))})")
    ret = df.loc[df["tag"] == TAG_RETURN, "value"].reset_index(drop=True)
    ret.index += 1
    return ret, df.loc[df["tag"] == TAG_HELD_OUT, ["wall_s", "value"]].reset_index(drop=True)


def plot_learning_curves(runs: list[tuple[str, str | Path]], out: str | Path, window: int = 10,
                         held_out: bool = False) -> Path:
    """Plot ``runs`` ((label, run folder) pairs) into the PNG ``out``; returns ``out``. A run with
    no episode (and, with ``held_out``, no held-out evaluation either) is a ``CurveError``."""
    if window < 1:
        raise CurveError(f"window: must be at least 1 episode (got {window})")
    series = []
    for label, folder in runs:
        ret, held = read_curves(folder)
        if ret.empty and (not held_out or held.empty):
            raise CurveError(f"{Path(folder) / 'scalars.csv'}: no {TAG_RETURN}"
                             + (f" and no {TAG_HELD_OUT}" if held_out else " (try --held-out)"))
        series.append((label, ret, held))

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2 if held_out else 1, figsize=(11 if held_out else 6, 3.6), squeeze=False)
    ax, ax_eval = axes[0][0], (axes[0][1] if held_out else None)
    for n, (label, ret, held) in enumerate(series):
        color = f"C{n}"
        if not ret.empty:
            ax.plot(ret.index, ret, lw=0.5, alpha=0.3, color=color)
            ax.plot(ret.index, ret.rolling(window, min_periods=1).mean(), lw=1.8, color=color,
                    label=f"{label} (mean of {window})")
        elif ax_eval is not None:  # listed on the left too, so every run's colour is named there
            ax.plot([], [], lw=1.8, color=color, label=f"{label} (no episodes)")
        if ax_eval is not None and not held.empty:
            ax_eval.plot(held["wall_s"] / 60.0, held["value"], marker="o", ms=3, color=color, label=label)
    ax.set_xlabel("episode")
    ax.set_ylabel("reward per episode")
    ax.set_title("reward per episode", fontsize=10)
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)
    if ax_eval is not None:
        ax_eval.set_xlabel("training wall time (min)")
        ax_eval.set_ylabel("held-out objective / optimum")
        ax_eval.set_title("held-out ratio to the optimum", fontsize=10)
        ax_eval.grid(alpha=0.3)
        if ax_eval.get_legend_handles_labels()[0]:
            ax_eval.legend(fontsize=8)
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp.png")
    try:
        fig.savefig(tmp, dpi=120)
        tmp.replace(out)
    finally:
        plt.close(fig)
        tmp.unlink(missing_ok=True)
    return out
