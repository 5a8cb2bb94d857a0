"""``oransim`` command line: the composition root (scenario -> engine -> run folder -> report)."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="O-RAN network-slicing simulator: run scenarios, validate them, report on runs.")
err = Console(stderr=True)
out = Console(width=None if sys.stdout.isatty() else 160)


def _say(line: str) -> None:
    """One diagnostic line on stderr, never wrapped."""
    print(line, file=sys.stderr)


def _fail(lines, code: int = 2):
    for line in lines:
        _say(line)
    raise typer.Exit(code)


def _load(path: Path, **overrides):
    from simcore.scenario import ScenarioError, load_scenario

    try:
        scn = load_scenario(path)
        if any(v is not None for v in overrides.values()):
            scn = scn.with_overrides(**overrides)
    except ScenarioError as exc:
        exc.source = str(path)
        _fail(exc.lines())
    return scn


def _phy_problems(path: Path, scn) -> list[str]:
    """What the scenario's PHY backend cannot run, as FILE: field: message lines."""
    from simcore.plugins import PluginError, phy_scenario_problems

    try:
        return [f"{path}: {f}: {m}" for f, m in phy_scenario_problems(scn)]
    except PluginError as exc:
        return [f"{path}: {exc}"]


class _Progress:
    """A rich progress bar that appears only once a run has taken more than a second."""

    def __init__(self, label: str):
        self.label, self.t0, self.bar, self.task = label, time.perf_counter(), None, None

    def __call__(self, done: int, total: int) -> None:
        if self.bar is None:
            if time.perf_counter() - self.t0 < 1.0:
                return
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self.bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                TextColumn("TTIs"), TimeRemainingColumn(), console=err, transient=True)
            self.bar.start()
            self.task = self.bar.add_task(self.label, total=total)
        self.bar.update(self.task, completed=done)

    def close(self):
        if self.bar is not None:
            self.bar.stop()


@app.command()
def validate(scenario: Path = typer.Argument(..., help="scenario YAML file")):
    """Check a scenario file; print every problem as FILE: field.path: message (exit code 2)."""
    from simcore.plugins import PluginError, available
    from simcore.scenario import scenario_warnings

    scn = _load(scenario)
    problems = []
    if scn.policy.name not in available("oransim.policies"):
        problems.append(f"{scenario}: policy.name: unknown policy '{scn.policy.name}' "
                        f"(available: {', '.join(available('oransim.policies'))})")
    if scn.phy.backend not in available("oransim.phy"):
        problems.append(f"{scenario}: phy.backend: unknown PHY '{scn.phy.backend}' "
                        f"(available: {', '.join(available('oransim.phy'))})")
    if problems:
        _fail(problems)
    problems = _phy_problems(scenario, scn)
    if problems:
        _fail(problems)
    try:
        from simcore.plugins import make_policy

        make_policy(scn.policy.name, scn.policy.params)
    except PluginError as exc:
        _fail([f"{scenario}: {exc}"])
    for path, msg in scenario_warnings(scn):
        _say(f"{scenario}: warning: {path}: {msg}")
    out.print(f"{scenario}: OK ({scn.n_ues} UEs, {scn.n_ru} RU(s) x {scn.cell.prbs_per_ru} PRBs, "
              f"{scn.n_tti} TTIs of {scn.cell.tti_s * 1e3:g} ms, policy {scn.policy.name}, PHY {scn.phy.backend})",
              markup=False, highlight=False)


