"""``oransim reproduce paper``: the paper's Table II and Fig. 3 from the sweep files in scenarios/paper/.

Each figure is one sweep (``SWEEPS``); the classic policies and the optimum are in the files, and
the learned policies of the paper (``LEARNED``) are added when their plug-in is installed and their
checkpoint is in ``models/`` (trained for the paper's cell under the paper's objective, ``rate``).
A learned policy that is not there appears as missing, never with a number. ``--quick`` runs
every sweep on a reduced budget (``QUICK``): two seeds, one state per seed (Table II three), and
a few of each swept field's values.

Everything here reads the sweeps' results tables only; ``oransim.paper_page.write_markdown`` puts each result
beside what the paper reports.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
PAPER_DIR = ROOT / "scenarios" / "paper"

UES = "slices[*].ues"
RU_POWER = "cell.rus[0].max_power_dbm"
#: figure id -> sweep file in scenarios/paper/
SWEEPS = {"table2": "table2.yaml", "fig3b": "fig3b_ues.yaml", "fig3c": "fig3c_power_ues.yaml",
          "fig3d": "fig3d_ru_power.yaml", "fig3e": "fig3e_slice_power.yaml", "fig3f": "fig3f_interference.yaml"}

#: The paper's learned policies: label -> (entry-point name, checkpoint under models/).
LEARNED = {"DQN": ("dqn", "dqn_paper_default_rate.pt"),
           "SS-VAE": ("ssvae", "ssvae_paper_default_rate.pt"),
           "Diffusion-QL": ("diffusion_ql", "diffusion_ql_paper_default_rate.pt")}

#: Table II of the paper (test data; MAE, R^2, cosine similarity, BAEP %).
PAPER_TABLE2 = {"SS-VAE": (0.1407, 0.7237, 0.9745, 5.45), "DQN": (0.2156, 0.6985, 0.8915, 9.72),
                "Diffusion-QL": (0.1381, 0.7461, 0.9808, 4.19)}


@dataclass
class Learned:
    label: str
    name: str
    checkpoint: Path
    available: bool
    why: str  # why it is missing ("" when available)

    @property
    def spec(self) -> str:
        return f"{self.name}:{self.checkpoint}"


def learned_policies(models_dir: Path = ROOT / "models") -> list[Learned]:
    from simcore.plugins import available

    from .sweep import stale_install

    known = available("oransim.policies")
    out = []
    for label, (name, ckpt) in LEARNED.items():
        path = models_dir / ckpt
        if name not in known:
            why = stale_install(name) or f"policy '{name}' is not implemented in this version"
        elif not path.is_file():
            why = f"no checkpoint for the paper's `rate` objective at models/{ckpt}"
        else:
            why = ""
        out.append(Learned(label, name, path, not why, why))
    return out


#: The budget of ``--quick``, per figure: the swept values kept (a subset of the file's own, so the
#: quick run is a sub-sample of the full one) and states per seed; every sweep keeps its first
#: ``QUICK_SEEDS`` seeds. Chosen to run in about two minutes on a 2-core machine while every table
#: and figure still has its axes: each figure's extremes and one value between; the paper cell
#: (10 UEs per slice, 46 dBm) among them, so Fig. 3c's grid holds 3 of Fig. 3b's points and all
#: of 3d's, which are then sampled and solved once (``sweep_jobs``); one state per seed (Table II
#: three, its metrics being over states). The MILP's time on a state is very uneven (0.2 s to over 60 s on
#: one core): the points kept are ones where it is short. Fig. 3e keeps one seed (``seeds``): under a
#: tight slice cap the power levels are halved down to the cap (``simcore.snapshot.default_levels_w``)
#: and the MILP takes about 10 s of CPU per state instead of 0.3 s.
QUICK_SEEDS = 2
QUICK = {
    "table2": {"grid": {}, "states": 3},
    "fig3b": {"grid": {UES: [5, 10, 30, 50]}, "states": 1},
    "fig3c": {"grid": {RU_POWER: [40, 46, 50], UES: [5, 10, 50]}, "states": 1},
    "fig3d": {"grid": {RU_POWER: [40, 46, 50]}, "states": 1},
    "fig3e": {"grid": {"slices[*].power_cap_dbm": [26, 34, 46]}, "states": 1, "seeds": 1},
    "fig3f": {"grid": {"cell.rus[*].max_power_dbm": [48, 50], UES: [1, 3, 6]}, "states": 1},
}


def quick_variant(fig: str, spec):
    """The reduced budget of ``--quick`` for figure ``fig`` (``QUICK``); ``ValueError`` if a kept
    value is not among the sweep file's own (the quick run must be a sub-sample of the full one)."""
    from .sweep import SeedRange

    budget = QUICK[fig]
    for path, values in budget["grid"].items():
        missing = [v for v in values if v not in spec.grid.get(path, [])]
        if missing:
            raise ValueError(f"{fig}: quick value(s) {missing} of '{path}' are not in the sweep file's grid")
    grid = {k: list(budget["grid"].get(k, v)) for k, v in spec.grid.items()}
    seeds = spec.seed_list[:budget.get("seeds", QUICK_SEEDS)]
    update = {"name": spec.name + "-quick", "seeds": SeedRange(first=seeds[0], count=len(seeds)), "grid": grid}
    if spec.evaluate is not None:
        update["evaluate"] = spec.evaluate.model_copy(update={"states": min(spec.evaluate.states, budget["states"])})
    return spec.model_copy(update=update)


