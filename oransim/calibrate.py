"""``oransim calibrate``: the built-in PHY against ns-3 (``ns3-shm``) on the same scenarios and seeds.

For each scenario the command runs a sweep (``oransim.sweep``) of two points, ``phy.backend:
builtin`` and ``phy.backend: ns3-shm`` (with the built-in link-to-system model, which ns-3 replaces,
switched off there), over the same seeds and policy, keeping every run folder; then
it reads the run folders (``analysis.kpis``) and compares, per slice:

- throughput: bits served over the air / simulated time, mean over the seeds (Mbit/s);
- delay of delivered packets: mean, p50, p95, p99 of all seeds' packets pooled (ms);
- drops: packets dropped, summed over the seeds;

each with the ratio built-in / ns-3 (1 = agreement), and the wall time of each PHY (sum over the
seeds, start-up included) with the speed ratio ns-3 / built-in. The default targets: throughput
within 5 %, p50 and p95 delay within 20 %, the built-in PHY at least 20x faster. A figure per
scenario overlays both PHYs' delay CDFs, one panel per slice.

Output folder (``--out``, default ``calibration``)::

    NAME.sweep.yaml        the sweep each scenario ran (``oransim sweep`` can rerun it)
    NAME/                  its sweep folder: results.parquet, runs/*/ (one run folder per PHY x seed)
    NAME-delay-cdf.png     the delay CDFs overlaid
    calibration.csv        one row per scenario x slice x metric: builtin, ns3, ratio, tolerance, within

Running the command again on the same folder reuses finished runs (the sweep's resume; its keys
hash the resolved scenario and the code). ``--reference DIR`` takes the ns3-shm side from an earlier
calibration's output folder (which must have run the same scenario files, settings, seeds, policy
and duration) and runs only the built-in side: fitting the built-in PHY's settings then costs no
ns-3 run. The reference runs are what the code of their day made: refresh them after changing the
engine, the traffic or ns3_bridge.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Optional

import numpy as np
import pandas as pd
import typer

REFERENCE = "ns3-shm"
FAST = "builtin"
#: (metric, column in the per-slice table, tolerance key); ratios are builtin / ns-3
METRICS = (("tput_mbps", "throughput", "tput"), ("mean_ms", "mean", None), ("p50_ms", "p50", "delay"),
           ("p95_ms", "p95", "delay"), ("p99_ms", "p99", None), ("drops", "drops", None))
DEFAULT_TOLERANCE = {"tput": 0.05, "delay": 0.20}
DEFAULT_SPEED_MIN = 20.0
#: the built-in PHY's link-to-system switch: ns3-shm refuses it (ns-3 has its own)
BUILTIN_ONLY = ("phy.l2s.enabled",)


def sweep_spec(scenario: Path, name: str, seeds: list[int], policy: str, duration_s: float | None,
               builtin_only: tuple[str, ...] = (), profile: dict | None = None, params: dict | None = None,
               backend: str = FAST) -> dict:
    """The sweep one scenario runs: both PHYs x the seeds, one policy, packets kept.
    ``profile``: ``scenario`` (dotted path -> value, both sides: e.g. the CSI the policy sees) and
    ``builtin`` (the built-in side only: the built-in PHY's settings under calibration);
    ``builtin_only``: boolean fields of the built-in PHY's own models (e.g. ``phy.l2s.enabled``)
    switched off on the ns3-shm side, where ns-3 models the same things itself; ``params`` and
    ``backend``: the scenario's ``phy.params`` and backend (its parameters stay with their backend;
    the built-in PHY takes none)."""
    profile = profile or {}
    fast = {**profile.get("builtin", {}), "phy.backend": FAST}
    ns3 = {"phy.backend": REFERENCE, **{f: False for f in builtin_only}}
    if params:  # a backend's parameters mean nothing to the other
        (ns3 if backend == FAST else fast)["phy.params"] = {}
    return {"name": name, "scenario": str(Path(scenario).resolve()), "set": dict(profile.get("scenario", {})),
            "points": [fast, ns3], "seeds": list(seeds), "policies": [policy],
            "run": {"duration_s": duration_s, "record_packets": True}}


def apply_profile(scn, profile: dict, side: str):
    """The scenario with a profile's ``scenario`` settings, and for ``side`` = builtin its ``builtin``
    ones, applied (the sides calibrate runs, for scripts that build scenarios themselves)."""
    from oransim.sweep import set_path
    from simcore.scenario import parse_scenario

    data = scn.model_dump(mode="python")
    for path, value in {**profile.get("scenario", {}), **(profile.get("builtin", {}) if side == FAST else {})}.items():
        set_path(data, path, value)
    return parse_scenario(data)


def profile_problems(profile) -> list[str]:
    """What is wrong with a calibration profile (the ``--profile`` file's content), one line each."""
    if not isinstance(profile, dict):
        return ["must be a mapping with 'scenario' and/or 'builtin'"]
    out = [f"unknown key '{k}' (scenario, builtin)" for k in profile if k not in ("scenario", "builtin")]
    for key in ("scenario", "builtin"):
        part = profile.get(key, {})
        if not isinstance(part, dict) or not all(isinstance(k, str) for k in part):
            out.append(f"{key}: must be a mapping of dotted paths (phy.csi.delay_tti) to values")
        elif "phy.backend" in part:
            out.append(f"{key}: phy.backend is calibrate's to set")
    return out


def reference_problem(spec: dict, ref_spec) -> str | None:
    """Why an earlier calibration's sweep (``ref_spec``, its ``NAME.sweep.yaml``) cannot stand in for
    the ns3-shm side of ``spec``: it must have run a scenario file of the same content, settings, seeds, policy,
    duration and ns3-shm point. None if it can."""
    if not isinstance(ref_spec, dict):
        return "not a calibration sweep"
    try:
        same_file = Path(ref_spec.get("scenario", "")).read_bytes() == Path(spec["scenario"]).read_bytes()
    except OSError as exc:
        return f"its scenario file cannot be read ({exc.strerror}: {ref_spec.get('scenario')})"
    if not same_file:
        return f"its scenario file {ref_spec.get('scenario')} differs from {spec['scenario']}"
    for key in ("set", "seeds", "policies", "run"):
        if ref_spec.get(key) != spec[key]:
            return f"its '{key}' differs ({ref_spec.get(key)!r}, here {spec[key]!r})"
    ns3 = next(p for p in spec["points"] if p.get("phy.backend") == REFERENCE)
    if ns3 not in (ref_spec.get("points") or []):
        return f"it has no ns3-shm point equal to {ns3!r}"
    return None


def _pooled(runs: list) -> dict:
    """Per slice over a PHY's runs: mean throughput, pooled delays of delivered packets, drops."""
    from analysis.kpis import slice_kpis

    tput, drops, delays = {}, {}, {}
    for run in runs:
        k = slice_kpis(run)
        pk = run.packets
        for s in run.slices:
            tput.setdefault(s, []).append(float(k.loc[s, "throughput_mbps"]))
            drops[s] = drops.get(s, 0) + int(k.loc[s, "dropped"])
            d = pk.loc[(pk["slice"] == s) & (pk["status"] == "delivered"), "delay_ms"].to_numpy()
            delays.setdefault(s, []).append(d)
    out = {}
    for s in tput:
        d = np.concatenate(delays[s])
        q = np.percentile(d, [50, 95, 99]) if d.size else [math.nan] * 3
        out[s] = {"throughput": float(np.mean(tput[s])), "mean": float(d.mean()) if d.size else math.nan,
                  "p50": float(q[0]), "p95": float(q[1]), "p99": float(q[2]), "drops": drops[s], "delays": d}
    return out


def compare(folder: Path, tolerance: dict | None = None, reference: Path | None = None) -> tuple[pd.DataFrame, dict, dict]:
    """Read a calibration sweep folder: (long table, per-PHY pooled stats, wall seconds per PHY).
    ``reference``: another sweep folder holding the ns3-shm runs (``--reference``).

    The table has one row per slice x metric with columns ``builtin``, ``ns3``, ``ratio``
    (builtin / ns3), ``tolerance`` (relative, NaN where no target) and ``within``.
    """
    from analysis.kpis import load_run

    tol = {**DEFAULT_TOLERANCE, **(tolerance or {})}
    folders = {FAST: Path(folder), REFERENCE: Path(reference or folder)}
    stats, wall, seeds = {}, {}, {}
    for phy in (FAST, REFERENCE):
        res = pd.read_parquet(folders[phy] / "results.parquet")
        res = res[res["phy.backend"] == phy]
        if "run_error" in res:
            bad = res[res["run_error"].notna()]
            if len(bad):
                raise RuntimeError(f"{len(bad)} run(s) failed, e.g. {phy} seed {bad.iloc[0]['seed']}: "
                                   f"{bad.iloc[0]['run_error']}")
        if res.empty:
            raise RuntimeError(f"{folders[phy]}: no finished {phy} run")
        stats[phy] = _pooled([load_run(folders[phy] / d) for d in res["run_dir"]])
        wall[phy] = float(res["run_wall_s"].sum())
        seeds[phy] = sorted(res["seed"])
    if seeds[FAST] != seeds[REFERENCE]:
        raise RuntimeError(f"{folder}: the two PHYs did not finish the same seeds")
    records = []
    for s in stats[REFERENCE]:
        for metric, col, tkey in METRICS:
            a, b = stats[FAST][s][col], stats[REFERENCE][s][col]
            ratio = a / b if b else (1.0 if a == b else math.nan)
            t = tol[tkey] if tkey else math.nan
            within = bool(abs(ratio - 1.0) <= t) if tkey and not math.isnan(ratio) else None
            records.append({"slice": s, "metric": metric, "builtin": a, "ns3": b, "ratio": ratio,
                            "tolerance": t, "within": within})
    return pd.DataFrame(records), stats, wall


def plot_cdfs(stats: dict, path: Path, title: str) -> Path:
    """One panel per slice: the delay CDF of delivered packets under each PHY (log x where they span
    more than a decade)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import seaborn as sns
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    from simcore.outputs import publish_file

    sns.set_theme(style="whitegrid", context="notebook")
    slices = list(stats[REFERENCE])
    fig, axes = plt.subplots(1, len(slices), figsize=(4.2 * len(slices), 3.8), squeeze=False)
    for ax, s in zip(axes[0], slices):
        span = []
        for phy, style in ((REFERENCE, "-"), (FAST, "--")):
            d = np.sort(stats[phy][s]["delays"])
            if d.size:
                ax.step(d, np.arange(1, d.size + 1) / d.size, where="post", ls=style, label=phy)
                span += [d[0], d[-1]]
        if span and min(span) > 0 and max(span) > 10 * min(span):  # log x only over more than a decade
            ax.set_xscale("log")
            ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
            ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:g}"))
            ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set(title=s, xlabel="packet delay (ms)", ylabel="CDF")
        ax.legend(loc="lower right")
    fig.suptitle(title)
    fig.tight_layout()
    try:
        return publish_file(path, lambda tmp: fig.savefig(tmp, dpi=110), overwrite=True)
    finally:
        plt.close(fig)


# ------------------------------------------------------------------------------ the command
def _fmt(x) -> str:
    if isinstance(x, (int, np.integer)):
        return str(int(x))
    return "-" if x is None or (isinstance(x, float) and not math.isfinite(x)) else f"{x:.4g}"


def calibrate(
    scenarios: list[Path] = typer.Argument(..., help="scenario YAML files"),
    seeds: int = typer.Option(5, min=1, help="number of seeds per scenario (the same for both PHYs)"),
    seed: Optional[int] = typer.Option(None, help="first seed (default: each scenario's own)"),
    duration: Optional[float] = typer.Option(None, help="simulated seconds (default: each scenario's)"),
    policy: Optional[str] = typer.Option(None, help="policy (default: each scenario's)"),
    profile: Optional[Path] = typer.Option(None, help="YAML file: 'scenario' settings for both sides and 'builtin' "
                                                      "settings for the built-in side only (dotted paths); docs/ns3.md"),
    out_dir: Path = typer.Option(Path("calibration"), "--out", help="output folder (finished runs in it are reused)"),
    workers: int = typer.Option(0, min=0, help="0: runs one after the other in this process; N: a local Ray instance with N CPUs"),
    tput_tol: float = typer.Option(DEFAULT_TOLERANCE["tput"], min=0, help="throughput target: |ratio - 1| <= this"),
    delay_tol: float = typer.Option(DEFAULT_TOLERANCE["delay"], min=0, help="p50/p95 delay target: |ratio - 1| <= this"),
    speed_min: float = typer.Option(DEFAULT_SPEED_MIN, min=0, help="speed target: ns3-shm wall / builtin wall >= this"),
    check: bool = typer.Option(False, help="exit code 1 if a target is missed"),
    reference: Optional[Path] = typer.Option(
        None, help="the --out folder of an earlier calibrate whose ns3-shm runs to compare with instead of "
                   "running ns-3 again (same scenarios, seeds, settings; its runs are as that code made them)"),
):
    """The built-in PHY against ns-3 (ns3-shm) on the same scenarios and seeds: per slice throughput,
    mean/p50/p95/p99 delay and drops side by side with ratios, the speed ratio, delay CDFs overlaid."""
    import yaml
    from rich.table import Table

    from simcore.outputs import publish_file
    from simcore.scenario import ScenarioError, load_scenario
    from simcore.yamlio import YamlError, load_yaml_text, read_text_file

    from .cli import _fail, _reason, _say, out
    from .sweep_cli import execute

    overlay = {}
    if profile is not None:
        try:
            overlay = load_yaml_text(read_text_file(profile))
        except YamlError as exc:
            _fail([f"--profile: {profile}: {exc}"])
        bad = profile_problems(overlay)
        if bad:
            _fail([f"--profile: {profile}: {b}" for b in bad])
    names = []
    for path in scenarios:
        try:
            scn = load_scenario(path)
        except ScenarioError as exc:
            exc.source = str(path)
            _fail(exc.lines())
        if scn.name in names:
            _fail([f"{path}: a scenario named '{scn.name}' is given twice"])
        names.append(scn.name)
        first = scn.seed if seed is None else seed
        if not 0 <= first <= 2**62 - seeds:
            _fail([f"--seed: {first} .. {first + seeds - 1} is out of range"])
    try:
        from ns3_bridge.build import Ns3BuildError, server_binary

        server_binary(progress=_say)  # compiled outside the runs' wall times
    except (ImportError, Ns3BuildError) as exc:
        _fail([f"calibrate: ns3-shm is not available here ({exc}); the calibration needs it"])
    out_dir.mkdir(parents=True, exist_ok=True)
    tol = {"tput": tput_tol, "delay": delay_tol}
    tables, missed = [], []
    for path, name in zip(scenarios, names):
        scn = load_scenario(path)
        first = scn.seed if seed is None else seed
        spec = sweep_spec(path, f"calibrate-{name}", list(range(first, first + seeds)),
                          policy or scn.policy.name, duration, BUILTIN_ONLY, overlay, scn.phy.params,
                          scn.phy.backend)
        ref_folder = None
        if reference is not None:  # the ns3-shm side from an earlier calibration: only the built-in side runs
            ref_file = reference / f"{name}.sweep.yaml"
            try:
                ref_spec = yaml.safe_load(ref_file.read_text(encoding="utf-8"))
            except (OSError, yaml.YAMLError) as exc:
                _fail([f"--reference: {ref_file}: {_reason(exc) if isinstance(exc, OSError) else exc}"])
            why = reference_problem(spec, ref_spec)
            if why:
                _fail([f"--reference: {ref_file}: {why}"])
            ref_folder = reference / name
            spec = {**spec, "points": [p for p in spec["points"] if p.get("phy.backend") == FAST]}
        sweep_file = out_dir / f"{name}.sweep.yaml"
        try:
            publish_file(sweep_file, lambda tmp: tmp.write_text(yaml.safe_dump(spec, sort_keys=False)), overwrite=True)
        except OSError as exc:
            _fail([f"error: could not write {sweep_file}: {_reason(exc)}"], code=1)
        folder, summary = execute(sweep_file, out_dir / name, workers, None)
        if summary["failed"]:
            _fail([f"{name}: {summary['failed']} run(s) failed: {e}" for e in list(summary["errors"].values())[:3]], code=1)
        try:
            table, stats, wall = compare(folder, tol, ref_folder)
        except RuntimeError as exc:
            _fail([f"{name}: {exc}"], code=1)
        speed = wall[REFERENCE] / max(wall[FAST], 1e-9)
        dur = duration or scn.duration_s
        if ref_folder is not None:
            out.print(f"{name}: ns3-shm runs from {ref_folder}", markup=False, highlight=False)
        t = Table(title=f"{name}: {seeds} seed(s) x {dur:g} s, policy {spec['policies'][0]}; wall builtin "
                        f"{wall[FAST]:.1f} s, ns3-shm {wall[REFERENCE]:.1f} s: ns3-shm / builtin = {speed:.1f}x "
                        f"(target >= {speed_min:g}x)", title_justify="left")
        for col in ("slice", "metric", "builtin", "ns3-shm", "builtin / ns3", "target"):
            t.add_column(col, justify="left" if col in ("slice", "metric", "target") else "right")
        for r in table.itertuples():
            target = "" if r.within is None else f"±{r.tolerance * 100:g} % {'ok' if r.within else 'MISSED'}"
            t.add_row(r.slice, r.metric, _fmt(r.builtin), _fmt(r.ns3), _fmt(r.ratio), target)
        out.print(t)
        png = plot_cdfs(stats, out_dir / f"{name}-delay-cdf.png",
                        f"{name}: delay of delivered packets, {seeds} seed(s) pooled (solid ns3-shm, dashed builtin)")
        out.print(f"figure: {png}", markup=False, highlight=False)
        missed += [f"{name} {r.slice} {r.metric} ratio {r.ratio:.3f}" for r in table.itertuples() if r.within is False]
        if speed < speed_min:
            missed.append(f"{name} speed {speed:.1f}x")
        tables.append(table.assign(scenario=name, wall_builtin_s=wall[FAST], wall_ns3_s=wall[REFERENCE]))
    csv = out_dir / "calibration.csv"
    allt = pd.concat(tables, ignore_index=True)
    try:
        publish_file(csv, lambda tmp: allt[["scenario", *[c for c in allt.columns if c != "scenario"]]].to_csv(tmp, index=False),
                     overwrite=True)
    except OSError as exc:
        _fail([f"error: could not write {csv}: {_reason(exc)}"], code=1)
    out.print(f"table: {csv}", markup=False, highlight=False)
    if missed:
        _say(f"calibrate: {len(missed)} target(s) missed: " + "; ".join(missed))
        if check:
            raise typer.Exit(1)
