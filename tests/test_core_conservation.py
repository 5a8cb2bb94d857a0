"""Conservation of packets and bits, and budgets, over generated scenarios."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from simcore.contracts import Allocation, InfeasibleAllocation, Policy, check_allocation, slice_power_w
from simcore.engine import Engine, SimulationError
from simcore.plugins import make_phy
from simcore.scenario import Scenario, parse_scenario

from core_helpers import Recording, assert_conserved, run_engine

TRAFFIC = st.one_of(
    st.builds(lambda r, b: {"model": "poisson", "rate_mbps": r, "packet_bytes": b},
              st.floats(0.05, 30.0), st.sampled_from([100, 1500])),
    st.builds(lambda f, s: {"model": "ftp", "file_rate_hz": f, "file_kbytes": s, "packet_bytes": 1500},
              st.floats(0.5, 20.0), st.floats(1.0, 200.0)),
    st.builds(lambda r, b: {"model": "sporadic", "rate_pps": r, "packet_bytes": b},
              st.floats(10.0, 3000.0), st.sampled_from([20, 32, 200])),
    st.builds(lambda p, b, j: {"model": "periodic", "period_ms": p, "packet_bytes": b, "jitter_ms": j},
              st.floats(0.3, 50.0), st.sampled_from([20, 100]), st.sampled_from([0.0, 2.0])),
)

SLICE = st.fixed_dictionaries({
    "ues": st.integers(0, 4),
    "traffic": TRAFFIC,
    "drop_late": st.booleans(),
    "max_delay_ms": st.sampled_from([0.6, 2.0, 20.0]),
    "buffer_limit_kbytes": st.sampled_from([2.0, 30.0, 2000.0]),
    "weight": st.sampled_from([0.5, 1.0, 3.0]),
    "power_cap_dbm": st.sampled_from([None, 30.0, 40.0]),
})


@st.composite
def scenarios(draw):
    data = Scenario().model_dump()
    n_ru = draw(st.integers(1, 3))
    data["cell"]["rus"] = [{"x_m": 400.0 * i, "y_m": 0.0, "height_m": 25.0, "max_power_dbm": draw(st.sampled_from([40.0, 46.0]))}
                           for i in range(n_ru)]
    data["cell"]["numerology"] = draw(st.integers(0, 2))
    data["cell"]["prbs_per_ru"] = draw(st.sampled_from([6, 15, 30]))
    slices = draw(st.lists(SLICE, min_size=1, max_size=3))
    if sum(s["ues"] for s in slices) == 0:
        slices[0]["ues"] = 1
    data["slices"] = [{"name": f"s{i}", **s} for i, s in enumerate(slices)]
    data["phy"]["rate_model"] = draw(st.sampled_from(["shannon", "cqi"]))
    data["scheduling"]["interval_tti"] = draw(st.integers(1, 10))
    data["policy"] = {"name": draw(st.sampled_from(["rr", "pf", "maxcqi"])), "params": {}}
    data["processing"]["cu"]["service"] = draw(st.sampled_from(["exponential", "deterministic"]))
    data["duration_s"] = draw(st.sampled_from([0.03, 0.08, 0.15]))
    data["seed"] = draw(st.integers(0, 2**32))
    return parse_scenario(data)


def check_budgets(policy: Recording, scn) -> None:
    assert policy.seen, "the policy was never asked"
    for obs, alloc in policy.seen:
        check_allocation(alloc, obs)
        assert (alloc.power_w.sum(axis=1) <= obs.ru_max_power_w * (1 + 1e-9)).all()
        owned = alloc.prb_owner >= 0
        rus = np.broadcast_to(np.arange(obs.n_rus)[:, None], owned.shape)
        assert (alloc.ue_ru[alloc.prb_owner[owned]] == rus[owned]).all()
        caps = obs.slice_power_cap_w
        assert (slice_power_w(alloc, obs) <= caps[None, :] * (1 + 1e-9)).all()


class CapacitySpy:
    """The built-in PHY, keeping what each UE's PRBs could carry in every TTI."""

    name = "builtin"

    def __init__(self):
        self.inner = make_phy("builtin")
        self.capacity = {}

    def open(self, *args, **kw):
        self.inner.open(*args, **kw)

    def step(self, tti, allocation, gain):
        res = self.inner.step(tti, allocation, gain)
        owner = allocation.prb_owner
        n_ues = gain.shape[0]
        self.capacity[tti] = np.bincount(owner[owner >= 0], weights=res.prb_bits[owner >= 0], minlength=n_ues)
        return res

    def close(self):
        self.inner.close()


