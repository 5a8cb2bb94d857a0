"""Running a sweep: its folder, the executors (in this process or on Ray), the results table.

A sweep folder (``--out``, default ``sweeps/NAME``) holds::

    sweep.json          what was swept (marker ``oransim_sweep``, the spec, the swept fields)
    jobs/JOB_ID.json    one finished job each: its key, rows of KPIs or its error (written atomically)
    runs/JOB_ID/        the run folder of each DES job (as ``oransim run`` writes it)
    results.parquet     one row per point x seed x policy (rebuilt from jobs/ at the end)

Resuming: a job whose ``jobs/JOB_ID.json`` exists with the same key and no error is skipped;
failed jobs are tried again. Only one sweep may work in a folder at a time (an advisory lock on
the folder). Every file appears whole or not at all: job records and the table through
``simcore.outputs.publish_file``, run folders through ``publish_folder``; on a signal the stack
unwinds, Ray is shut down (its workers stopped), finished jobs keep their records and the table
is rewritten from them, so a re-run continues where this one stopped.

Executors: ``workers == 0`` runs jobs one after the other in this process (no Ray); otherwise a
local Ray instance with ``workers`` CPUs is started and stopped here, or, with ``address``
(``ray://HOST:PORT``, ``auto``), the jobs go to that cluster. Ray workers write run folders where
they run: on a cluster, the sweep folder must be on a file system every node sees.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import errno
import fcntl
import json
import os
import re
import shutil
from dataclasses import asdict
from pathlib import Path
from typing import Callable

import pandas as pd

from simcore.outputs import OutputError, check_folder_target, publish_file

from .sweep import Job, Point, SweepSpec, code_fingerprint
from .sweep_jobs import run_job

MARKER = "oransim_sweep"


class SweepRunError(RuntimeError):
    """The sweep cannot go on (Ray could not be started or reached); one line."""
_STAGING = re.compile(r"^\..+\.tmp-[0-9a-f]{8}(\.json)?$")


def prepare_folder(out: Path, spec: SweepSpec) -> Path:
    """Check or create the sweep folder; a folder that exists must be this sweep's (same name)."""
    out = Path(os.path.abspath(out))
    if out.exists():
        if not out.is_dir():
            raise OutputError(f"--out: {out} is a file, not a sweep folder")
        meta = out / "sweep.json"
        if not meta.is_file():
            if any(out.iterdir()):
                raise OutputError(f"--out: {out} exists and is not a sweep folder (no sweep.json); choose another --out")
        else:
            try:
                prev = json.loads(meta.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                raise OutputError(f"--out: {out}/sweep.json is unreadable ({exc}); not a sweep folder") from None
            if not isinstance(prev, dict) or MARKER not in prev:
                raise OutputError(f"--out: {out}/sweep.json has no '{MARKER}' marker: not a sweep folder")
            if prev.get("name") != spec.name:
                raise OutputError(f"--out: {out} holds sweep '{prev.get('name')}', not '{spec.name}'; "
                                  f"choose another --out")
        return out
    return check_folder_target(out, overwrite=False)


@contextlib.contextmanager
def locked(out: Path):
    """Hold an exclusive advisory lock on the sweep folder (one sweep working in it at a time)."""
    out.mkdir(parents=True, exist_ok=True)
    fd = os.open(out, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise OutputError(f"--out: another oransim sweep is working in {out}") from None
            raise
        yield
    finally:
        os.close(fd)  # releases the lock


def remove_leftovers(out: Path) -> int:
    """Remove staging folders and temporary files a killed worker left (call holding the lock)."""
    n = 0
    for sub in ("runs", "jobs", "."):
        d = out / sub
        if not d.is_dir():
            continue
        for entry in os.listdir(d):
            if _STAGING.match(entry):
                p = d / entry
                shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)
                n += 1
    return n


def _job_file(out: Path, job: Job) -> Path:
    return out / "jobs" / f"{job.job_id}.json"


def finished(out: Path, job: Job) -> dict | None:
    """The job's stored record if it finished without error under the same key, else None."""
    try:
        rec = json.loads(_job_file(out, job).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return rec if isinstance(rec, dict) and rec.get("key") == job.key and rec.get("ok") else None


def _write_json(path: Path, data: dict) -> None:
    def write(tmp: Path) -> None:
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=1, sort_keys=True, default=_plain)
            fh.flush()
            os.fsync(fh.fileno())

    publish_file(path, write, overwrite=True)


def _plain(obj):
    import numpy as np

    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    return str(obj)


def write_meta(out: Path, spec: SweepSpec, sweep_file: Path, points: list[Point], jobs: list[Job]) -> None:
    _write_json(out / "sweep.json", {
        MARKER: 1, "name": spec.name, "sweep_file": str(sweep_file), "spec": spec.model_dump(mode="json"),
        "swept": list(dict.fromkeys([*(k for p in spec.points for k in p), *spec.grid])),
        "points": [{"point": p.index, **p.values} for p in points],
        "policies": list(spec.policies), "seeds": spec.seed_list, "jobs": len(jobs), "code": code_fingerprint(),
        "updated_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    })


def results_table(out: Path, points: list[Point], jobs: list[Job], labels: dict[str, str]) -> pd.DataFrame:
    """One row per point x seed x policy from the stored job records (jobs not finished: no row).
    ``labels`` maps a job's policy (checkpoint path resolved) to the name the sweep file gives."""
    rows: dict[tuple, dict] = {}
    values = {p.index: p.values for p in points}
    for job in jobs:
        try:
            rec = json.loads(_job_file(out, job).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if not isinstance(rec, dict) or rec.get("key") != job.key:
            continue
        for r in rec.get("rows", []):
            pol = labels.get(r["policy"], r["policy"])
            row = rows.setdefault((job.point, job.seed, pol),
                                  {"point": job.point, **values[job.point], "seed": job.seed, "policy": pol})
            row.update({k: v for k, v in r.items() if k != "policy"})
    df = pd.DataFrame(list(rows.values()))
    if len(df):
        df = df.sort_values(["point", "seed", "policy"], kind="stable").reset_index(drop=True)
    return df


def write_table(out: Path, table: pd.DataFrame) -> Path:
    return publish_file(out / "results.parquet", lambda tmp: table.to_parquet(tmp, index=False), overwrite=True)


# ------------------------------------------------------------------------------ executors
def _job_dict(job: Job) -> dict:
    return asdict(job)


def run_serial(jobs: list[Job], out: Path, on_done: Callable[[dict], None]) -> None:
    for job in jobs:
        on_done(run_job(_job_dict(job), str(out)))


def run_ray(jobs: list[Job], out: Path, on_done: Callable[[dict], None], workers: int,
            address: str | None = None, on_started: Callable[[float], None] | None = None) -> None:
    """Jobs as Ray tasks (one CPU each) on a local instance with ``workers`` CPUs, or on ``address``."""
    import logging
    import time

    try:
        import ray
    except ImportError:
        raise SweepRunError("Ray is not installed (pip install 'oransim[sweep]'); --workers 0 runs the jobs "
                            "in this process") from None
    t0 = time.perf_counter()
    kwargs = dict(include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
    failure = None
    for attempt in (1, 2):
        try:
            ray.init(**({"num_cpus": workers} if address is None else {"address": address}), **kwargs)
            failure = None
            break
        except Exception as exc:  # no cluster there, a raylet that did not start in time (an overloaded machine)
            ray.shutdown()
            failure = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            if not (attempt == 1 and address is None and "timed out during startup" in failure):
                break  # Ray gives a local raylet a fixed 30 s to register: a busy machine can miss it once
    if failure is not None:
        where = f"connect to Ray at {address}" if address else "start a local Ray instance"
        raise SweepRunError(f"could not {where}: {failure} (--workers 0 runs the jobs in this process)")
    try:
        if on_started is not None:
            on_started(time.perf_counter() - t0)
        task = ray.remote(num_cpus=1, max_retries=0)(run_job)
        pending = {task.remote(_job_dict(j), str(out)): j for j in jobs}
        while pending:
            done = _signal_safe(ray.wait, list(pending), num_returns=1, timeout=0.5)[0]
            for ref in done:
                job = pending.pop(ref)
                try:
                    rec = _signal_safe(ray.get, ref)
                except Exception as exc:  # the worker died (out of memory, killed): the job failed
                    err = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
                    col = "run_error" if job.mode == "run" else "eval_error"
                    rec = {"key": job.key, "job_id": job.job_id, "mode": job.mode, "ok": False,
                           "error": f"{type(exc).__name__}: {err}",
                           "rows": [{"policy": p, col: f"{type(exc).__name__}: {err}"} for p in job.policies]}
                on_done(rec)
    finally:
        ray.shutdown()


def _signal_safe(fn, *args, **kwargs):
    """Call one of Ray's compiled functions. A signal arriving inside it (``oransim.guard`` raises
    ``Stopped`` from the handler) comes out as a ``SystemError`` whose cause is the ``Stopped``:
    re-raise that, so the stop unwinds as anywhere else."""
    try:
        return fn(*args, **kwargs)
    except SystemError as exc:
        cause = exc.__cause__ or exc.__context__
        if isinstance(cause, BaseException) and not isinstance(cause, Exception):
            raise cause from None
        raise


# ------------------------------------------------------------------------------ the whole sweep
def run_sweep(spec: SweepSpec, sweep_file: Path, points: list[Point], jobs: list[Job], out: Path,
              workers: int = 0, address: str | None = None, progress=None, say=None) -> dict:
    """Run the jobs not yet finished in ``out`` and write the results table; returns a summary:
    ``jobs``, ``skipped`` (finished before), ``done``, ``failed`` (with ``errors``: job id -> error),
    ``table`` (path), ``ray_start_s`` (Ray's start-up, None without Ray)."""
    from .sweep import _resolve_policy

    base_dir = Path(sweep_file).resolve().parent
    labels = {_resolve_policy(p, base_dir): p for p in spec.policies}
    summary = {"jobs": len(jobs), "skipped": 0, "done": 0, "failed": 0, "errors": {}, "ray_start_s": None}
    with locked(out):
        removed = remove_leftovers(out)
        if removed and say:
            say(f"{out}: removed {removed} temporary folder(s)/file(s) left by an interrupted sweep")
        (out / "jobs").mkdir(exist_ok=True)
        write_meta(out, spec, sweep_file, points, jobs)
        todo = [j for j in jobs if finished(out, j) is None]
        summary["skipped"] = len(jobs) - len(todo)

        def on_done(rec: dict) -> None:
            job_id = rec["job_id"]
            _write_json(out / "jobs" / f"{job_id}.json", rec)
            summary["done" if rec["ok"] else "failed"] += 1
            if not rec["ok"]:
                summary["errors"][job_id] = rec["error"]
            if progress is not None:
                progress(summary["done"] + summary["failed"], len(todo), summary["failed"])

        def on_started(seconds: float) -> None:
            summary["ray_start_s"] = seconds

        try:
            if not todo:
                pass
            elif workers == 0 and address is None:
                run_serial(todo, out, on_done)
            else:
                run_ray(todo, out, on_done, workers, address, on_started)
        finally:  # also when stopped: the table of what has finished, written whole
            summary["table"] = write_table(out, results_table(out, points, jobs, labels))
    return summary
