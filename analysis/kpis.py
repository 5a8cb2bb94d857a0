"""Load run folders and compute per-slice KPIs with pandas (the functions the report uses).

Everything here reads a run folder only (``manifest.json`` + Parquet tables), never the engine.

    >>> run = load_run("runs/quick-pf-seed7")
    >>> slice_kpis(run)            # one row per slice
    >>> delay_percentiles(run)     # p50/p95/p99/p99.9 per slice
    >>> delay_cdf(run)             # long frame for plotting
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

PERCENTILES = (50.0, 95.0, 99.0, 99.9)


class RunFolderError(FileNotFoundError):
    """A folder is not a readable run folder; the message names the folder and the file at fault."""


#: Manifest keys the analysis reads, with their JSON types.
MANIFEST_KEYS = {"scenario": dict, "seed": int, "policy": dict, "phy": dict, "slices": list,
                 "simulated_s": (int, float), "tti_s": (int, float), "interval_tti": int, "git_revision": str}
#: Columns each table must have (a table from another run format, or two tables swapped, lack them).
TABLE_COLUMNS = {
    "packets": ("ue", "slice", "size_bytes", "status", "drop_reason", "delay_ms", "cu_ms", "du_ms", "queue_ms",
                "tx_ms", "fh_ms"),
    "tti": ("tti", "time_s", "ue", "served_bits", "buffer_bits"),
    "decisions": ("tti",),
}


def _manifest_problem(m) -> str | None:
    if not isinstance(m, dict):
        return f"is a JSON {type(m).__name__}, not an object"
    for key, kind in MANIFEST_KEYS.items():
        if not isinstance(m.get(key), kind) or isinstance(m.get(key), bool):
            return f"has no valid '{key}'"
    scn = m["scenario"]
    slices = scn.get("slices")
    if not isinstance(slices, list) or not slices or not isinstance(scn.get("cell", {}).get("rus"), list):
        return "has no valid scenario.slices / scenario.cell.rus"
    for sl in slices:
        if not isinstance(sl, dict) or not all(isinstance(sl.get(k), (int, float)) and not isinstance(sl.get(k), bool)
                                               for k in ("ues", "max_delay_ms", "min_rate_mbps")):
            return "has a slice without numeric ues / max_delay_ms / min_rate_mbps"
    if [sl.get("name") for sl in slices] != m["slices"]:
        return "lists slices that differ from its scenario's"
    if not m["simulated_s"] > 0 or not m["tti_s"] > 0 or m["interval_tti"] < 1:
        return "has a non-positive simulated_s, tti_s or interval_tti"
    return None


@dataclass
class Run:
    path: Path
    manifest: dict
    packets: pd.DataFrame
    tti: pd.DataFrame
    decisions: pd.DataFrame
    timing: pd.DataFrame | None = None  # per decision wall time of the policy (not reproducible)
    ues: pd.DataFrame | None = None  # per (UE, RU): position, serving RU, LOS, path loss, shadowing

    @property
    def slices(self) -> list[str]:
        return list(self.manifest["slices"])

    @property
    def simulated_s(self) -> float:
        return float(self.manifest["simulated_s"])

    @property
    def ue_slice(self) -> pd.Series:
        """Slice name of every UE (index: UE)."""
        s = self.manifest["scenario"]
        n_ru = len(s["cell"]["rus"])
        names = np.repeat([sl["name"] for sl in s["slices"]], [sl["ues"] * n_ru for sl in s["slices"]])
        return pd.Series(pd.Categorical(names, categories=self.slices), name="slice")


def load_run(path: str | Path) -> Run:
    """Read a run folder written by ``oransim run``; ``RunFolderError`` (one line) if it is not one."""
    import pyarrow as pa

    p = Path(path)
    if not p.is_dir():
        raise RunFolderError(f"{p}: not a run folder ({'no such folder' if not p.exists() else 'not a folder'})")
    if not (p / "manifest.json").is_file():
        raise RunFolderError(f"{p}: not a run folder (no manifest.json)")
    try:
        manifest = json.loads((p / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise RunFolderError(f"{p}/manifest.json: unreadable ({getattr(exc, 'strerror', None) or exc})") from None
    except ValueError as exc:
        raise RunFolderError(f"{p}/manifest.json: not valid JSON ({exc})") from None
    problem = _manifest_problem(manifest)
    if problem:
        raise RunFolderError(f"{p}/manifest.json: {problem}: damaged, or not written by oransim run")
    tables = {}
    for name in (*TABLE_COLUMNS, "timing"):
        f = p / f"{name}.parquet"
        if not f.is_file():
            if name == "timing":
                continue
            raise RunFolderError(f"{p}: missing {name}.parquet")
        try:
            df = pd.read_parquet(f)
        except (OSError, ValueError, pa.ArrowException) as exc:
            why = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise RunFolderError(f"{f}: unreadable Parquet (truncated or damaged?): {why}") from None
        missing = [c for c in TABLE_COLUMNS.get(name, ()) if c not in df.columns]
        if missing:
            raise RunFolderError(f"{f}: not the {name} table (no column {', '.join(missing)})")
        tables[name] = df
    # run folders written before ues.parquet existed lack it
    ues = pd.read_parquet(p / "ues.parquet") if (p / "ues.parquet").is_file() else None
    return Run(p, manifest, tables["packets"], tables["tti"], tables["decisions"], tables.get("timing"), ues)


def slice_kpis(run: Run) -> pd.DataFrame:
    """One row per slice: UEs, offered and delivered load, throughput, delay, drops, QoS satisfaction.

    - ``throughput_mbps``: bits served over the air to the slice's UEs / simulated time.
    - ``goodput_mbps``: bits of packets delivered / simulated time.
    - ``delay_qos_pct``: share of generated packets delivered within the slice's max delay
      (drops and late deliveries both count as misses; packets still queued are left out).
    - ``rate_qos_pct``: share of (UE, scheduling interval) pairs in which the UE was served at its
      minimum rate or had its buffer emptied by the end of the interval.
    """
    pk = run.packets
    dur = run.simulated_s
    scn = run.manifest["scenario"]
    max_delay = {sl["name"]: sl["max_delay_ms"] for sl in scn["slices"]}
    ue_slice = run.ue_slice
    rows = []
    for name in run.slices:
        p = pk[pk["slice"] == name]
        ended = p[p["status"].isin(["delivered", "dropped"])]
        delivered = p[p["status"] == "delivered"]
        on_time = delivered["delay_ms"] <= max_delay[name]
        row = {
            "slice": name,
            "ues": int((ue_slice == name).sum()),
            "offered_mbps": p["size_bytes"].sum() * 8 / dur / 1e6,
            "goodput_mbps": delivered["size_bytes"].sum() * 8 / dur / 1e6,
            "packets": len(p),
            "delivered": len(delivered),
            "dropped": int((p["status"] == "dropped").sum()),
            "drop_pct": 100.0 * (p["status"] == "dropped").sum() / max(len(ended), 1),
            "mean_delay_ms": delivered["delay_ms"].mean(),
            "delay_qos_pct": 100.0 * on_time.sum() / max(len(ended), 1),
        }
        for reason in ("deadline", "buffer_full"):
            row[f"drop_{reason}"] = int((p["drop_reason"] == reason).sum())
        rows.append(row)
    out = pd.DataFrame(rows).set_index("slice")
    if len(run.tti):
        served = run.tti.groupby("ue")["served_bits"].sum()
        out["throughput_mbps"] = served.groupby(ue_slice.reindex(served.index).values, observed=False).sum() / dur / 1e6
        out["rate_qos_pct"] = rate_qos(run)
    return out


def rate_qos(run: Run) -> pd.Series:
    """Per slice: % of (UE, interval) pairs served at >= min rate or with the buffer emptied."""
    tti, m = run.tti, run.manifest
    interval = int(m["interval_tti"])
    scn = m["scenario"]
    min_rate = pd.Series({sl["name"]: sl["min_rate_mbps"] * 1e6 for sl in scn["slices"]})
    df = tti.assign(interval=tti["tti"] // interval)
    g = df.groupby(["interval", "ue"], sort=True)
    agg = pd.DataFrame({"bits": g["served_bits"].sum(), "n": g["tti"].count(), "last_buffer": g["buffer_bits"].last()})
    agg = agg[agg["n"] == interval]  # full intervals only
    ue = agg.index.get_level_values("ue")
    sl = run.ue_slice.reindex(ue).values
    rate = agg["bits"] / (interval * float(m["tti_s"]))
    met = (rate.values >= min_rate.reindex(sl).values) | (agg["last_buffer"].values <= 1e-6)
    return pd.Series(met, index=pd.CategoricalIndex(sl, categories=run.slices)).groupby(level=0, observed=False).mean() * 100


def delay_percentiles(run: Run, percentiles=PERCENTILES) -> pd.DataFrame:
    """Delay percentiles (ms) of delivered packets per slice; columns p50, p95, ..."""
    d = run.packets[run.packets["status"] == "delivered"]
    cols = [f"p{q:g}" for q in percentiles]
    if d.empty:  # no packet rows (record.packets: false) or none delivered: NaN, as for an empty slice
        return pd.DataFrame(np.nan, index=pd.Index(run.slices, name="slice"), columns=cols)
    out = d.groupby("slice", observed=False)["delay_ms"].quantile([q / 100 for q in percentiles]).unstack()
    out.columns = cols
    return out.reindex(run.slices)


def delay_components(run: Run) -> pd.DataFrame:
    """Mean of each delay component (ms) of delivered packets per slice."""
    d = run.packets[run.packets["status"] == "delivered"]
    cols = ["cu_ms", "du_ms", "queue_ms", "tx_ms", "fh_ms", "delay_ms"]
    return d.groupby("slice", observed=False)[cols].mean().reindex(run.slices)


def delay_cdf(run: Run) -> pd.DataFrame:
    """Long frame (slice, delay_ms, cdf) of delivered packets, for plotting."""
    d = run.packets[run.packets["status"] == "delivered"][["slice", "delay_ms"]]
    parts = []
    for name, g in d.groupby("slice", observed=True):
        x = np.sort(g["delay_ms"].to_numpy())
        parts.append(pd.DataFrame({"slice": name, "delay_ms": x, "cdf": np.arange(1, x.size + 1) / x.size}))
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=["slice", "delay_ms", "cdf"])


def throughput_series(run: Run, bin_ms: float = 100.0) -> pd.DataFrame:
    """Served throughput (Mbit/s) per slice in time bins of ``bin_ms``."""
    t = run.tti
    sl = run.ue_slice.reindex(t["ue"]).values
    b = (t["time_s"] * 1e3 // bin_ms) * bin_ms / 1e3
    s = t.groupby([b.values, sl], observed=False)["served_bits"].sum() / (bin_ms * 1e-3) / 1e6
    s.index.names = ["time_s", "slice"]
    return s.rename("throughput_mbps").reset_index()