@settings(max_examples=30, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_conservation_and_budgets(scn):
    policy = Recording(scn.policy.name)
    phy = CapacitySpy()
    res = Engine(scn, policy, phy).run()
    assert_conserved(res)
    check_budgets(policy, scn)
    pk = res.packets
    dropped = pk[pk["status"] == "dropped"]
    assert (dropped["drop_reason"].astype(str) != "").all()
    assert (pk.loc[pk["status"] != "dropped", "drop_reason"].astype(str) == "").all()
    d = pk[pk["status"] == "delivered"]
    parts = d[["cu_ms", "du_ms", "queue_ms", "tx_ms", "fh_ms"]].sum(axis=1)
    np.testing.assert_allclose(d["delay_ms"], parts, atol=1e-6)
    assert (d["delay_ms"] >= scn.cell.tti_s * 1e3 - 1e-9).all()
    assert (d[["cu_ms", "du_ms", "queue_ms", "tx_ms"]] >= -1e-9).all().all()
    # deadline drops only where the slice drops late packets
    late_slices = {s.name for s in scn.slices if s.drop_late}
    assert set(dropped.loc[dropped["drop_reason"] == "deadline", "slice"].astype(str)) <= late_slices
    # decisions table: every RU within its own budget
    budget = np.array([10 ** ((ru.max_power_dbm - 30) / 10) for ru in scn.cell.rus])
    assert len(res.decisions) == len(policy.seen)
    for row in res.decisions.itertuples():
        per_ru = np.asarray(row.prb_power_w, dtype=float).reshape(scn.n_ru, scn.cell.prbs_per_ru).sum(axis=1)
        assert (per_ru <= budget * (1 + 1e-6)).all()  # float32 in the table
        assert row.power_w == pytest.approx(per_ru.sum(), rel=1e-6)
    # served bits never exceed what the TTI's PRBs could carry ...
    tti = res.tti
    served = tti.pivot(index="tti", columns="ue", values="served_bits").to_numpy()
    capacity = np.stack([phy.capacity[k] for k in range(scn.n_tti)])
    assert served.shape == capacity.shape
    assert (served >= 0).all()
    assert (served <= capacity + 1e-6).all()
    # ... nor what was queued: every delivered bit was served, and a served bit belongs to a packet
    # delivered, dropped at its deadline after part of it was sent, or still queued
    bits = pk.assign(bits=pk["size_bytes"] * 8.0)
    delivered = bits.loc[bits["status"] == "delivered", "bits"].sum()
    partly = bits.loc[(bits["status"] == "queued") | (bits["drop_reason"] == "deadline"), "bits"].sum()
    total = res.counts["served_bits"]
    assert total == pytest.approx(served.sum(), rel=1e-9, abs=1e-6)
    assert delivered - 1e-6 <= total <= delivered + partly + 1e-6


def test_overload_drops_are_recorded():
    """A small buffer under heavy load drops with reason buffer_full; an expiring slice with deadline."""
    data = Scenario().model_dump()
    data["duration_s"] = 0.2
    data["slices"] = [
        {"name": "bulk", "ues": 3, "buffer_limit_kbytes": 5.0,
         "traffic": {"model": "poisson", "rate_mbps": 40.0, "packet_bytes": 1500}},
        {"name": "urllc", "ues": 3, "max_delay_ms": 1.5, "drop_late": True, "weight": 0.1,
         "traffic": {"model": "sporadic", "rate_pps": 4000, "packet_bytes": 200}},
    ]
    scn = parse_scenario(data)
    _, res = run_engine(scn, Recording("pf"))
    assert_conserved(res)
    reasons = res.packets.groupby("slice", observed=True)["drop_reason"].agg(lambda s: set(s.astype(str)))
    assert "buffer_full" in reasons["bulk"]
    assert "deadline" in reasons["urllc"]


class OverBudget(Policy):
    name = "over-budget"

    def decide(self, obs):
        alloc = Allocation.empty(obs.n_ues, obs.n_rus, obs.n_prbs)
        alloc.ue_ru[:] = obs.serving_ru
        ue = int(np.flatnonzero(obs.serving_ru == 0)[0])
        alloc.prb_owner[0, :] = ue
        alloc.power_w[0, :] = 2 * obs.ru_max_power_w[0] / obs.n_prbs
        return alloc


def test_infeasible_policy_stops_the_run_naming_the_budget():
    from core_helpers import small

    with pytest.raises(SimulationError, match="RU power budget"):
        run_engine(small(), OverBudget())


def test_check_allocation_names_each_budget():
    from core_helpers import small

    eng, _ = run_engine(small(duration_s=0.01), Recording("pf"))
    obs = eng.observation(0)
    u0 = int(np.flatnonzero(obs.serving_ru == 0)[0])
    base = Allocation.empty(obs.n_ues, obs.n_rus, obs.n_prbs)
    base.ue_ru[:] = obs.serving_ru
    check_allocation(base, obs)
    bad = Allocation(base.ue_ru.copy(), base.prb_owner.copy(), base.power_w.copy())
    bad.prb_owner[0, 0] = obs.n_ues
    with pytest.raises(InfeasibleAllocation, match="out of range"):
        check_allocation(bad, obs)
    bad = Allocation(base.ue_ru.copy(), base.prb_owner.copy(), base.power_w.copy())
    bad.power_w[0, 1] = 1.0
    with pytest.raises(InfeasibleAllocation, match="idle PRBs"):
        check_allocation(bad, obs)
    bad = Allocation(base.ue_ru.copy(), base.prb_owner.copy(), base.power_w.copy())
    bad.ue_ru[u0] = -1
    bad.prb_owner[0, 0] = u0
    with pytest.raises(InfeasibleAllocation, match="PRB exclusivity"):
        check_allocation(bad, obs)