@app.command()
def run(
    scenario: Path = typer.Argument(..., help="scenario YAML file"),
    policy: Optional[str] = typer.Option(None, help="policy name (overrides the scenario's)"),
    seed: Optional[int] = typer.Option(None, help="random seed (overrides the scenario's)"),
    duration: Optional[float] = typer.Option(None, help="simulated seconds (overrides the scenario's)"),
    phy: Optional[str] = typer.Option(None, help="PHY backend name (overrides the scenario's)"),
    out_dir: Optional[Path] = typer.Option(None, "--out", help="run folder (default runs/NAME-POLICY-seedN)"),
    overwrite: bool = typer.Option(False, help="replace an existing run folder (only once the new one is complete)"),
    report_after: bool = typer.Option(False, "--report", help="print the report and write its figure afterwards"),
):
    """Simulate a scenario and write its run folder (manifest + packets/tti/decisions tables)."""
    from simcore.engine import SimulationError
    from simcore.plugins import PluginError
    from simcore.recorder import RunExistsError
    from simcore.run import save_run, simulate
    from simcore.scenario import scenario_warnings

    scn = _load(scenario, policy=policy, seed=seed, duration_s=duration, phy=phy)
    for path, msg in scenario_warnings(scn):
        _say(f"{scenario}: warning: {path}: {msg}")
    problems = _phy_problems(scenario, scn)
    if problems:
        _fail(problems)
    target = out_dir or Path("runs") / f"{scn.name}-{scn.policy.name}-seed{scn.seed}"
    if target.exists() and not overwrite:
        _fail([f"{target}: run folder already exists (pass --overwrite to replace it, or --out elsewhere)"])
    bar = _Progress(f"{scn.name} / {scn.policy.name}")
    try:
        result = simulate(scn, progress=bar)
    except PluginError as exc:
        _fail([f"{scenario}: {exc}"])
    except SimulationError as exc:
        _fail([f"error: {exc}"], code=1)
    finally:
        bar.close()
    try:
        folder = save_run(result, target, scenario_file=str(scenario), overwrite=overwrite)
    except RunExistsError as exc:
        _fail([str(exc)])
    c = result.counts
    out.print(f"wrote {folder}  ({scn.n_tti} TTIs in {result.wall_s:.2f} s = {scn.n_tti / max(result.wall_s, 1e-9):,.0f} TTI/s; "
              f"packets: {c['generated_packets']} generated, {c['delivered_packets']} delivered, "
              f"{c['dropped_packets']} dropped, {c['queued_packets'] + c['processing_packets']} still queued)",
              markup=False, highlight=False)
    if report_after:
        report(folder, figure=None)


def _table(df, title: str, fmt: str = "{:.3g}") -> Table:
    t = Table(title=title, title_justify="left", min_width=len(title) + 4)
    t.add_column(df.index.name or "", style="bold")
    for c in df.columns:
        t.add_column(str(c), justify="right")
    integer = [df[c].dtype.kind in "iu" for c in df.columns]
    for idx, row in zip(df.index, df.itertuples(index=False)):
        t.add_row(str(idx), *[str(int(v)) if is_int else fmt.format(v) for v, is_int in zip(row, integer)])
    return t


@app.command()
def report(
    run_dir: Path = typer.Argument(..., help="run folder written by `oransim run`"),
    figure: Optional[Path] = typer.Option(None, help="PNG path (default RUN_DIR/report.png)"),
):
    """Per-slice throughput, delay percentiles, drops and QoS satisfaction; saves a seaborn figure."""
    from analysis.kpis import RunFolderError, delay_components, delay_percentiles, load_run, slice_kpis
    from analysis.plots import plot_run

    try:
        r = load_run(run_dir)
    except RunFolderError as exc:
        _fail([str(exc)])
    m = r.manifest
    out.print(f"[bold]{m['scenario']['name']}[/] policy={m['policy']['name']} seed={m['seed']} "
              f"PHY={m['phy']['backend']} simulated={m['simulated_s']:g} s git={m['git_revision'][:12]}")
    k = slice_kpis(r)
    cols = {"ues": "UEs", "offered_mbps": "offered Mb/s", "throughput_mbps": "tput Mb/s", "goodput_mbps": "goodput Mb/s",
            "mean_delay_ms": "mean delay ms", "drop_pct": "drop %", "drop_deadline": "drop:deadline",
            "drop_buffer_full": "drop:buffer", "delay_qos_pct": "delay QoS %", "rate_qos_pct": "rate QoS %"}
    out.print(_table(k[[c for c in cols if c in k.columns]].rename(columns=cols), "Per-slice KPIs"))
    out.print(_table(delay_percentiles(r), "Delay percentiles of delivered packets (ms)"))
    out.print(_table(delay_components(r), "Mean delay components (ms)"))
    png = plot_run(r, figure or Path(run_dir) / "report.png")
    out.print(f"figure: {png}", markup=False, highlight=False)


