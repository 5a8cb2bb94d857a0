"""``oransim`` command line: the composition root (scenario -> engine -> run folder -> report)."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from simcore.threads import ThreadsError, pin_threads

try:  # before any command imports numpy or torch: their thread pools take their size when they start
    pin_threads()
except ThreadsError:
    pass  # main() reports it

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


#: CLI options that override scenario fields: errors about those fields name the option.
_OPTION_OF = {"seed": "--seed", "duration_s": "--duration", "policy.name": "--policy", "phy.backend": "--phy"}


def _load(path: Path, **overrides):
    from simcore.scenario import ScenarioError, load_scenario

    try:
        scn = load_scenario(path)
    except ScenarioError as exc:
        exc.source = str(path)
        _fail(exc.lines())
    if any(v is not None for v in overrides.values()):
        try:
            scn = scn.with_overrides(**overrides)
        except ScenarioError as exc:
            _fail([f"{_OPTION_OF[f]}: {m}" if f in _OPTION_OF else f"{path}: {f}: {m}" for f, m in exc.problems])
    return scn


def _preflight(path, scn) -> list[str]:
    """Everything ``run`` checks before it starts, beyond the schema: plug-in names, parameters and
    limits, and the memory estimate; as FILE: field: message lines (empty if the run can start)."""
    from simcore.run import preflight

    return [f"{path}: {f}: {m}" for f, m in preflight(scn)]


def _reason(exc: BaseException) -> str:
    """The cause in one line: an OSError's strerror (with its file), else the message's first line."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror + (f": {exc.filename}" if exc.filename else "")
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


class _Progress:
    """A rich progress bar that appears only once a run has taken more than a second."""

    def __init__(self, label: str, unit: str = "TTIs"):
        self.label, self.unit, self.t0, self.bar, self.task = label, unit, time.perf_counter(), None, None

    def __call__(self, done: int, total: int) -> None:
        if self.bar is None:
            if time.perf_counter() - self.t0 < 1.0:
                return
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self.bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                TextColumn(self.unit), TimeRemainingColumn(), console=err, transient=True)
            self.bar.start()
            self.task = self.bar.add_task(self.label, total=total)
        self.bar.update(self.task, completed=done)

    def close(self):
        if self.bar is not None:
            self.bar.stop()


@app.command()
def validate(scenario: Path = typer.Argument(..., help="scenario YAML file")):
    """Check a scenario as `run` would before starting: schema, plug-ins and their parameters, PHY
    limits, memory; print every problem as FILE: field.path: message (exit code 2)."""
    from simcore.budget import estimate, gib
    from simcore.scenario import scenario_warnings

    scn = _load(scenario)
    problems = _preflight(scenario, scn)
    if problems:
        _fail(problems)
    for path, msg in scenario_warnings(scn):
        _say(f"{scenario}: warning: {path}: {msg}")
    out.print(f"{scenario}: OK ({scn.n_ues} UEs, {scn.n_ru} RU(s) x {scn.cell.prbs_per_ru} PRBs, "
              f"{scn.n_tti} TTIs of {scn.cell.tti_s * 1e3:g} ms, policy {scn.policy.name}, PHY {scn.phy.backend}; "
              f"memory about {gib(estimate(scn).memory_bytes)})", markup=False, highlight=False)


