"""A sweep's results: KPIs against a swept field, mean and 95 % confidence interval over seeds.

Reads a sweep folder only (``sweep.json`` + ``results.parquet``, written by ``oransim sweep``).
The interval is Student's t over the seeds of each (policy, point): mean +- t(0.975, n-1) s / sqrt(n),
the same in the table and in the figure's band (no bootstrap, so figures are reproducible). With
one seed there is no interval. Other swept fields, if any, split the figure into panels.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
from scipy import stats  # noqa: E402

from simcore.outputs import publish_file  # noqa: E402

#: Columns of a results table that are not KPIs.
ID_COLUMNS = ("point", "seed", "policy")


class SweepReportError(ValueError):
    """The folder is not a sweep folder, or the KPI / field asked for is not in it (one line)."""


@dataclass
class SweepResults:
    path: Path
    meta: dict
    table: pd.DataFrame

    @property
    def swept(self) -> list[str]:
        return list(self.meta.get("swept", []))

    @property
    def kpis(self) -> list[str]:
        return [c for c in self.table.columns if c not in (*ID_COLUMNS, *self.swept)
                and pd.api.types.is_numeric_dtype(self.table[c])]


def load_sweep_folder(path: str | Path) -> SweepResults:
    p = Path(path)
    try:
        meta = json.loads((p / "sweep.json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SweepReportError(f"{p}: not a sweep folder (no sweep.json)") from None
    except (OSError, ValueError) as exc:
        raise SweepReportError(f"{p}/sweep.json: unreadable ({exc})") from None
    if not isinstance(meta, dict) or "oransim_sweep" not in meta:
        raise SweepReportError(f"{p}/sweep.json: not written by oransim sweep")
    try:
        table = pd.read_parquet(p / "results.parquet")
    except FileNotFoundError:
        raise SweepReportError(f"{p}: no results.parquet yet (run the sweep)") from None
    except Exception as exc:  # pyarrow's many error types on a damaged file
        raise SweepReportError(f"{p}/results.parquet: unreadable ({type(exc).__name__})") from None
    if table.empty:
        raise SweepReportError(f"{p}/results.parquet: no finished job yet")
    return SweepResults(p, meta, table)


def t_interval(values) -> tuple[float, float]:
    """95 % Student-t interval of the mean of ``values`` (NaN-free); (nan, nan) below two values."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if v.size < 2:
        m = float(v.mean()) if v.size else float("nan")
        return m, m
    half = stats.t.ppf(0.975, v.size - 1) * v.std(ddof=1) / np.sqrt(v.size)
    return float(v.mean() - half), float(v.mean() + half)


def _choose(sw: SweepResults, kpi: str | None, x: str | None) -> tuple[str, str]:
    if kpi is None:
        kpi = next((k for k in ("eval_tput_mbps", "run_tput_mbps") if k in sw.kpis), None)
        if kpi is None:
            raise SweepReportError(f"{sw.path}: no KPI column in results.parquet")
    elif kpi not in sw.table.columns:
        raise SweepReportError(f"--kpi: '{kpi}' is not a column of {sw.path}/results.parquet "
                               f"(KPIs: {', '.join(sw.kpis[:12])}{', ...' if len(sw.kpis) > 12 else ''})")
    if x is None:
        if not sw.swept:
            raise SweepReportError(f"{sw.path}: the sweep varies no field; nothing to plot against")
        x = sw.swept[-1]
    elif x not in sw.swept:
        raise SweepReportError(f"--x: '{x}' is not a swept field (swept: {', '.join(sw.swept) or 'none'})")
    return kpi, x


def kpi_summary(sw: SweepResults, kpi: str | None = None, x: str | None = None) -> tuple[pd.DataFrame, str, str]:
    """Per (other swept fields, policy, x): seeds, mean, 95 % CI low/high of ``kpi``."""
    kpi, x = _choose(sw, kpi, x)
    others = [f for f in sw.swept if f != x]
    keys = [*others, "policy", x]
    df = _with_short_policies(sw.table[[*keys, kpi]])
    rows = []
    for k, g in df.groupby(keys, sort=True, dropna=False):
        vals = g[kpi].to_numpy(dtype=float)
        lo, hi = t_interval(vals)
        finite = vals[np.isfinite(vals)]
        rows.append({**dict(zip(keys, k if isinstance(k, tuple) else (k,))), "seeds": int(finite.size),
                     "mean": float(finite.mean()) if finite.size else float("nan"), "ci_low": lo, "ci_high": hi})
    return pd.DataFrame(rows).set_index(keys), kpi, x


def short_policy(spec: str) -> str:
    """A legend label: ``NAME`` as is, ``NAME:path/to/file.pt`` as ``NAME:file``."""
    name, sep, path = str(spec).partition(":")
    return f"{name}:{Path(path).stem}" if sep else name


def _with_short_policies(df: pd.DataFrame) -> pd.DataFrame:
    return df.assign(policy=df["policy"].map(short_policy)) if "policy" in df else df


