"""Helpers shared by the core tests: scenario variants and a policy that records what it returns."""

from __future__ import annotations

import numpy as np

from simcore.contracts import Policy
from simcore.plugins import make_policy
from simcore.scenario import Scenario, parse_scenario


def scenario(**top) -> Scenario:
    """The default scenario with top-level fields replaced (nested dicts replace whole sections)."""
    data = Scenario().model_dump()
    data.update(top)
    return parse_scenario(data)


def small(ues=2, duration_s=0.1, **top) -> Scenario:
    data = Scenario().model_dump()
    for sl in data["slices"]:
        sl["ues"] = ues
    data["duration_s"] = duration_s
    data.update(top)
    return parse_scenario(data)


class Recording(Policy):
    """Delegates to a real policy and keeps every (observation, allocation) pair."""

    def __init__(self, inner: str = "pf", **params):
        self.inner = make_policy(inner, params)
        self.name = f"recording-{inner}"
        self.decision_period_tti = self.inner.decision_period_tti
        self.seen = []

    def reset(self, seed=None):
        self.inner.reset(seed)

    def decide(self, obs):
        alloc = self.inner.decide(obs)
        self.seen.append((obs, alloc))
        return alloc


def run_engine(scn: Scenario, policy):
    from simcore.engine import Engine
    from simcore.plugins import make_phy

    eng = Engine(scn, policy, make_phy(scn.phy.backend, scn.phy.params))
    return eng, eng.run()


def assert_conserved(res) -> None:
    pk = res.packets
    c = res.counts
    n = {s: int((pk["status"] == s).sum()) for s in ("delivered", "dropped", "queued", "processing")}
    assert len(pk) == c["generated_packets"] == sum(n.values())
    for s, v in n.items():
        assert c[f"{s}_packets"] == v
    bits = {s: float(pk.loc[pk["status"] == s, "size_bytes"].sum() * 8) for s in n}
    assert np.isclose(sum(bits.values()), c["generated_bits"])
    assert np.isclose(c["generated_bits"], c["delivered_bits"] + c["dropped_bits"] + c["queued_bits"] + c["processing_bits"])
    # the DU buffers hold at most the bits of the queued packets (the head may be partly sent)
    assert -1e-6 <= c["buffer_bits"] <= c["queued_bits"] + 1e-6
