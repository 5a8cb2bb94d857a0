"""The one-RU fast paths of the link model and the built-in PHY give exactly (bit for bit) what the
general formulas give: speed work must not change a result (scripts/same_results.py checks whole runs)."""

import numpy as np

from simcore.contracts import Allocation
from simcore.phy import BuiltinPhy, LinkModel
from simcore.scenario import parse_scenario

from core_helpers import small


def _link(fbl: bool) -> LinkModel:
    data = small(ues=4).model_dump()
    if fbl:
        data["slices"][1]["rate_model"] = "fbl"
    s = parse_scenario(data)
    return LinkModel.from_scenario(s, ue_slice=np.repeat(np.arange(3), 4))


def _random_allocation(rng, n_ue: int, n_prb: int):
    owner = np.where(rng.random((1, n_prb)) < 0.3, -1, rng.integers(0, n_ue, (1, n_prb)))
    power = np.where(owner >= 0, rng.uniform(0.0, 2.0, (1, n_prb)), 0.0)
    return owner, power


def test_one_ru_rates_and_csi_view_equal_the_general_formulas_exactly():
    rng = np.random.default_rng(3)
    for fbl in (False, True):
        lk = _link(fbl)
        n_ue, n_prb = 12, 9
        for _ in range(50):
            gain = 10 ** rng.uniform(-14, -7, (n_ue, 1, n_prb))
            owner, power = _random_allocation(rng, n_ue, n_prb)
            # objective: the general (..., R, K) SINR, masked and summed per UE
            sinr = lk.prb_sinr(gain, owner, power)
            rate = lk.prb_rate_bps(sinr, owner)
            mask = owner >= 0
            want = np.bincount(owner[mask], weights=rate[mask], minlength=n_ue)
            got = lk.ue_rates_bps(gain, np.zeros(n_ue, dtype=np.int64), owner, power)
            assert np.array_equal(got, want)
            # CSI view: serving-RU gain of every UE at equal power, written as for many RUs
            ru_power = np.array([rng.uniform(1.0, 40.0)])
            serving = np.zeros(n_ue, dtype=np.int64)
            p = ru_power / n_prb
            g_serv = gain[np.arange(n_ue), serving, :]
            want_sinr = lk.sinr(g_serv, p[serving][:, None], serving[:, None], 0.0)
            want_rate = lk.prb_rate_bps(want_sinr, np.arange(n_ue)[:, None])
            got_rate, got_sinr = lk.estimated_prb_rate_bps(gain, serving, ru_power)
            assert np.array_equal(got_sinr, want_sinr) and np.array_equal(got_rate, want_rate)


def test_builtin_phy_reuses_its_templates_without_leaking_state():
    """Allocations change every TTI (a decision every TTI): each result equals the general formula
    and no entry of an earlier TTI's result shows through."""
    rng = np.random.default_rng(4)
    lk = _link(True)
    phy = BuiltinPhy()
    phy.open(None, None, lk)
    n_ue, n_prb = 12, 9
    for _ in range(30):
        gain = 10 ** rng.uniform(-14, -7, (n_ue, 1, n_prb))
        owner, power = _random_allocation(rng, n_ue, n_prb)
        res = phy.step(0, Allocation(np.zeros(n_ue, dtype=np.int64), owner, power), gain)
        want = lk.prb_sinr(gain, owner, power)
        assert np.array_equal(res.prb_sinr, want, equal_nan=True)
        assert np.array_equal(res.prb_bits, np.where(owner >= 0, lk.prb_bits(want, owner), 0.0))