def _legend_outside(ax) -> None:
    if ax.get_legend() is not None:
        sns.move_legend(ax, "upper left", bbox_to_anchor=(1.02, 1.0), frameon=False)


def _save(fig, path) -> Path:
    fig.tight_layout()
    try:
        return publish_file(path, lambda tmp: fig.savefig(tmp, dpi=110), overwrite=True)
    finally:
        plt.close(fig)


def plot_kpi(sw: SweepResults, kpi: str, x: str, path: str | Path, title: str | None = None,
             ylabel: str | None = None, xlabel: str | None = None, hue: str = "policy",
             policies: list[str] | None = None) -> Path:
    """Line per ``hue`` value (policy, or another swept field) with its 95 % t band over seeds;
    one panel per value of the swept fields that are neither ``x`` nor ``hue``. Written atomically."""
    others = [f for f in sw.swept if f not in (x, hue)]
    df = sw.table if policies is None else sw.table[sw.table["policy"].isin(policies)]
    df = _with_short_policies(df[df[kpi].notna()])
    df["panel"] = df[others].astype(str).agg(", ".join, axis=1).radd(", ".join(others) + " = ") if others else ""
    panels = list(dict.fromkeys(df["panel"])) or [""]
    sns.set_theme(style="whitegrid", context="notebook")
    fig, axes = plt.subplots(1, len(panels), figsize=(5.0 * len(panels) + 2.5, 4.2), squeeze=False, sharey=True)
    for ax, panel in zip(axes[0], panels):
        d = df[df["panel"] == panel]
        if len(d):
            sns.lineplot(data=d, x=x, y=kpi, hue=hue, marker="o", errorbar=t_interval, ax=ax,
                         palette="viridis" if hue != "policy" else None)
        ax.set(title=panel or None, xlabel=xlabel or x, ylabel=ylabel or kpi)
    _legend_outside(axes[0][-1])
    for ax in axes[0][:-1]:
        if ax.get_legend() is not None:
            ax.get_legend().remove()
    fig.suptitle(title or f"{sw.meta['name']}: {kpi} (mean, 95 % CI over seeds)", fontsize=12)
    return _save(fig, path)


def plot_per_slice(sw: SweepResults, x: str, path: str | Path, prefix: str = "eval_tput_mbps_",
                   title: str | None = None, xlabel: str | None = None) -> Path:
    """One panel per slice (columns ``PREFIX<slice>``): the slice's KPI against ``x``, per policy."""
    cols = [c for c in sw.table.columns if c.startswith(prefix)]
    long = _with_short_policies(sw.table).melt(id_vars=[x, "policy", "seed"], value_vars=cols, var_name="slice",
                                                value_name="value")
    long["slice"] = long["slice"].str.removeprefix(prefix)
    long = long[long["value"].notna()]
    slices = [c.removeprefix(prefix) for c in cols]
    sns.set_theme(style="whitegrid", context="notebook")
    fig, axes = plt.subplots(1, len(slices), figsize=(4.6 * len(slices) + 2.5, 4.2), squeeze=False)
    for ax, sl in zip(axes[0], slices):
        sns.lineplot(data=long[long["slice"] == sl], x=x, y="value", hue="policy", marker="o",
                     errorbar=t_interval, ax=ax)
        ax.set(title=sl, xlabel=xlabel or x, ylabel="throughput (Mbit/s)")
        if ax is not axes[0][-1] and ax.get_legend() is not None:
            ax.get_legend().remove()
    _legend_outside(axes[0][-1])
    fig.suptitle(title or f"{sw.meta['name']}: per-slice throughput (mean, 95 % CI over seeds)")
    return _save(fig, path)


def plot_kpi_vs_kpi(sw: SweepResults, x_kpi: str, y_kpi: str, group: str, path: str | Path, policy: str,
                    title: str | None = None, xlabel: str | None = None, ylabel: str | None = None) -> Path:
    """Point means of ``y_kpi`` against those of ``x_kpi`` (both over seeds, 95 % t bars on y), one
    line per value of the swept field ``group``, for one policy (points ordered by their x mean)."""
    d = sw.table[(sw.table["policy"] == policy) & sw.table[y_kpi].notna()]
    sns.set_theme(style="whitegrid", context="notebook")
    fig, ax = plt.subplots(figsize=(8.5, 4.4))
    colors = sns.color_palette("viridis", d[group].nunique())
    for color, (val, g) in zip(colors, d.groupby(group, sort=True)):
        pts = []
        for _, h in g.groupby("point"):
            lo, hi = t_interval(h[y_kpi])
            pts.append((h[x_kpi].mean(), h[y_kpi].mean(), lo, hi))
        pts.sort()
        xs, ys, los, his = map(np.asarray, zip(*pts))
        ax.plot(xs, ys, "o-", color=color, label=f"{group} = {val}")
        ax.fill_between(xs, los, his, color=color, alpha=0.2)
    ax.set(xlabel=xlabel or x_kpi, ylabel=ylabel or y_kpi)
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False)
    fig.suptitle(title or f"{sw.meta['name']}: {y_kpi} against {x_kpi} ({policy})")
    return _save(fig, path)