@app.command()
def run(
    scenario: Path = typer.Argument(..., help="scenario YAML file"),
    policy: Optional[str] = typer.Option(None, help="policy name, or NAME:CHECKPOINT for a learned one (overrides the scenario's)"),
    seed: Optional[int] = typer.Option(None, help="random seed (overrides the scenario's)"),
    duration: Optional[float] = typer.Option(None, help="simulated seconds (overrides the scenario's)"),
    phy: Optional[str] = typer.Option(None, help="PHY backend name (overrides the scenario's)"),
    out_dir: Optional[Path] = typer.Option(None, "--out", help="run folder (default runs/NAME-POLICY-seedN)"),
    overwrite: bool = typer.Option(False, help="replace an existing oransim run folder (only once the new one is complete)"),
    report_after: bool = typer.Option(False, "--report", help="print the report and write its figure afterwards"),
):
    """Simulate a scenario and write its run folder (manifest + packets/tti/decisions tables)."""
    import os
    import shutil

    from simcore.budget import estimate
    from simcore.engine import SimulationError
    from simcore.outputs import OutputError, check_folder_target, staging_folder
    from simcore.plugins import PluginError, policy_spec
    from simcore.run import save_run, simulate
    from simcore.scenario import PolicyConfig, scenario_warnings

    policy_name, policy_params = policy_spec(policy) if policy else (None, {})
    scn = _load(scenario, policy=policy_name, seed=seed, duration_s=duration, phy=phy)
    if policy_params:  # NAME:CHECKPOINT
        scn = scn.model_copy(update={"policy": PolicyConfig(name=policy_name, params=policy_params)})
    for path, msg in scenario_warnings(scn):
        _say(f"{scenario}: warning: {path}: {msg}")
    problems = _preflight(scenario, scn)
    if problems:
        _fail(problems)
    target = out_dir or Path("runs") / f"{scn.name}-{scn.policy.name}-seed{scn.seed}"
    try:
        target = check_folder_target(target, overwrite, need_bytes=estimate(scn).disk_bytes)
    except OutputError as exc:
        _fail([str(exc)])
    existed = os.path.lexists(target)
    bar = _Progress(f"{scn.name} / {scn.policy.name}")
    created = [d for d in (target.parent, *target.parent.parents) if not d.exists()]  # deepest first
    staging = staging_folder(target)  # the tables are written there while the run goes, published at the end
    folder = None
    try:
        try:
            result = simulate(scn, progress=bar, spool_dir=staging)
        except PluginError as exc:
            _fail([f"{scenario}: {exc}"])
        except SimulationError as exc:
            _fail([f"error: {exc}"], code=1)
        except OSError as exc:  # writing the spooled tables: full disk, a vanished folder
            kept = "the existing folder is unchanged" if existed else "nothing was written"
            _fail([f"error: could not write {target}: {_reason(exc)}; {kept}"], code=1)
        finally:
            bar.close()
        if not existed and os.path.lexists(target):
            _fail([f"error: {target} appeared while this run was working (another run writing there?); it was "
                   f"left as it is and this run's results were not written"], code=1)
        try:
            folder = save_run(result, target, scenario_file=str(scenario), overwrite=overwrite)
        except OutputError as exc:
            _fail([f"error: {exc}"], code=1)
        except (OSError, ValueError) as exc:  # full disk, a vanished folder; pyarrow's errors are OSError/ValueError
            kept = "the existing folder is unchanged" if existed else "nothing was written"
            _fail([f"error: could not write {target}: {_reason(exc)}; {kept}"], code=1)
    finally:
        shutil.rmtree(staging, ignore_errors=True)  # gone already once published
        if folder is None:  # nothing written: remove the folders made for the staging folder
            for d in created:
                try:
                    d.rmdir()
                except OSError:
                    break
    c = result.counts
    out.print(f"wrote {folder}  ({scn.n_tti} TTIs in {result.wall_s:.2f} s = {scn.n_tti / max(result.wall_s, 1e-9):,.0f} TTI/s; "
              f"packets: {c['generated_packets']} generated, {c['delivered_packets']} delivered, "
              f"{c['dropped_packets']} dropped, {c['queued_packets'] + c['processing_packets']} still queued)",
              markup=False, highlight=False)
    if report_after:
        report(folder, figure=None, kpi=None, x=None)


def _table(df, title: str, fmt: str = "{:.3g}") -> Table:
    t = Table(title=title, title_justify="left", min_width=len(title) + 4)
    t.add_column(df.index.name or "", style="bold")
    for c in df.columns:
        t.add_column(str(c), justify="right")
    integer = [df[c].dtype.kind in "iu" for c in df.columns]
    for idx, row in zip(df.index, df.itertuples(index=False)):
        t.add_row(str(idx), *[str(int(v)) if is_int else v if isinstance(v, str) else fmt.format(v)
                              for v, is_int in zip(row, integer)])
    return t


def _figure_target(figure: Path, label: str) -> Path:
    """A PNG path to write; an existing file there is replaced only if it is a PNG image."""
    from simcore.outputs import OutputError, check_file_target

    try:
        is_png = figure.is_file() and figure.open("rb").read(8) == PNG_MAGIC
        if figure.is_file() and not is_png and figure.suffix.lower() == ".png":
            raise OutputError(f"{label}: {figure} exists and is not a PNG image; not replaced")
        return check_file_target(figure, ".png", overwrite=is_png, label=label)
    except OutputError as exc:
        _fail([str(exc)])
    except OSError as exc:
        _fail([f"{label}: {figure}: {_reason(exc)}"])


PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@app.command()
def report(
    run_dir: Path = typer.Argument(..., help="run folder written by `oransim run`, or a sweep folder"),
    figure: Optional[Path] = typer.Option(None, help="PNG path (default RUN_DIR/report.png; for a sweep "
                                                     "SWEEP_DIR/KPI-vs-FIELD.png)"),
    kpi: Optional[str] = typer.Option(None, help="sweep folder: the KPI column to plot (default the throughput)"),
    x: Optional[str] = typer.Option(None, help="sweep folder: the swept field on the x axis (default the last one)"),
):
    """Per-slice throughput, delay percentiles, drops and QoS satisfaction; saves a seaborn figure.
    Given a sweep folder: a KPI against a swept field, mean and 95 % CI over seeds, per policy."""
    from rich.markup import escape

    if (Path(run_dir) / "sweep.json").is_file():
        from .sweep_cli import report_sweep

        return report_sweep(Path(run_dir), kpi, x, figure)
    if kpi is not None or x is not None:
        _fail([f"--kpi/--x: {run_dir} is a run folder; they apply to a sweep folder"])

    from analysis.kpis import RunFolderError, delay_components, delay_percentiles, load_run, slice_kpis
    from analysis.plots import plot_run

    try:
        r = load_run(run_dir)
    except RunFolderError as exc:
        _fail([str(exc)])
    png = _figure_target(figure or Path(run_dir) / "report.png", "--figure" if figure else "figure")
    m = r.manifest
    out.print(f"[bold]{escape(str(m['scenario']['name']))}[/] policy={escape(str(m['policy']['name']))} seed={m['seed']} "
              f"PHY={escape(str(m['phy']['backend']))} simulated={m['simulated_s']:g} s git={escape(str(m['git_revision'])[:12])}")
    if not len(r.packets):
        why = "record.packets was false" if not m["scenario"].get("record", {}).get("packets", True) else "none arrived"
        _say(f"{run_dir}: note: no packet rows ({why}): packet KPIs and delays are empty")
    k = slice_kpis(r)
    cols = {"ues": "UEs", "offered_mbps": "offered Mb/s", "throughput_mbps": "tput Mb/s", "goodput_mbps": "goodput Mb/s",
            "mean_delay_ms": "mean delay ms", "drop_pct": "drop %", "drop_deadline": "drop:deadline",
            "drop_buffer_full": "drop:buffer", "delay_qos_pct": "delay QoS %", "rate_qos_pct": "rate QoS %"}
    out.print(_table(k[[c for c in cols if c in k.columns]].rename(columns=cols), "Per-slice KPIs"))
    out.print(_table(delay_percentiles(r), "Delay percentiles of delivered packets (ms)"))
    out.print(_table(delay_components(r), "Mean delay components (ms)"))
    try:
        plot_run(r, png)
    except OSError as exc:
        _fail([f"error: could not write {png}: {_reason(exc)}"], code=1)
    out.print(f"figure: {png}", markup=False, highlight=False)


