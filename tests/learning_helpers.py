"""Observations shared by the learning tests (built once per session from short engine runs)."""

from __future__ import annotations

import dataclasses
import functools

import numpy as np

from simcore.engine import Engine
from simcore.plugins import make_phy, make_policy
from simcore.scenario import Scenario, parse_scenario


def scenario(ues=(3, 3, 3), prbs=30, n_rus=1, duration_s=0.25, seed=1, load=1.0, caps=(None, None, None)) -> Scenario:
    """The paper cell (scenarios/paper_default.yaml's slices) with the given sizes."""
    from policies.learned.dataset import scale_load
    from simcore.scenario import load_scenario

    data = load_scenario("scenarios/paper_default.yaml").model_dump(mode="python")
    data.update(seed=seed, duration_s=duration_s)
    data["cell"]["prbs_per_ru"] = prbs
    data["cell"]["rus"] = [{"x_m": 500.0 * i, "y_m": 0.0, "height_m": 25.0, "max_power_dbm": 46.0}
                           for i in range(n_rus)]
    for sl, n, cap in zip(data["slices"], ues, caps):
        sl["ues"], sl["power_cap_dbm"] = n, cap
    scale_load(data, load)
    data["record"] = {"packets": False, "tti": False}
    return parse_scenario(data)


@functools.lru_cache(maxsize=32)
def observation(**kw):
    """The observation at the last TTI of a short PF run of ``scenario(**kw)``."""
    scn = scenario(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in kw.items()})
    eng = Engine(scn, make_policy("pf"), make_phy("builtin"))
    eng.run()
    return eng.observation(eng.n_tti - 1)


def subset(obs, keep):
    """The observation restricted to UEs ``keep`` (every per-UE array cut the same way)."""
    keep = np.asarray(keep)
    per_ue = ("slice_id", "serving_ru", "gain", "prb_sinr", "prb_rate_bps", "buffer_bits", "hol_delay_ms",
              "avg_throughput_bps", "qos_met_last", "min_rate_bps", "max_rate_bps", "max_delay_ms")
    return dataclasses.replace(obs, **{f: getattr(obs, f)[keep] for f in per_ue})


@functools.lru_cache(maxsize=2)
def paper_held_out(objective: str):
    """20 paper-cell states from seeds 1000-1019 with their optimum, shared by the tests of the
    shipped checkpoints (no dataset nor held-out evaluation uses those seeds)."""
    from pathlib import Path

    from policies.learned.train import HeldOut
    from simcore.scenario import load_scenario

    path = Path(__file__).resolve().parent.parent / "scenarios" / "paper_default.yaml"
    return HeldOut.sample(load_scenario(path), 20, objective, first_seed=1000)
