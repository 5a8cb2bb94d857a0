"""Seaborn figures of a run: per-slice delay CDFs and served throughput over time."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import seaborn as sns  # noqa: E402

from simcore.outputs import publish_file  # noqa: E402

from .kpis import Run, delay_cdf, throughput_series  # noqa: E402


def plot_run(run: Run, path: str | Path) -> Path:
    """Two panels: delay CDF per slice (log x) and throughput per slice over time. Written atomically
    (replacing a file at ``path``: the caller decides whether it may)."""
    sns.set_theme(style="whitegrid", context="notebook")
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.5))
    cdf = delay_cdf(run)
    if len(cdf):
        sns.lineplot(data=cdf, x="delay_ms", y="cdf", hue="slice", hue_order=run.slices, ax=ax1, drawstyle="steps-post")
        ax1.set_xscale("log")
    scn = run.manifest["scenario"]
    for sl in scn["slices"]:
        if sl["max_delay_ms"] < 1e6:
            ax1.axvline(sl["max_delay_ms"], ls=":", lw=1, color="grey")
    ax1.set(xlabel="packet delay (ms)", ylabel="CDF", title="Delay of delivered packets")
    tp = throughput_series(run)
    if len(tp):
        sns.lineplot(data=tp, x="time_s", y="throughput_mbps", hue="slice", hue_order=run.slices, ax=ax2)
        if (tp["throughput_mbps"] > 0).any():
            ax2.set_yscale("log")  # slices differ by orders of magnitude
    ax2.set(xlabel="time (s)", ylabel="served throughput (Mbit/s)", title="Throughput per slice (100 ms bins)")
    m = run.manifest
    fig.suptitle(f"{scn['name']} | policy {m['policy']['name']} | seed {m['seed']} | {m['simulated_s']:g} s simulated")
    fig.tight_layout()
    try:
        return publish_file(path, lambda tmp: fig.savefig(tmp, dpi=110), overwrite=True)
    finally:
        plt.close(fig)
