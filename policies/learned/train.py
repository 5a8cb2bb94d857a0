"""The training harness every learned policy shares (``oransim train POLICY SCENARIO``).

A trainer is a module found by name in the entry-point group ``oransim.trainers`` with

- ``Config``: a dataclass of every hyperparameter (a docstring under each field); and
- ``train(ctx: TrainContext, cfg: Config) -> TrainResult``: the algorithm.

The harness gives it, through ``TrainContext``: the scenario, the encoding spec, the training
states (a dataset file, or states generated from the scenario over many seeds and load levels),
held-out states with their optimum (seeds ``scenario.seed + i``, never used for training; see
``dataset``), ``evaluate(decide)`` (weighted-throughput ratio to the optimum, QoS satisfaction,
MAE, R^2, cosine and BAEP through ``analysis.agreement``), a ``RunLog`` (CSV + TensorBoard,
CleanRL's tag names, and the learning-curve PNG), the torch device and thread count, a progress
callback, and the run folder (where a trainer keeps what ``--resume`` needs). The harness saves
the checkpoint (``checkpoint.save_checkpoint``) with the config, encoding, scenario hash, seed and
the final held-out metrics.

Config values come from the dataclass defaults, then ``--config YAML``, then ``--set`` style
overrides on the command line; an unknown field is an error naming it.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import shutil
import time
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Callable

import numpy as np

from analysis.learning_curves import TAG_RETURN  # noqa: F401  (the trainers log it under this name)
from simcore.contracts import Allocation, Observation, check_allocation

#: CleanRL's tag names for the scalars every trainer logs (the episodes' return: TAG_RETURN).
TAG_SPS = "charts/SPS"


class TrainError(ValueError):
    """Bad training input (unknown policy or config field, unreadable data); one line."""


@dataclass
class TrainResult:
    """What a trainer hands back; the harness writes it into the checkpoint."""

    state: dict  # network name -> state_dict
    steps: int  # environment (or gradient) steps done
    spec: object  # the EncodingSpec the networks read
    objective: str  # snapshot objective the policy was trained for
    metrics: dict = field(default_factory=dict)  # final held-out evaluation
    extra: dict = field(default_factory=dict)  # anything else worth keeping in the checkpoint's "training"


# ---------------------------------------------------------------------------------- config
def trainer_module(name: str):
    name = name.replace("-", "_")  # diffusion-ql and diffusion_ql name the same trainer
    eps = [ep for ep in metadata.entry_points(group="oransim.trainers") if ep.name == name]
    if not eps:
        known = sorted(ep.name for ep in metadata.entry_points(group="oransim.trainers"))
        raise TrainError(f"POLICY: no trainer for '{name}' (available: {', '.join(known) or 'none'})")
    return eps[0].load()


def resolve_config(cls, yaml_path: Path | None = None, overrides: dict | None = None):
    """Defaults <- YAML mapping <- overrides; values are converted to the field's type."""
    import yaml

    values: dict = {}
    if yaml_path is not None:
        try:
            loaded = yaml.safe_load(Path(yaml_path).read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise TrainError(f"{yaml_path}: cannot read the config ({exc})") from None
        if not isinstance(loaded, dict):
            raise TrainError(f"{yaml_path}: expected a mapping of config fields")
        values.update(loaded)
    values.update(overrides or {})
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for key in values:
        if key not in fields:
            raise TrainError(f"config: unknown field '{key}' (fields: {', '.join(fields)})")
    defaults = cls()
    out = {}
    for key, value in values.items():
        default = getattr(defaults, key)
        try:
            out[key] = _convert(value, default)
        except (TypeError, ValueError):
            raise TrainError(f"config: {key}: cannot use {value!r} (default {default!r})") from None
    try:
        return dataclasses.replace(defaults, **out)
    except (TypeError, ValueError) as exc:
        raise TrainError(f"config: {exc}") from None


def _convert(value, default):
    if isinstance(value, str) and not isinstance(default, str) and default is not None:
        value = json.loads(value) if value[:1] in "[{" else value
    if isinstance(default, bool):
        return value if isinstance(value, bool) else str(value).lower() in ("1", "true", "yes")
    if isinstance(default, int):
        return int(float(value))
    if isinstance(default, float):
        return float(value)
    if isinstance(default, tuple):
        items = value.split(",") if isinstance(value, str) else list(value)
        kind = type(default[0]) if default else float
        return tuple(kind(v) for v in items)
    return value


# ---------------------------------------------------------------------------------- logging
class RunLog:
    """Scalars to ``scalars.csv`` (step, tag, value, wall_s) and TensorBoard, in one folder."""

    def __init__(self, folder: Path, tensorboard: bool = True, append: bool = False):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self._t0 = time.perf_counter()
        self.rows = 0  # scalars logged by this process
        path = self.folder / "scalars.csv"
        new = not (append and path.exists())
        self._file = path.open("w" if new else "a", newline="", buffering=1)  # line-buffered: tail -f works
        self._csv = csv.writer(self._file)
        if new:
            self._csv.writerow(["step", "tag", "value", "wall_s"])
        self._tb = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self._tb = SummaryWriter(str(self.folder))

    def scalar(self, tag: str, value: float, step: int) -> None:
        self.rows += 1
        self._csv.writerow([int(step), tag, float(value), round(time.perf_counter() - self._t0, 3)])
        if self._tb is not None:
            self._tb.add_scalar(tag, float(value), int(step))

    def close(self) -> Path | None:
        self._file.close()
        if self._tb is not None:
            self._tb.close()
        return learning_curve(self.folder)


def learning_curve(folder: Path, out: Path | None = None) -> Path | None:
    """The paper's Fig. 3a for this run (``analysis.learning_curves``): reward per episode and a running
    mean over 1/25 of the episodes, in ``FOLDER/learning_curve.png``; None when no episode ended."""
    from analysis.learning_curves import plot_learning_curves, read_curves

    episodes = len(read_curves(folder)[0])
    if not episodes:
        return None
    return plot_learning_curves([("reward", folder)], out or Path(folder) / "learning_curve.png",
                                window=max(1, episodes // 25))


# ----------------------------------------------------------------------------- evaluation
class HeldOut:
    """States never trained on, with their optimum; ``evaluate`` scores a policy on them."""

    def __init__(self, states: list[Observation], objective: str, progress=None):
        from analysis.agreement import decision_vector
        from policies.optimal import ExactOptimum

        from .encoding import snapshot_problem

        self.states, self.objective = states, objective
        self.problems = [snapshot_problem(o, objective) for o in states]
        opt = ExactOptimum(objective=objective)
        self.opt, self.opt_eval, self.opt_vec = [], [], []
        for i, (obs, prob) in enumerate(zip(states, self.problems)):
            alloc = opt.decide(obs)
            self.opt.append(alloc)
            self.opt_eval.append(prob.evaluate(alloc))
            self.opt_vec.append(decision_vector(alloc, obs))
            if progress is not None:
                progress(i + 1, len(states))

    @staticmethod
    def sample(scenario, n: int, objective: str, first_seed: int | None = None, warmup_tti: int = 200,
               progress=None) -> "HeldOut":
        from oransim.evaluate import sample_states

        from .dataset import DATASET_SEED_FLOOR

        first = scenario.seed if first_seed is None else first_seed
        if first + n > DATASET_SEED_FLOOR:
            raise TrainError(f"held-out seeds must stay below {DATASET_SEED_FLOOR} (the dataset seeds)")
        return HeldOut(sample_states(scenario, n, first, warmup_tti), objective, progress)

    def evaluate(self, decide: Callable[[Observation], Allocation]) -> dict:
        """Ratio, QoS %, MAE, R^2, cosine, BAEP % and decision ms of ``decide`` on these states."""
        from analysis.agreement import agreement_table, decision_vector

        records = []
        for obs, prob, ev0, vec0 in zip(self.states, self.problems, self.opt_eval, self.opt_vec):
            t0 = time.perf_counter()
            alloc = decide(obs)
            ms = (time.perf_counter() - t0) * 1e3
            check_allocation(alloc, obs)
            ev = prob.evaluate(alloc)
            has_need = ev.need_bps > 0
            records.append({"policy": "p", "vector": decision_vector(alloc, obs), "opt_vector": vec0,
                            "objective_bps": ev.objective_bps, "opt_objective_bps": ev0.objective_bps,
                            "qos_met": int((ev.qos_met & has_need).sum()), "ues_with_need": int(has_need.sum()),
                            "decide_ms": ms})
        row = agreement_table(records).iloc[0]
        return {k: float(v) for k, v in row.items() if k != "states"}


# -------------------------------------------------------------------------------- context
@dataclass
class TrainContext:
    policy: str
    scenario: object  # simcore.scenario.Scenario
    scenario_path: str
    run_dir: Path
    seed: int
    device: object  # torch.device
    threads: int
    resume: bool
    data: Path | None
    eval_states: int
    log: RunLog | None = None
    progress: Callable[[int, int], None] | None = None
    _held_out: HeldOut | None = None

    def held_out(self, objective: str) -> HeldOut:
        if self._held_out is None or self._held_out.objective != objective:
            self._held_out = HeldOut.sample(self.scenario, self.eval_states, objective)
        return self._held_out

    def evaluate(self, decide, objective: str, step: int) -> dict:
        metrics = self.held_out(objective).evaluate(decide)
        if self.log is not None:
            for k, v in metrics.items():
                self.log.scalar(f"eval/{k}", v, step)
        return metrics


def pick_device(name: str):
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise TrainError("--device cuda: no CUDA device is available")
    if name not in ("cpu", "cuda"):
        raise TrainError(f"--device must be auto, cpu or cuda (got {name!r})")
    return torch.device(name)


def run_training(policy: str, scenario_path: Path, out: Path, *, config_yaml: Path | None = None,
                 overrides: dict | None = None, seed: int = 0, resume: bool = False, device: str = "auto",
                 threads: int = 1, data: Path | None = None, eval_states: int = 50, run_dir: Path | None = None,
                 progress=None, command: str = "") -> tuple[Path, dict]:
    """Train ``policy`` on the scenario and write the checkpoint ``out``; returns (path, metrics)."""
    import random

    import torch

    from simcore.scenario import load_scenario

    from .checkpoint import save_checkpoint

    policy = policy.replace("-", "_")
    module = trainer_module(policy)
    cfg = resolve_config(module.Config, config_yaml, overrides)
    scenario = load_scenario(scenario_path)
    torch.set_num_threads(max(1, int(threads)))
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    run_dir = Path(run_dir or Path("runs") / "train" / f"{scenario.name}-{policy}-seed{seed}")
    ctx = TrainContext(policy, scenario, str(scenario_path), run_dir, seed, pick_device(device), threads, resume,
                       data, eval_states, progress=progress)
    created_root = None  # the outermost folder of run_dir this call creates (None: it exists)
    for folder in (run_dir, *run_dir.parents):
        if folder.exists():
            break
        created_root = folder
    ctx.log = RunLog(run_dir, append=resume)
    (run_dir / "config.json").write_text(json.dumps(dataclasses.asdict(cfg), indent=1, default=str))
    t0 = time.perf_counter()
    try:
        result = module.train(ctx, cfg)
    except BaseException:
        ctx.log.close()
        if created_root is not None and ctx.log.rows == 0:
            # refused before anything was logged (bad input: a config value, a missing data file):
            # the folders this call created hold nothing worth keeping; a crash or Ctrl-C after the
            # first logged step keeps its logs
            shutil.rmtree(created_root, ignore_errors=True)
        raise
    curve = ctx.log.close()
    wall = time.perf_counter() - t0
    metrics = result.metrics
    training = {"steps": result.steps, "wall_s": round(wall, 1), "command": command, "threads": threads,
                "device": str(ctx.device), "data": str(data) if data else None, "run_dir": str(run_dir),
                "learning_curve": str(curve) if curve else None, **result.extra}
    path = save_checkpoint(out, policy=policy, spec=result.spec, objective=result.objective,
                           config=dataclasses.asdict(cfg), scenario=scenario, seed=seed, state=result.state,
                           metrics=metrics, training=training)
    return path, {**metrics, "wall_s": wall, "steps": result.steps}