def sweep_specs(quick: bool, learned: list[Learned]):
    """(figure id, sweep file, spec) for every sweep, learned policies added, reduced if ``quick``."""
    from .sweep import load_sweep

    out = []
    for fig, fname in SWEEPS.items():
        path = PAPER_DIR / fname
        spec = load_sweep(path)
        extra = [lp.spec for lp in learned if lp.available]
        spec = spec.model_copy(update={"policies": [*spec.policies, *extra]})
        out.append((fig, path, quick_variant(fig, spec) if quick else spec))
    return out


# ------------------------------------------------------------------------------ summaries
def mean_ci(values) -> tuple[float, float, float, int]:
    """Mean, 95 % t interval (low, high) and count of the finite values."""
    from analysis.sweep_plots import t_interval

    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    lo, hi = t_interval(v)
    return (float(v.mean()) if v.size else float("nan")), lo, hi, int(v.size)


def table2(results: pd.DataFrame, learned: list[Learned]) -> pd.DataFrame:
    """Per policy: MAE, R^2, cosine, BAEP %, ratio to the optimum (mean over seeds, 95 % CI half-width)."""
    rows = []
    for pol, g in results.groupby("policy", sort=False):
        row = {"policy": pol}
        for col, name in (("eval_mae", "MAE"), ("eval_r2", "R2"), ("eval_cosine", "cosine"),
                          ("eval_baep_pct", "BAEP %"), ("eval_ratio", "ratio to optimum"),
                          ("eval_qos_pct", "QoS %")):
            if col in g:
                m, lo, hi, n = mean_ci(g[col])
                row[name], row[name + " +-"] = m, (hi - lo) / 2
        row["seeds"] = int(g["eval_mae"].notna().sum()) if "eval_mae" in g else 0
        err = g["eval_error"].dropna() if "eval_error" in g else pd.Series(dtype=str)
        row["error"] = err.iloc[0] if len(err) else ""
        rows.append(row)
    rank = {"optimal": 0, "rr": 1, "pf": 2, "maxcqi": 3}
    rows.sort(key=lambda r: (rank.get(r["policy"], 4), r["policy"]))
    df = pd.DataFrame(rows).set_index("policy")
    for lp in learned:
        if not lp.available:
            df.loc[lp.label, "error"] = f"missing: {lp.why}"
    return df


# ------------------------------------------------------------------------------ figures
FIGURES = {  # figure id -> (file name, what it shows)
    "fig3b": ("fig3b_throughput_vs_ues.png", "aggregate throughput against UEs per service"),
    "fig3c": ("fig3c_throughput_vs_power_and_ues.png", "the optimum's aggregate throughput against RU power and UEs"),
    "fig3d": ("fig3d_slice_throughput_vs_ru_power.png", "per-slice throughput against RU power"),
    "fig3e": ("fig3e_slice_throughput_vs_slice_cap.png", "per-slice throughput against the slice power cap"),
    "fig3f": ("fig3f_throughput_vs_interference.png", "aggregate throughput against the largest interference"),
}


def draw(fig: str, sw, img_dir: Path) -> Path | None:
    """The PNG of one figure from its sweep's results."""
    from analysis.sweep_plots import plot_kpi, plot_kpi_vs_kpi, plot_per_slice

    name = FIGURES[fig][0] if fig in FIGURES else None
    if name is None:
        return None
    path = img_dir / name
    tput = "aggregate throughput (Mbit/s)"
    if fig == "fig3b":
        return plot_kpi(sw, "eval_tput_mbps", UES, path, xlabel="UEs per slice", ylabel=tput,
                        title="Fig. 3b: aggregate throughput (mean, 95 % CI over seeds)")
    if fig == "fig3c":
        return plot_kpi(sw, "eval_tput_mbps", UES, path, hue=RU_POWER, policies=["optimal"], xlabel="UEs per slice",
                        ylabel=tput, title="Fig. 3c: the optimum's aggregate throughput, by RU power (dBm)")
    if fig == "fig3d":
        return plot_per_slice(sw, RU_POWER, path, xlabel="RU maximum power (dBm)",
                              title="Fig. 3d: per-slice throughput against RU power")
    if fig == "fig3e":
        return plot_per_slice(sw, "slices[*].power_cap_dbm", path, xlabel="slice power cap (dBm)",
                              title="Fig. 3e: per-slice throughput against the slices' power cap")
    if fig == "fig3f":
        return plot_kpi_vs_kpi(sw, "eval_max_interference_dbm", "eval_tput_mbps", "cell.rus[*].max_power_dbm", path,
                               policy="optimal", xlabel="largest interference on a served PRB (dBm, mean over states)",
                               ylabel=tput, title="Fig. 3f: the optimum's throughput against interference, 3 RUs")
    return None
