"""Finite-blocklength rate (slices[*].rate_model: fbl): the normal approximation by hand, its gap to
Shannon, and one rate function shared by the PHY, the snapshot problem, ESA and the MILP."""

import math

import numpy as np
import pytest

from policies.esa import ExhaustiveSearch
from policies.optimal import ExactOptimum
from simcore.contracts import Allocation, check_allocation
from simcore.engine import Engine
from simcore.phy import FBL_BLOCKLENGTH_RE, BuiltinPhy, LinkModel, fbl_penalty, fbl_spectral_efficiency
from simcore.plugins import make_phy, make_policy
from simcore.scenario import ScenarioError, parse_scenario
from simcore.snapshot import SnapshotProblem

from core_helpers import small


def test_normal_approximation_by_hand():
    # rho = 10 (10 dB), eps = 1e-5, N = 12 x 14 = 168 resource elements
    assert FBL_BLOCKLENGTH_RE == 168
    q_inv = 4.264891  # Q^-1(1e-5)
    capacity = math.log2(11.0)  # 3.459432
    dispersion = 1 - 1 / 11.0**2  # 0.991736
    want = capacity - 1.442695 * q_inv * math.sqrt(dispersion / 168)  # 3.459432 - 0.472743
    assert want == pytest.approx(2.986689, abs=2e-6)
    assert fbl_spectral_efficiency(10.0, fbl_penalty(1e-5)) == pytest.approx(want, rel=1e-6)
    # negative rates clip to 0 (rho = 0.1: 0.1375 - 0.198 < 0); an idle PRB (rho = 0) carries nothing
    assert fbl_spectral_efficiency(np.array([0.1, 0.0]), fbl_penalty(1e-5)).tolist() == [0.0, 0.0]


def test_gap_to_shannon_shrinks_with_blocklength():
    rho = np.array([0.5, 3.0, 30.0])
    gaps = [np.log2(1 + rho) - fbl_spectral_efficiency(rho, fbl_penalty(1e-4, n)) for n in (24, 168, 1680, 16800)]
    gaps = np.array(gaps)
    assert (gaps > 0).all() and (np.diff(gaps, axis=0) < 0).all()
    # exactly as 1/sqrt(N) while the rate stays positive
    assert gaps[1] / gaps[3] == pytest.approx(np.full(3, 10.0), rel=1e-9)
    # a looser error target costs less
    assert fbl_penalty(1e-3) < fbl_penalty(1e-5) < fbl_penalty(1e-9)


def fbl_scenario(seed=1, prbs=3, **top):
    data = small(ues=1, duration_s=0.03, seed=seed, **top).model_dump()
    data["cell"]["prbs_per_ru"] = prbs
    data["cell"]["rus"] = [{"x_m": 0.0, "y_m": 0.0, "height_m": 25.0, "max_power_dbm": 40.0}]
    data["slices"][1].update(rate_model="fbl", fbl_error_probability=1e-5)  # urllc
    data["slices"][2].update(rate_model="fbl", fbl_error_probability=1e-3)  # mmtc
    data["slices"][0]["traffic"] = {"model": "poisson", "rate_mbps": 3.0, "packet_bytes": 1500}
    return parse_scenario(data)


