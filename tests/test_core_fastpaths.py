"""The one-RU fast paths of the link model and the built-in PHY give exactly (bit for bit) what the
general formulas give: speed work must not change a result (scripts/same_results.py checks whole runs)."""

import numpy as np

from simcore import tti_fast
from simcore.buffers import PacketTable, UeBuffers
from simcore.contracts import Allocation
from simcore.phy import BuiltinPhy, LinkModel
from simcore.scenario import parse_scenario

from core_helpers import small


def _link(fbl: bool, rate_model: str = "shannon") -> LinkModel:
    data = small(ues=4).model_dump()
    data["phy"]["rate_model"] = rate_model
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


def test_builtin_phy_one_ru_equals_the_general_formulas_exactly():
    """Allocations change every TTI (a decision every TTI): each result of the compiled one-RU PHY
    (the Shannon bits compiled around numpy's log2; cqi and fbl through LinkModel) equals the
    general formula, bit for bit."""
    rng = np.random.default_rng(4)
    for lk in (_link(False), _link(True), _link(False, rate_model="cqi")):
        phy = BuiltinPhy()
        phy.open(None, None, lk)
        n_ue, n_prb = 12, 9
        for i in range(30):
            gain = 10 ** rng.uniform(-14, -7, (n_ue, 1, n_prb))
            owner, power = _random_allocation(rng, n_ue, n_prb)
            if i == 0:
                owner[:] = -1  # nothing on air
            res = phy.step(0, Allocation(np.zeros(n_ue, dtype=np.int64), owner, power), gain)
            want = lk.prb_sinr(gain, owner, power)
            assert np.array_equal(res.prb_sinr, want, equal_nan=True)
            assert np.array_equal(res.prb_bits, np.where(owner >= 0, lk.prb_bits(want, owner), 0.0))


def test_end_of_tti_kernel_equals_the_numpy_steps_exactly():
    """tti_fast.finish (serve, counters, throughput average, TTI record row) and close_interval give
    what the engine's numpy lines gave, on random buffers, capacities and PRB grids."""
    rng = np.random.default_rng(5)
    n_ue, n_prb, tti = 6, 8, 1e-3
    decay, per_bit = 1.0 - 1.0 / 100, 1.0 / (100 * tti)
    min_rate = rng.uniform(0, 2e5, n_ue)

    def buffers():
        pk = PacketTable(capacity=8)
        buf = UeBuffers(n_ue, np.full(n_ue, 1e9), np.zeros(n_ue, dtype=np.int64), np.array([1.0]),
                        np.array([False]), pk)
        return pk, buf

    (pk_a, buf_a), (pk_b, buf_b) = buffers(), buffers()
    acc_a, acc_b = np.zeros((3, n_ue)), np.zeros((3, n_ue))  # total, interval, average
    rec = (np.zeros((1, n_ue)), np.zeros((1, n_ue)), np.zeros((1, 1, n_prb), np.int32),
           np.zeros((1, 1, n_prb), np.float32), np.zeros((1, 1, n_prb), np.float32))
    for k in range(60):
        now = k * tti
        m = int(rng.integers(0, 5))
        args = (rng.integers(0, n_ue, m), rng.uniform(100, 5e4, m), np.full(m, now), np.full(m, now), np.full(m, now))
        for pk, buf in ((pk_a, buf_a), (pk_b, buf_b)):
            pk.add(*args)
            buf.arrive(now)
        owner = np.where(rng.random((1, n_prb)) < 0.3, -1, rng.integers(0, n_ue, (1, n_prb)))
        sinr = np.where(owner >= 0, rng.uniform(0, 100, (1, n_prb)), np.nan)
        power = np.where(owner >= 0, rng.uniform(0, 2, (1, n_prb)), 0.0)
        l2s = k % 2 == 1  # alternately a capacity per UE plus bits served elsewhere, and PRB bits
        capacity, here = rng.uniform(0, 3e4, n_ue), rng.uniform(0, 1e3, n_ue)
        prb_bits = np.where(owner >= 0, rng.uniform(0, 1e4, (1, n_prb)), 0.0)
        # the engine's numpy lines
        if l2s:
            served = buf_a.serve(capacity, now, now + tti) + here
        else:
            served = buf_a.serve_prbs(owner, prb_bits, now, now + tti)
        acc_a[0] += served
        acc_a[1] += served
        acc_a[2] *= decay
        acc_a[2] += served * per_bit
        # the kernel
        zeros = np.zeros(n_ue)
        tti_fast.finish(owner, np.zeros((0, 0)) if l2s else prb_bits, capacity if l2s else zeros,
                        here if l2s else zeros, np.empty(n_ue), now, now + tti, pk_b.f, pk_b.i, pk_b.c, pk_b.base,
                        buf_b.uf, buf_b.ui, acc_b[0], acc_b[1], acc_b[2], decay, per_bit, 0, *rec, sinr, power)
        assert np.array_equal(acc_a, acc_b)
        assert np.array_equal(buf_a.uf, buf_b.uf) and np.array_equal(buf_a.ui, buf_b.ui)
        assert all(np.array_equal(getattr(pk_a, x)[:pk_a.held], getattr(pk_b, x)[:pk_b.held], equal_nan=True)
                   for x in ("first_tx_s", "done_s", "end_offset"))
        assert np.array_equal(pk_a.status[:pk_a.held], pk_b.status[:pk_b.held])
        assert np.array_equal(rec[0][0], served) and np.array_equal(rec[1][0], buf_a.backlog_bits)
        assert np.array_equal(rec[2][0], owner.astype(np.int32))
        assert np.array_equal(rec[3][0], sinr.astype(np.float32), equal_nan=True)
        assert np.array_equal(rec[4][0], power.astype(np.float32))
        if k % 4 == 3:  # the end of a scheduling interval
            want = (acc_a[1] / (4 * tti) >= min_rate) | (buf_a.backlog_bits <= 0)
            acc_a[1] = 0.0
            got = np.empty(n_ue, dtype=bool)
            tti_fast.close_interval(acc_b[1], 4 * tti, min_rate, buf_b.uf, got)
            assert np.array_equal(got, want) and np.array_equal(acc_a, acc_b)
