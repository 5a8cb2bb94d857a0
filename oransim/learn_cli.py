"""``oransim dataset`` and ``oransim train``: the learned policies' commands (registered in cli.py).

Conventions of the CLI: one-line errors naming the field, exit code 2 on bad input, outputs
written atomically, a progress bar for anything longer than a second.
"""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path
from typing import Optional

import typer

from .cli import _fail, _load, _Progress, out


def _floats(text: Optional[str], name: str) -> tuple:
    if not text:
        return ()
    try:
        return tuple(float(x) for x in text.split(",") if x.strip())
    except ValueError:
        _fail([f"{name}: expected comma-separated numbers (got {text!r})"])


def dataset(
    scenario: Path = typer.Argument(..., help="scenario YAML file (the base of every run)"),
    states: int = typer.Option(..., "--states", min=1, help="number of states"),
    out_file: Path = typer.Option(..., "--out", help="Parquet file to write"),
    label: str = typer.Option("optimal", help="optimal (the canonical optimum of each state) or none"),
    objective: str = typer.Option("served", help="snapshot objective of the labels: served or rate"),
    seed: int = typer.Option(0, help="seed of the whole set (run seeds, variants)"),
    loads: str = typer.Option("0.5,1,1.5,2", help="load factors (offered traffic x factor), one per run"),
    ues: Optional[str] = typer.Option(None, help="UEs per slice drawn per run, e.g. 5,10,20 (default: the scenario's)"),
    power_dbm: Optional[str] = typer.Option(None, "--power-dbm", help="RU power per run, e.g. 40,46,50"),
    states_per_run: int = typer.Option(10, min=1, help="states kept from each run"),
    warmup_tti: int = typer.Option(200, min=1, help="TTIs each run goes before its first state"),
    jobs: int = typer.Option(min(2, os.cpu_count() or 1), min=1, help="worker processes"),
    resume: bool = typer.Option(False, help="continue an interrupted generation of the same set"),
    overwrite: bool = typer.Option(False, help="replace an existing output file"),
):
    """Draw snapshot states from engine runs (many seeds and load levels), label them with the optimum."""
    from policies.learned.dataset import DatasetConfig, generate

    scn = _load(scenario)
    if out_file.exists() and not overwrite:
        _fail([f"{out_file}: already exists (pass --overwrite to replace it)"])
    try:
        cfg = DatasetConfig(n_states=states, seed=seed, label=label, objective=objective,
                            loads=_floats(loads, "--loads") or (1.0,),
                            ues_per_slice=tuple(int(x) for x in _floats(ues, "--ues")),
                            ru_power_dbm=_floats(power_dbm, "--power-dbm"), warmup_tti=warmup_tti,
                            states_per_run=states_per_run)
    except ValueError as exc:
        _fail([f"{scenario}: {exc}"])
    bar = _Progress(f"{scn.name}: states", unit="states")
    try:
        path = generate(scn, cfg, out_file, jobs=jobs, resume=resume, progress=bar)
    except (ValueError, RuntimeError) as exc:
        _fail([f"{scenario}: {exc}"], code=1)
    finally:
        bar.close()
    out.print(f"wrote {path} ({states} states, label {label}, objective {objective})", markup=False, highlight=False)


def train(
    ctx: typer.Context,
    policy: str = typer.Argument(..., help="learned policy to train (e.g. dqn)"),
    scenario: Path = typer.Argument(..., help="scenario YAML file"),
    out_file: Path = typer.Option(..., "--out", help="checkpoint file to write"),
    config: Optional[Path] = typer.Option(None, help="YAML mapping of config fields (over the defaults)"),
    seed: int = typer.Option(0, help="training seed"),
    resume: bool = typer.Option(False, help="continue from the run folder's saved training state"),
    data: Optional[Path] = typer.Option(None, help="dataset file of training states (default: generate them)"),
    eval_states: int = typer.Option(50, min=1, help="held-out states scored against the optimum"),
    device: str = typer.Option("auto", help="auto (CUDA when present), cpu or cuda"),
    threads: int = typer.Option(1, min=1, help="torch threads"),
    log_dir: Optional[Path] = typer.Option(None, help="run folder (default runs/train/SCENARIO-POLICY-seedN)"),
):
    """Train a learned policy; any other --FIELD VALUE sets that field of the policy's config."""
    from policies.learned.dataset import DatasetError
    from policies.learned.encoding import EncodingMismatch
    from policies.learned.train import TrainError, run_training

    overrides = _extra_options(ctx.args)
    _load(scenario)
    bar = _Progress(f"train {policy}", unit="steps")
    command = "oransim train " + " ".join(shlex.quote(a) for a in sys.argv[2:])
    try:
        path, metrics = run_training(policy, scenario, out_file, config_yaml=config, overrides=overrides, seed=seed,
                                     resume=resume, device=device, threads=threads, data=data,
                                     eval_states=eval_states, run_dir=log_dir, progress=bar, command=command)
    except (TrainError, DatasetError, EncodingMismatch) as exc:
        _fail([str(exc)])
    finally:
        bar.close()
    shown = ", ".join(f"{k} {metrics[k]:.4g}" for k in ("throughput_ratio", "qos_pct", "mae", "r2", "cosine",
                                                         "baep_pct") if k in metrics)
    out.print(f"wrote {path} ({metrics['steps']} steps in {metrics['wall_s']:.0f} s; held-out: {shown})",
              markup=False, highlight=False)


def _extra_options(args: list[str]) -> dict:
    """--name value / --name=value pairs after the known options: config overrides; a bare
    --no-name sets a boolean field to false (e.g. ``--no-contrastive``)."""
    overrides, i = {}, 0
    while i < len(args):
        a = args[i]
        if not a.startswith("--") or len(a) < 3:
            _fail([f"unexpected argument {a!r} (config fields are set as --FIELD VALUE)"])
        key, eq, value = a[2:].partition("=")
        if not eq and key.startswith("no-") and (i + 1 >= len(args) or args[i + 1].startswith("--")):
            key, value, eq = key[3:], "false", "="  # --no-FIELD: a boolean field set to false
        if not eq:
            if i + 1 >= len(args):
                _fail([f"--{key}: missing value"])
            value, i = args[i + 1], i + 1
        overrides[key.replace("-", "_")] = value
        i += 1
    return overrides
