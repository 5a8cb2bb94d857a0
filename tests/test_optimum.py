"""The snapshot problem's optimum: ESA and the MILP agree; a hand-solved case; ESA's size guard."""

import dataclasses

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from policies.esa import ExhaustiveSearch, SearchSpaceTooLarge
from policies.optimal import ExactOptimum
from simcore.contracts import check_allocation
from simcore.engine import Engine
from simcore.plugins import make_phy, make_policy
from simcore.scenario import parse_scenario
from simcore.snapshot import SnapshotProblem

from core_helpers import small


def observe(seed=1, ues=1, prbs=3, n_rus=1, duration_s=0.05, caps=(None, None, None), min_rate=(0.5, 0.1, 0.01),
            rate_mbps=1.0):
    data = small(ues=ues, duration_s=duration_s, seed=seed).model_dump()
    data["cell"]["prbs_per_ru"] = prbs
    data["cell"]["rus"] = [{"x_m": 300.0 * i, "y_m": 0.0, "height_m": 25.0, "max_power_dbm": 40.0} for i in range(n_rus)]
    for sl, cap, mr in zip(data["slices"], caps, min_rate):
        sl["power_cap_dbm"] = cap
        sl["min_rate_mbps"] = mr
    data["slices"][0]["traffic"] = {"model": "poisson", "rate_mbps": rate_mbps, "packet_bytes": 1500}
    scn = parse_scenario(data)
    eng = Engine(scn, make_policy("pf"), make_phy("builtin"))
    eng.run()
    return eng.observation(eng.n_tti - 1)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), prbs=st.integers(1, 4), load=st.sampled_from([0.2, 3.0, 30.0]),
       cap=st.sampled_from([None, 30.0, 33.0]), mr=st.sampled_from([0.0, 0.5, 5.0]),
       levels=st.sampled_from([(1.0,), (0.5, 1.0, 2.0), (1.0, 3.0)]))
def test_esa_and_milp_reach_the_same_optimum(seed, prbs, load, cap, mr, levels):
    obs = observe(seed=seed, prbs=prbs, caps=(cap, None, cap), min_rate=(mr, 0.1, 0.01), rate_mbps=load)
    a = ExhaustiveSearch(level_factors=levels).decide(obs)
    b = ExactOptimum(level_factors=levels, mip_gap=1e-9).decide(obs)
    check_allocation(a, obs)
    check_allocation(b, obs)
    prob = SnapshotProblem(obs, levels)
    ea, eb = prob.evaluate(a), prob.evaluate(b)
    assert ea.violation_bps == pytest.approx(eb.violation_bps, rel=1e-6, abs=1e-3)
    assert ea.objective_bps == pytest.approx(eb.objective_bps, rel=1e-6)
    assert b.info["proven_optimal"] and b.info["exact"]
    assert a.info["needs_met"] == b.info["needs_met"] == (ea.violation_bps <= prob.violation_tol)
    if not a.info["needs_met"]:
        assert "least total shortfall" in a.info["message"]


def test_hand_built_instance():
    """Three UEs, two PRBs, one power level (P/2 per PRB), Shannon rates.

    UE 0 (eMBB, w=2) sees 60 dB on both PRBs: capped at the top MCS, r0 = B * 5.5547 per PRB.
    UE 1 (URLLC, w=3) sees 12 dB: r1 = B log2(1 + SINR1) per PRB, SINR1 = 10^1.2 / (1 + 10^1.2 q).
    UE 2 (mMTC) sees -30 dB. Per PRB, w1 r1 = 3 r1 > w0 r0 = 2 r0, so:
    - no rate needs (UE 0 has no data): both PRBs to UE 1, objective 6 r1;
    - UE 0 needs r0: one PRB each, objective 2 r0 + 3 r1;
    - UE 0 needs 3 r0 (impossible): least shortfall = both PRBs to UE 0 (shortfall r0), objective 4 r0.
    """
    base = observe(seed=3, prbs=2, ues=1)
    assert base.n_ues == 3 and base.slice_weight.tolist() == [2.0, 3.0, 1.0]
    link = base.link
    p = base.ru_max_power_w[0] / 2
    snr1 = 10 ** (12 / 10)
    g = np.zeros((3, 1, 2))
    g[0, 0, :] = 1e6 * link.noise_w / p
    g[1, 0, :] = snr1 * link.noise_w / p
    g[2, 0, :] = 1e-3 * link.noise_w / p
    r1 = link.prb_bandwidth_hz * np.log2(1 + snr1 / (1 + snr1 * link.quant_noise_w[0] / p))
    r0 = link.prb_bandwidth_hz * link.max_se
    assert 3 * r1 > 2 * r0
    no_drain = np.full(3, 1e12)  # delay targets so loose that buffers add no rate need

    def case(min_rate_0):
        b0 = 1e6 if min_rate_0 > 0 else 0.0  # a UE with data always needs something; without, nothing
        return dataclasses.replace(base, gain=g, buffer_bits=np.array([b0, 1e3, 0.0]),
                                   min_rate_bps=np.array([min_rate_0, 0.0, 0.0]), max_delay_ms=no_drain,
                                   slice_power_cap_w=np.full(3, np.inf))

    for pol in (ExhaustiveSearch(level_factors=(1.0,)), ExactOptimum(level_factors=(1.0,))):
        a = pol.decide(case(0.0))
        assert a.prb_owner[0].tolist() == [1, 1]
        assert a.info["objective_bps"] == pytest.approx(6 * r1, rel=1e-9) and a.info["needs_met"]
        a = pol.decide(case(r0))
        assert sorted(a.prb_owner[0].tolist()) == [0, 1]
        assert a.info["objective_bps"] == pytest.approx(2 * r0 + 3 * r1, rel=1e-9) and a.info["needs_met"]
        a = pol.decide(case(3 * r0))
        assert a.prb_owner[0].tolist() == [0, 0]
        assert a.info["objective_bps"] == pytest.approx(4 * r0, rel=1e-9)
        assert a.info["violation_bps"] == pytest.approx(r0, rel=1e-9)
        assert not a.info["needs_met"] and "least total shortfall" in a.info["message"]


def test_esa_refuses_an_oversized_instance():
    obs = observe(prbs=30, ues=10)
    with pytest.raises(SearchSpaceTooLarge) as exc:
        ExhaustiveSearch(max_space=1_000_000).decide(obs)
    size = (30 * 3 + 1) ** 30
    assert f"{size:,}" in str(exc.value) and "1,000,000" in str(exc.value)


def test_multi_ru_esa_exact_and_milp_approximate():
    obs = observe(seed=4, prbs=2, n_rus=2, ues=1, caps=(None, None, None), min_rate=(0.0, 0.0, 0.0))
    assert obs.n_ues == 6  # 2 RUs x 3 slices x 1 UE
    a = ExhaustiveSearch(level_factors=(1.0,), max_space=10**7).decide(obs)
    b = ExactOptimum(level_factors=(1.0,)).decide(obs)
    check_allocation(a, obs)
    check_allocation(b, obs)
    assert b.info["exact"] is False and b.info["proven_optimal"] is False
    prob = SnapshotProblem(obs, (1.0,))
    ea, eb = prob.evaluate(a), prob.evaluate(b)
    # ESA is the exact optimum with interference; the fixed point can only match or trail it
    assert not prob.is_better(eb.violation_bps, eb.objective_bps, ea.violation_bps, ea.objective_bps)
