"""Checkpoints of learned policies, and the base of their ``Policy`` adapters.

A checkpoint is one file written by ``torch.save`` (read back with ``weights_only=True``: tensors
and plain data only, nothing executable) holding a dict:

    format, format_version, policy (name), encoding (``EncodingSpec.to_dict``: version, shapes),
    objective, config (the algorithm's config dataclass as a dict), scenario_name, scenario_hash,
    seed, metrics (final held-out evaluation), training (steps, wall time, command, data),
    versions, git_revision, state (name -> state_dict of each network).

``LearnedPolicy`` is what ``oransim run`` and ``oransim evaluate`` see: it loads a checkpoint,
checks each observation against the checkpoint's encoding (a mismatch is ``CheckpointMismatch``,
a ``PluginError``, so the command line reports it in one line with exit code 2), encodes the
state, asks the subclass for an action vector (``act``) and decodes it with the one decoder.
"""

from __future__ import annotations

import abc
import hashlib
import json
import os
from pathlib import Path

import numpy as np

from simcore.contracts import Allocation, Observation, Policy
from simcore.plugins import PluginError

from .decoder import decode_action
from .encoding import EncodingMismatch, EncodingSpec, encode_state

FORMAT = "oransim-checkpoint"
FORMAT_VERSION = 1
#: Scenario sections that define the physical problem (hashed; seed, duration, policy, records are not).
HASHED_SECTIONS = ("cell", "channel", "ue_drop", "phy", "fronthaul", "processing", "slices", "scheduling")


class CheckpointMismatch(PluginError):
    """A checkpoint cannot be used here; the message names the parameter, the file and the cause."""


def scenario_hash(scenario) -> str:
    """sha256 (first 16 hex digits) of the scenario's physical sections, canonical JSON."""
    data = scenario.model_dump(mode="json")
    text = json.dumps({k: data[k] for k in HASHED_SECTIONS}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _plain(x):
    """JSON-able copy (tuples -> lists): what ``weights_only`` loading accepts."""
    return json.loads(json.dumps(x, default=float))


def save_checkpoint(path: str | Path, *, policy: str, spec: EncodingSpec, objective: str, config: dict,
                    scenario, seed: int, state: dict, metrics: dict, training: dict) -> Path:
    """Write a checkpoint atomically (a temporary sibling renamed into place)."""
    import torch

    from simcore.recorder import git_revision, package_versions

    path = Path(path)
    blob = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "policy": policy, "encoding": _plain(spec.to_dict()),
        "objective": objective, "config": _plain(config), "scenario_name": scenario.name,
        "scenario_hash": scenario_hash(scenario), "seed": int(seed), "metrics": _plain(metrics),
        "training": _plain(training), "versions": package_versions(), "git_revision": git_revision(),
        "state": {k: {n: t.detach().cpu() for n, t in sd.items()} for k, sd in state.items()},
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(blob, tmp)
    os.replace(tmp, path)
    return path


def load_checkpoint(path: str | Path, policy: str | None = None) -> dict:
    """Read and check a checkpoint; ``CheckpointMismatch`` names what is wrong."""
    import torch

    where = f"policy.params.checkpoint: {path}"
    try:
        blob = torch.load(Path(path), map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointMismatch(f"{where}: no such file") from None
    except Exception as exc:  # torch raises many kinds on a corrupt or foreign file
        raise CheckpointMismatch(f"{where}: not a checkpoint ({type(exc).__name__})") from None
    if not isinstance(blob, dict) or blob.get("format") != FORMAT:
        raise CheckpointMismatch(f"{where}: not an oransim checkpoint")
    if blob.get("format_version") != FORMAT_VERSION:
        raise CheckpointMismatch(f"{where}: checkpoint format {blob.get('format_version')}, "
                                 f"this oransim reads {FORMAT_VERSION}")
    if policy is not None and blob["policy"] != policy:
        raise CheckpointMismatch(f"{where}: a '{blob['policy']}' checkpoint, not '{policy}'")
    try:
        blob["spec"] = EncodingSpec.from_dict(blob["encoding"])
    except EncodingMismatch as exc:
        raise CheckpointMismatch(f"{where}: {exc}") from None
    return blob


class LearnedPolicy(Policy):
    """Load a checkpoint, then encode -> ``act`` -> decode at every decision."""

    name = "learned"
    #: decode with the compiled decoder (identical output; False: the numpy reference)
    fast: bool = True

    def __init__(self, checkpoint: str, device: str = "cpu", threads: int = 1):
        import torch

        # one decision is a few small matrix products: more threads only add synchronisation
        torch.set_num_threads(max(1, int(threads)))
        self.checkpoint_path = str(checkpoint)
        self.ckpt = load_checkpoint(checkpoint, self.name)
        self.spec: EncodingSpec = self.ckpt["spec"]
        self.objective: str = self.ckpt["objective"]
        self.device = torch.device(device)
        self._x = np.zeros(self.spec.state_dim, dtype=np.float32)
        self.build(self.ckpt)
        self.warm_up()

    def warm_up(self) -> None:
        """One forward pass on a zero state, so the first decision does not pay torch's set-up."""


    @abc.abstractmethod
    def build(self, ckpt: dict) -> None:
        """Build the networks from ``ckpt["config"]`` and load ``ckpt["state"]``."""

    @abc.abstractmethod
    def act(self, x: np.ndarray, obs: Observation) -> np.ndarray:
        """(action_dim,) action vector for the encoded state ``x`` of ``obs``."""

    def scenario_problems(self, scenario) -> list[tuple[str, str]]:
        """[(field, message)] if the scenario's slices or number of UEs do not fit the checkpoint."""
        names = tuple(s.name for s in scenario.slices)
        where = f"{self.checkpoint_path}: trained for"
        if names != self.spec.slice_names:
            return [("policy.params.checkpoint", f"{where} slices {list(self.spec.slice_names)}, "
                                                 f"the scenario has {list(names)}")]
        if scenario.n_ues > self.spec.max_ues:
            return [("policy.params.checkpoint", f"{where} at most {self.spec.max_ues} UEs, "
                                                 f"the scenario has {scenario.n_ues}")]
        return []

    def check(self, obs: Observation) -> None:
        try:
            self.spec.check(obs)
        except EncodingMismatch as exc:
            raise CheckpointMismatch(f"policy.params.checkpoint: {self.checkpoint_path}: {exc}") from None

    def decide(self, obs: Observation) -> Allocation:
        self.check(obs)
        x = encode_state(obs, self.spec, out=self._x)
        alloc = decode_action(self.act(x, obs), obs, self.spec, self.objective, fast=self.fast)
        alloc.info["policy"] = self.name
        return alloc
