"""``oransim sweep`` and ``oransim reproduce``: the commands over many runs (see oransim.sweep)."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Optional

import numpy as np
import typer

from .cli import _fail, _reason, _say, err, out


class _SweepProgress:
    """A rich progress bar over a sweep's jobs, with the count of failed ones."""

    def __init__(self, label: str):
        self.label, self.bar, self.task = label, None, None

    def __call__(self, done: int, total: int, failed: int) -> None:
        if self.bar is None:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, \
                TimeRemainingColumn

            self.bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                TextColumn("jobs"), TimeElapsedColumn(), TimeRemainingColumn(), console=err)
            self.bar.start()
            self.task = self.bar.add_task(self.label, total=total)
        desc = self.label + (f" ({failed} failed)" if failed else "")
        self.bar.update(self.task, completed=done, description=desc)

    def close(self):
        if self.bar is not None:
            self.bar.stop()


def _stopped(name: str, folder: Path) -> None:
    """Before a signal's ``Stopped`` goes on up: say what is kept, and let the final message name
    the results table only (not every job record written)."""
    from simcore import outputs

    table = folder / "results.parquet"
    outputs.published.clear()
    if table.exists():
        outputs.published.append(table)
    _say(f"{name}: stopped; finished jobs are kept in {folder} (run the same command again to continue)")


def load_and_expand(sweep_file: Path):
    from .sweep import SweepError, expand, load_sweep

    try:
        spec = load_sweep(sweep_file)
        points, jobs = expand(spec, sweep_file)
    except SweepError as exc:
        exc.source = str(sweep_file)
        _fail(exc.lines())
    return spec, points, jobs


def execute(sweep_file: Path, out_dir: Optional[Path], workers: Optional[int], address: Optional[str],
            quiet: bool = False) -> tuple[Path, dict]:
    """Validate, expand and run a sweep (the body of ``oransim sweep``); returns (folder, summary)."""
    from oransim.guard import Stopped
    from simcore import outputs

    from .sweep_run import SweepRunError, prepare_folder, run_sweep

    spec, points, jobs = load_and_expand(sweep_file)
    if workers is None:
        workers = os.cpu_count() or 1
    if workers < 0:
        _fail([f"--workers: {workers} is negative (0 runs the jobs in this process, without Ray)"])
    if address is not None and workers == 0:
        _fail(["--workers 0 runs in this process: it cannot go with --address"])
    target = out_dir or Path("sweeps") / spec.name
    try:
        folder = prepare_folder(target, spec)
    except outputs.OutputError as exc:
        _fail([str(exc)])
    where = "in this process" if workers == 0 and address is None else (
        f"on Ray at {address}" if address else f"on a local Ray instance with {workers} CPU(s)")
    if not quiet:
        _say(f"{spec.name}: {len(points)} point(s) x {len(spec.seed_list)} seed(s): {len(jobs)} job(s), {where}")
    bar = _SweepProgress(spec.name)
    try:
        summary = run_sweep(spec, sweep_file, points, jobs, folder, workers, address,
                            progress=None if quiet else bar, say=_say)
    except Stopped:
        bar.close()
        _stopped(spec.name, folder)
        raise
    except outputs.OutputError as exc:
        _fail([str(exc)])
    except SweepRunError as exc:
        _fail([f"error: {exc}"], code=1)
    except OSError as exc:
        _fail([f"error: could not write in {folder}: {_reason(exc)}"], code=1)
    finally:
        bar.close()
    return folder, summary


def sweep(
    sweep_file: Path = typer.Argument(..., help="sweep YAML file (base scenario, grid, seeds, policies)"),
    address: Optional[str] = typer.Option(None, help="Ray cluster to use: ray://HOST:PORT or auto (default: a "
                                                     "local Ray instance started and stopped here)"),
    workers: Optional[int] = typer.Option(None, help="CPUs of the local Ray instance (default: all); 0 runs "
                                                     "the jobs one by one in this process, without Ray"),
    out_dir: Optional[Path] = typer.Option(None, "--out", help="sweep folder (default sweeps/NAME); an existing "
                                                               "folder of the same sweep is resumed"),
):
    """Run a sweep: every point x seed x policy as a DES run and/or an evaluation; one Parquet table."""
    folder, s = execute(sweep_file, out_dir, workers, address)
    for job_id, error in list(s["errors"].items())[:10]:
        _say(f"{folder}/jobs/{job_id}.json: failed: {error}")
    if len(s["errors"]) > 10:
        _say(f"... and {len(s['errors']) - 10} more failed job(s) (their jobs/*.json say why)")
    ray = f"; Ray started in {s['ray_start_s']:.1f} s" if s["ray_start_s"] is not None else ""
    out.print(f"{s['jobs']} job(s): {s['done']} run now, {s['skipped']} finished before, {s['failed']} failed{ray}; "
              f"table: {s['table']}", markup=False, highlight=False)
    if s["failed"]:
        raise typer.Exit(1)


def report_sweep(folder: Path, kpi: Optional[str], x: Optional[str], figure: Optional[Path]) -> None:
    """``oransim report SWEEP_DIR``: a KPI against a swept field, mean and 95 % CI over seeds, per policy."""
    from analysis.sweep_plots import SweepReportError, kpi_summary, load_sweep_folder, plot_kpi

    from .cli import _figure_target, _table

    try:
        sw = load_sweep_folder(folder)
        summary, kpi, x = kpi_summary(sw, kpi, x)
    except SweepReportError as exc:
        _fail([str(exc)])
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", f"{kpi}-vs-{x}").strip("_")[:120]
    png = _figure_target(figure or folder / f"{name}.png", "--figure" if figure else "figure")
    show = summary.reset_index().set_index("policy")
    out.print(_table(show, f"{sw.meta['name']}: {kpi} against {x} (mean and 95 % CI over seeds)"))
    try:
        plot_kpi(sw, kpi, x, png)
    except OSError as exc:
        _fail([f"error: could not write {png}: {_reason(exc)}"], code=1)
    out.print(f"figure: {png}", markup=False, highlight=False)