@app.command()
def evaluate(
    scenario: Path = typer.Argument(..., help="scenario YAML file (its cell, slices and traffic)"),
    policies: str = typer.Option("pf,maxcqi,rr", help="comma-separated policy names; NAME:CHECKPOINT for a learned one"),
    states: int = typer.Option(20, min=1, help="number of sampled snapshot states"),
    seed: Optional[int] = typer.Option(None, help="first seed (default: the scenario's)"),
    optimum: str = typer.Option("auto", help="esa, optimal, or auto (esa when its space is small enough)"),
    objective: str = typer.Option("served", help="served (buffer-aware) or rate (the paper's full-buffer objective)"),
    warmup_tti: int = typer.Option(200, min=1, help="TTIs each state's network runs before it is sampled"),
    out_csv: Optional[Path] = typer.Option(None, "--out", help="CSV path (default evaluate-NAME.csv)"),
    overwrite: bool = typer.Option(False, help="replace an existing CSV file at --out"),
):
    """Run sampled snapshot states through each policy and the optimum; print and save the agreement table."""
    from oransim.evaluate import OPTIMA
    from oransim.evaluate import evaluate as run_evaluation
    from oransim.evaluate import sample_states
    from simcore.outputs import OutputError, check_file_target, publish_file
    from simcore.plugins import PluginError, available, make_policy, policy_spec
    from simcore.scenario import ScenarioError
    from simcore.snapshot import OBJECTIVES

    names = [n.strip() for n in policies.split(",") if n.strip()]
    known = available("oransim.policies")
    if not names:
        _fail([f"--policies: no policy named (available: {', '.join(known)})"])
    for n in names:
        if policy_spec(n)[0] not in known:
            from .sweep import unknown_policy

            _fail([f"--policies: {unknown_policy(policy_spec(n)[0], known)}"])
        if names.count(n) > 1:
            _fail([f"--policies: '{n}' is named twice"])
    if optimum not in ("auto", *OPTIMA):
        _fail([f"--optimum: '{optimum}' is not an optimum (choose auto, {', '.join(OPTIMA)})"])
    if objective not in OBJECTIVES:
        _fail([f"--objective: unknown objective '{objective}' (available: {', '.join(OBJECTIVES)})"])
    scn = _load(scenario)
    for n in names:  # a learned policy's checkpoint must fit the scenario: checked before any work
        name, params = policy_spec(n)
        if params:
            try:
                pol = make_policy(name, params)
            except PluginError as exc:
                _fail([f"{scenario}: {exc}"])
            fits = getattr(pol, "scenario_problems", lambda _scn: [])(scn)
            if fits:
                _fail([f"{scenario}: {f}: {m}" for f, m in fits])
    first = scn.seed if seed is None else seed
    if not 0 <= first <= 2**63 - states:
        _fail([f"--seed: states use seeds {first}..{first + states - 1}: must be within 0..2^63-1"])
    try:
        sample = scn.with_overrides(duration_s=warmup_tti * scn.cell.tti_s)
    except ScenarioError as exc:
        _fail([f"--warmup-tti: {m}" if f == "duration_s" else f"{scenario}: {f}: {m}" for f, m in exc.problems])
    problems = _preflight(scenario, sample)
    if problems:
        _fail(problems)
    try:
        target = check_file_target(out_csv or Path(f"evaluate-{scn.name}.csv"), ".csv", overwrite, "--out")
    except OutputError as exc:
        _fail([str(exc)])
    bar = _Progress(f"{scn.name}: sampling states")
    try:
        obs = sample_states(scn, states, first, warmup_tti, progress=bar)
        bar.close()
        bar = _Progress(f"{scn.name}: deciding")
        table, _ = run_evaluation(obs, names, optimum=optimum, seed=first, progress=bar, objective=objective)
    except (PluginError, ValueError, RuntimeError) as exc:
        _fail([f"{scenario}: {exc}"], code=1)
    finally:
        bar.close()
    try:
        publish_file(target, lambda tmp: table.to_csv(tmp), overwrite=overwrite)
    except OSError as exc:
        _fail([f"error: could not write {target}: {_reason(exc)}; nothing was written"], code=1)
    show = table.rename(columns={"throughput_ratio": "w-tput / opt", "qos_pct": "QoS %", "mae": "MAE", "r2": "R2",
                                 "cosine": "cosine", "baep_pct": "BAEP %", "decide_ms": "decide ms"})
    show = show.rename(columns={"gap_pct": "gap %"})
    modes = "+".join(table.attrs.get("optimum_modes", []))
    opt_desc = table.attrs["optimum"] if modes in ("", "exhaustive") else (
        f"{table.attrs['optimum']}: {modes}, gap <= {table.attrs['optimum_gap_pct']:.3g} %")
    out.print(_table(show, f"{scn.name}: {states} states against the optimum ({opt_desc}, objective {objective})"))
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


from .learn_cli import dataset as _dataset_cmd, train as _train_cmd  # noqa: E402 - they use the helpers above

from .sweep_cli import reproduce as _reproduce_cmd, sweep as _sweep_cmd  # noqa: E402

from .calibrate import calibrate as _calibrate_cmd  # noqa: E402

app.command("dataset")(_dataset_cmd)
app.command("sweep")(_sweep_cmd)
app.command("reproduce")(_reproduce_cmd)
app.command("calibrate")(_calibrate_cmd)
app.command("train", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})(_train_cmd)


def _stopped(exc, published) -> int:
    done = ", ".join(map(str, published))
    _say(f"oransim: stopped by signal {exc.signum} ({exc.name}); " + (
        f"{done} had been written" if done else "nothing was written, existing outputs are unchanged"))
    return exc.exit_code


def main(argv: list[str] | None = None) -> int:
    """The ``oransim`` script: runs one command and returns its exit code. Signals unwind the stack
    (``oransim.guard``); anything unexpected ends in one line, not a traceback."""
    import os

    from oransim.guard import Stopped, signal_in, signals_as_exceptions
    from simcore import outputs

    try:  # again: a caller may have imported numpy or torch before this module (docs/cli.md, "Threads")
        pin_threads()
    except ThreadsError as exc:
        _say(f"oransim: {exc}")
        return 2
    try:
        with signals_as_exceptions():
            try:
                app(args=argv, prog_name="oransim")
            except SystemExit as exc:
                return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except Stopped as exc:
        return _stopped(exc, outputs.published)
    except MemoryError:
        _say("oransim: out of memory (the estimate `oransim validate` makes missed this case; please report it)")
        return 1
    except Exception as exc:  # a bug: say so in one line; ORANSIM_DEBUG=1 shows where
        stop = signal_in(exc)
        if isinstance(stop, Stopped):  # the signal surfaced inside compiled code (oransim.guard.signal_in)
            return _stopped(stop, outputs.published)
        if os.environ.get("ORANSIM_DEBUG"):
            raise
        _say(f"oransim: internal error: {type(exc).__name__}: {_reason(exc)} (please report it; "
             f"ORANSIM_DEBUG=1 shows the traceback)")
        return 70
    return 0


if __name__ == "__main__":
    sys.exit(main())