@app.command()
def evaluate(
    scenario: Path = typer.Argument(..., help="scenario YAML file (its cell, slices and traffic)"),
    policies: str = typer.Option("pf,maxcqi,rr", help="comma-separated policy names"),
    states: int = typer.Option(20, min=1, help="number of sampled snapshot states"),
    seed: Optional[int] = typer.Option(None, help="first seed (default: the scenario's)"),
    optimum: str = typer.Option("auto", help="esa, optimal, or auto (esa when its space is small enough)"),
    warmup_tti: int = typer.Option(200, min=1, help="TTIs each state's network runs before it is sampled"),
    out_csv: Optional[Path] = typer.Option(None, "--out", help="CSV path (default evaluate-NAME.csv)"),
):
    """Run sampled snapshot states through each policy and the optimum; print and save the agreement table."""
    import os
    import tempfile

    from oransim.evaluate import evaluate as run_evaluation
    from oransim.evaluate import sample_states
    from simcore.plugins import PluginError, available

    scn = _load(scenario)
    names = [n.strip() for n in policies.split(",") if n.strip()]
    known = available("oransim.policies")
    for n in [*names, *([] if optimum == "auto" else [optimum])]:
        if n not in known:
            _fail([f"{scenario}: --policies: unknown policy '{n}' (available: {', '.join(known)})"])
    first = scn.seed if seed is None else seed
    bar = _Progress(f"{scn.name}: sampling states")
    try:
        obs = sample_states(scn, states, first, warmup_tti, progress=bar)
        bar.close()
        bar = _Progress(f"{scn.name}: deciding")
        table, _ = run_evaluation(obs, names, optimum=optimum, seed=first, progress=bar)
    except (PluginError, ValueError, RuntimeError) as exc:
        _fail([f"{scenario}: {exc}"])
    finally:
        bar.close()
    target = out_csv or Path(f"evaluate-{scn.name}.csv")
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}-", dir=target.parent if str(target.parent) else ".")
    os.close(fd)
    try:
        table.to_csv(tmp)
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    show = table.rename(columns={"throughput_ratio": "w-tput / opt", "qos_pct": "QoS %", "mae": "MAE", "r2": "R2",
                                 "cosine": "cosine", "baep_pct": "BAEP %", "decide_ms": "decide ms"})
    out.print(_table(show, f"{scn.name}: {states} states against the optimum ({table.attrs['optimum']})"))
    out.print(f"table: {target}", markup=False, highlight=False)


xapp_app = typer.Typer(no_args_is_help=True, help="Run policies as near-RT RIC xApps over ZeroMQ (docs/xapp.md).")
app.add_typer(xapp_app, name="xapp")


@xapp_app.command("serve")
def xapp_serve(
    policy: str = typer.Argument(..., help="registered policy name (rr, pf, maxcqi, esa, optimal, ...)"),
    params: list[str] = typer.Option([], "--params", help="KEY=VALUE (VALUE as YAML) or a mapping '{key: value}'; repeatable"),
    bind: str = typer.Option("tcp://127.0.0.1:5555", help="ZeroMQ endpoint to answer on (tcp://HOST:PORT or ipc://PATH)"),
):
    """Answer the RIC's indications with POLICY's allocations until stopped (Ctrl-C or SIGTERM)."""
    from oransim.xapp import UsageError, serve_policy

    try:
        serve_policy(policy, params, bind, say=_say)
    except UsageError as exc:
        _fail([f"xapp serve: {exc}"])
    except KeyboardInterrupt:
        _fail(["xapp serve: stopped"], code=130)


def main():  # entry point of the `oransim` script
    import signal

    def _terminated(signum, frame):  # `docker stop`, `kill`: unwind, so that child processes and shared memory are cleaned up
        print(f"oransim: stopped by signal {signum}; no run folder written", file=sys.stderr)
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, _terminated)
    app()


if __name__ == "__main__":
    sys.exit(main())