def reproduce(
    what: str = typer.Argument(..., help="what to reproduce: paper"),
    quick: bool = typer.Option(False, help="reduced budget (about 2 minutes on 2 cores): 2 seeds, 1 state per seed "
                                           "(Table II 3), a few values per swept field; in this process by default"),
    only: Optional[str] = typer.Option(None, help="comma-separated subset: table2,fig3b,fig3c,fig3d,fig3e,fig3f"),
    workers: Optional[int] = typer.Option(None, help="as for sweep: local Ray CPUs (default all; with --quick 0), "
                                                     "0 in this process"),
    address: Optional[str] = typer.Option(None, help="as for sweep: a Ray cluster (ray://HOST:PORT or auto)"),
    out_dir: Optional[Path] = typer.Option(None, "--out", help="folder of the sweeps (default reproduction[-quick]); "
                                                               "an existing one is resumed"),
    docs: Optional[Path] = typer.Option(None, help="where paper-reproduction.md and its img/paper/ PNGs go "
                                                   "(default: the --out folder)"),
):
    """Regenerate the paper's Table II and Fig. 3b-f from scenarios/paper/ (PNGs + paper-reproduction.md)."""
    import time

    from analysis.sweep_plots import SweepReportError, load_sweep_folder
    from oransim.guard import Stopped

    from . import reproduce as rp
    from .paper_page import write_markdown
    from .sweep import SweepError, expand

    if what != "paper":
        _fail([f"reproduce: unknown target '{what}' (available: paper)"])
    figs = list(rp.SWEEPS) if only is None else [f.strip() for f in only.split(",") if f.strip()]
    bad = [f for f in figs if f not in rp.SWEEPS]
    if bad or not figs:
        _fail([f"--only: unknown figure '{(bad or [''])[0]}' (available: {', '.join(rp.SWEEPS)})"])
    if workers is None:  # --quick: Ray's start-up and each worker's imports would cost more than its jobs
        workers = 0 if quick and address is None else (os.cpu_count() or 1)
    base = out_dir or Path("reproduction-quick" if quick else "reproduction")
    docs_dir = docs or base
    img_dir = docs_dir / "img" / "paper"
    learned = rp.learned_policies()
    try:
        specs = [(f, p, s) for f, p, s in rp.sweep_specs(quick, learned) if f in figs]
        for f, p, s in specs:
            expand(s, p)  # every sweep checked before the first starts
    except SweepError as exc:
        _fail(exc.lines())
    from simcore.outputs import OutputError

    from .sweep_run import SweepRunError, prepare_folder, run_sweep

    from .sweep_run import finished

    results, t0, cpu0, failed, compute_s = {}, time.perf_counter(), time.process_time(), 0, 0.0
    for fig, path, spec in specs:
        points, jobs = expand(spec, path)
        try:
            folder = prepare_folder(base / spec.name, spec)
        except OutputError as exc:
            _fail([str(exc)])
        _say(f"{fig}: {spec.name}: {len(points)} point(s) x {len(spec.seed_list)} seed(s), {len(jobs)} job(s)")
        bar = _SweepProgress(f"{fig}")
        try:
            s = run_sweep(spec, path, points, jobs, folder, workers, address, progress=bar, say=_say)
        except Stopped:
            bar.close()
            _stopped(spec.name, folder)
            raise
        except OutputError as exc:
            _fail([str(exc)])
        except SweepRunError as exc:
            _fail([f"error: {exc}"], code=1)
        finally:
            bar.close()
        failed += s["failed"]
        compute_s += sum(rec.get("wall_s", 0.0) for rec in (finished(folder, j) for j in jobs) if rec)
        for job_id, error in list(s["errors"].items())[:3]:
            _say(f"{folder}/jobs/{job_id}.json: failed: {error}")
        try:
            sw = load_sweep_folder(folder)
        except SweepReportError as exc:
            _say(f"{fig}: {exc}")
            continue
        results[fig] = sw.table
        png = rp.draw(fig, sw, img_dir)
        if png is not None:
            out.print(f"{fig}: {png}", markup=False, highlight=False)
    wall = time.perf_counter() - t0
    budget = ("`--quick`: " if quick else "full: ") + "; ".join(
        f"{f} {len(s.seed_list)} seeds x {s.evaluate.states} state(s) per seed x "
        f"{int(np.prod([len(v) for v in s.grid.values()])) if s.grid else 1} point(s)" for f, _, s in specs) + \
        f"; the jobs' wall times add up to {compute_s / 60:.1f} min"
    cpu = time.process_time() - cpu0
    if workers == 0 and address is None:  # every job ran here: the CPU time is the whole cost, whatever the load
        budget += f"; this command took {wall / 60:.1f} min, {cpu / 60:.1f} min of CPU time"
    md = write_markdown(docs_dir / "paper-reproduction.md", img_dir, results, learned, budget + ".", quick)
    out.print(f"page: {md}  ({wall / 60:.1f} min" + (f", CPU {cpu / 60:.1f} min)" if workers == 0 else ")"),
              markup=False, highlight=False)
    if failed:
        raise typer.Exit(1)