def test_link_model_uses_the_slice_rate():
    s = fbl_scenario()
    ue_slice = np.array([0, 1, 2])
    link = LinkModel.from_scenario(s, ue_slice=ue_slice)
    sinr = np.full((3, 2), 10.0)
    rate = link.prb_rate_bps(sinr, np.arange(3)[:, None])
    b = s.cell.prb_bandwidth_hz
    assert rate[0] == pytest.approx(b * math.log2(11.0))  # eMBB: shannon (gap 0 dB, below the cap)
    assert rate[1] == pytest.approx(b * fbl_spectral_efficiency(10.0, fbl_penalty(1e-5)))
    assert rate[2] == pytest.approx(b * fbl_spectral_efficiency(10.0, fbl_penalty(1e-3)))
    assert link.prb_rate_bps(np.array([1e9]), np.array([1]))[0] == pytest.approx(b * link.max_se)  # top MCS cap
    with pytest.raises(ValueError, match="ue="):
        link.spectral_efficiency(sinr)
    with pytest.raises(ValueError, match="ue_slice"):
        LinkModel.from_scenario(s)
    # the PHY's fast path delivers the same bits
    phy = BuiltinPhy()
    phy.open(s, None, link)
    gain = np.full((3, 1, 3), 3e-14)  # about 7 dB
    alloc = Allocation(np.zeros(3, dtype=np.int64), np.array([[0, 1, 2]]), np.full((1, 3), 1.0))
    out = phy.step(0, alloc, gain)
    want = link.prb_bits(link.prb_sinr(gain, alloc.prb_owner, alloc.power_w), alloc.prb_owner)
    assert out.prb_bits == pytest.approx(want, rel=1e-12)
    assert out.prb_bits[0, 1] < out.prb_bits[0, 0]  # same SINR, FBL penalty


def test_fbl_validated():
    data = fbl_scenario().model_dump()
    data["slices"][1]["fbl_error_probability"] = 0.0
    data["slices"][2]["rate_model"] = "finite"
    with pytest.raises(ScenarioError) as exc:
        parse_scenario(data)
    paths = [p for p, _ in exc.value.problems]
    assert "slices[1].fbl_error_probability" in paths and "slices[2].rate_model" in paths


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_esa_milp_and_phy_share_the_fbl_rate(seed):
    s = fbl_scenario(seed=seed)
    eng = Engine(s, make_policy("pf"), make_phy("builtin"))
    eng.run()
    obs = eng.observation(eng.n_tti - 1)
    assert obs.link.ue_fbl_penalty is not None
    # the Observation's per-PRB rates are the slices' own
    fbl_ue = np.flatnonzero(obs.slice_id > 0)
    shannon = obs.link.prb_bandwidth_hz * np.minimum(np.log2(1 + obs.prb_sinr), obs.link.max_se)
    below_cap = shannon[fbl_ue] < obs.link.prb_bandwidth_hz * obs.link.max_se
    assert (obs.prb_rate_bps[fbl_ue] <= shannon[fbl_ue]).all()
    assert (obs.prb_rate_bps[fbl_ue][below_cap] < shannon[fbl_ue][below_cap]).all()
    a = ExhaustiveSearch().decide(obs)
    b = ExactOptimum(mip_gap=1e-9).decide(obs)
    check_allocation(a, obs)
    check_allocation(b, obs)
    assert b.info["exact"] and b.info["proven_optimal"]
    prob = SnapshotProblem(obs)
    ea, eb = prob.evaluate(a), prob.evaluate(b)
    assert ea.violation_bps == pytest.approx(eb.violation_bps, rel=1e-6, abs=1e-3)
    assert ea.objective_bps == pytest.approx(eb.objective_bps, rel=1e-6)
    # the MILP's per-PRB table, the snapshot problem's rates and the PHY's bits are one function
    table = prob.single_ru_rate_table()  # (U, K, L)
    owner, power = b.prb_owner[0], b.power_w[0]
    k = np.flatnonzero(owner >= 0)
    level = np.argmin(np.abs(prob.levels_w[0][None, :] - power[k][:, None]), axis=1)
    from_table = np.bincount(owner[k], weights=table[owner[k], k, level], minlength=obs.n_ues)
    assert eb.rates_bps == pytest.approx(from_table, rel=1e-12)
    phy = BuiltinPhy()
    phy.open(s, None, obs.link)
    bits = phy.step(0, b, obs.gain).prb_bits[0]
    assert bits[k] == pytest.approx(table[owner[k], k, level] * obs.link.tti_s, rel=1e-12)
