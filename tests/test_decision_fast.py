"""The compiled decision kernels (simcore/decision_fast.py) give exactly what the numpy code gives:
the same uniforms with the generator left in the same state, the same fading and gains after any
mix of decisions and between-decision refreshes, the same per-UE objective sums."""

import copy

import numpy as np
import pandas as pd

from simcore import decision_fast as fast
from simcore.channel import Channel, drop_ues, uniform_f32
from simcore.phy import LinkModel
from simcore.scenario import parse_scenario

from core_helpers import small


def test_uniforms_and_generator_state_equal_numpys():
    for seed, shape in ((1, (2700,)), (2, (7,)), (3, (1,)), (4, (0,)), (5, (3, 5)), (6, (10,)), (7, (8,))):
        rng, ref = np.random.default_rng(seed), np.random.default_rng(seed)
        pcg = fast.PcgState.of(rng)
        assert pcg is not None and pcg.ok()
        for _ in range(3):
            got = uniform_f32(rng, shape, pcg)
            want = ref.random((2, *shape), dtype=np.float32)
            assert got.shape == want.shape and np.array_equal(got.view(np.uint32), want.view(np.uint32))
            assert rng.bit_generator.state == ref.bit_generator.state  # incl. has_uint32 and uinteger
            # other draws in between keep the two in step
            assert rng.integers(1 << 40) == ref.integers(1 << 40)


def test_buffered_half_falls_back_to_the_generator():
    rng, ref = np.random.default_rng(9), np.random.default_rng(9)
    pcg = fast.PcgState.of(rng)
    assert rng.random(dtype=np.float32) == ref.random(dtype=np.float32)  # leaves a 32-bit half buffered
    assert not pcg.ok()
    got = uniform_f32(rng, (5,), pcg)
    assert np.array_equal(got, ref.random((2, 5), dtype=np.float32))
    assert rng.bit_generator.state == ref.bit_generator.state
    assert fast.PcgState.of(np.random.Generator(np.random.MT19937(1))) is None  # other bit generators: numpy
    # a copied channel draws through its own generator (the views would point into the original's)
    ch, ref = _channels(3)
    twin = copy.deepcopy(ch)
    assert twin._pcg is None
    for c in (ch, twin, ref):
        c.advance()
        c.refresh_all()
    assert np.array_equal(ch.gain, twin.gain) and np.array_equal(ch.gain, ref.gain)


def _channels(seed: int, n_ru: int = 1):
    data = small(ues=5).model_dump()
    if n_ru > 1:
        data["cell"]["rus"] = [dict(data["cell"]["rus"][0], x_m=400.0 * r) for r in range(n_ru)]
    s = parse_scenario(data)
    geo = drop_ues(s, np.random.default_rng(seed))
    fast_ch, ref = (Channel(s, geo, np.random.default_rng(seed + 1)) for _ in range(2))
    ref._pcg = None  # the numpy path throughout
    return fast_ch, ref


def test_refresh_all_equals_the_numpy_path_bit_for_bit():
    """Decisions every TTI (one gap for every entry), and decisions apart with the owners' entries
    refreshed in between (per-entry gaps, trajectories), on one and on two RUs."""
    rng = np.random.default_rng(0)
    for seed, n_ru in ((10, 1), (20, 2)):
        ch, ref = _channels(seed, n_ru)
        assert ch._pcg is not None
        n_ue, n_prb = ch.gain.shape[0], ch.gain.shape[2]
        for tti in range(1, 40):
            for c in (ch, ref):
                c.advance()
            if tti % 4 == 0 or tti < 6:  # a decision
                for c in (ch, ref):
                    c.refresh_all()
                owner = np.where(rng.random((n_ru, n_prb)) < 0.3, -1, rng.integers(0, n_ue, (n_ru, n_prb)))
            else:
                until = tti + int(rng.integers(1, 4))
                for c in (ch, ref):
                    c.refresh_prbs(owner, until_tti=until)
            assert np.array_equal(ch.gain, ref.gain)
            assert np.array_equal(ch._h.view(np.uint32), ref._h.view(np.uint32))
        assert ch._rng.bit_generator.state == ref._rng.bit_generator.state


def test_owner_rates_sum_in_bincount_order():
    rng = np.random.default_rng(5)
    out = np.empty(12)
    for _ in range(50):
        rate = 10 ** rng.uniform(3, 7, (12, 30))
        owner = np.where(rng.random(30) < 0.3, -1, rng.integers(0, 12, 30))
        power = np.where(owner >= 0, 0.5, 0.0)
        k = (owner >= 0).nonzero()[0]
        assert fast.one_ru_owner_rates(owner, power, rate, 0.5, out)
        assert np.array_equal(out, np.bincount(owner[k], weights=rate[owner[k], k], minlength=12))
        if k.size:
            power[k[0]] = 0.25
            assert not fast.one_ru_owner_rates(owner, power, rate, 0.5, out)


def test_decision_record_row_casts_and_sums_as_numpy():
    rng = np.random.default_rng(6)
    for n_ue, n_cells in ((5, 3), (90, 30), (40, 300)):
        rec = [np.zeros((2, n_ue), np.int16), np.zeros((2, n_cells), np.int16), np.zeros((2, n_cells), np.float32)]
        ue_ru = rng.integers(-1, 40000, n_ue)  # beyond int16: wraps as numpy's assignment does
        owner = rng.integers(-1, 70000, (3, n_cells // 3))
        power = rng.uniform(0, 1e3, owner.shape) * (rng.random(owner.shape) < 0.7)
        total = fast.record_decision(1, ue_ru, owner, power, *rec)
        assert total == power.sum()
        want = [np.zeros_like(r) for r in rec]
        want[0][1], want[1][1], want[2][1] = ue_ru, owner.ravel(), power.ravel()
        assert all(np.array_equal(g, w) for g, w in zip(rec, want))


def test_rate_rows_of_the_ues_with_data_equal_the_full_table():
    data = small(ues=4).model_dump()
    rng = np.random.default_rng(8)
    for gap_db in (0.0, 3.0):
        data["phy"]["snr_gap_db"] = gap_db
        lk = LinkModel.from_scenario(parse_scenario(data))
        for _ in range(20):
            gain = 10 ** rng.uniform(-15, -7, (12, 1, 9))
            gain[rng.random(gain.shape) < 0.05] = 0.0
            ru_power = np.array([rng.uniform(1.0, 40.0)])
            want_sinr = lk.sinr(gain[:, 0, :], ru_power[0] / 9, 0)  # the numpy formulas
            want = lk.prb_rate_bps(want_sinr)
            got, got_sinr = lk.estimated_prb_rate_bps(gain, np.zeros(12, np.int64), ru_power)
            assert np.array_equal(got, want) and np.array_equal(got_sinr, want_sinr)
            full_out = (np.empty((12, 9)), np.empty((12, 9)))
            assert np.array_equal(lk.estimated_prb_rate_bps(gain, np.zeros(12, np.int64), ru_power, out=full_out)[0], want)
            bits = np.where(rng.random(12) < 0.4, rng.uniform(1, 1e4, 12), 0.0)
            out = (np.full((12, 9), -1.0), np.empty((12, 9)))
            rate, sinr = lk.estimated_prb_rate_bps(gain, np.zeros(12, np.int64), ru_power, out=out, data_bits=bits)
            assert sinr is None and rate is out[0]
            assert np.array_equal(rate[bits > 0], want[bits > 0]) and (rate[bits <= 0] == -1.0).all()
            copy, snap_rate, snap_sinr = lk.csi_snapshot(gain, ru_power)  # a CSI report's arrays
            assert copy is not gain and np.array_equal(copy, gain)
            assert np.array_equal(snap_rate, want) and np.array_equal(snap_sinr, want_sinr)


def _quick_profiled(policy: str, **over):
    from oransim.calibrate import apply_profile
    from simcore.scenario import load_scenario
    from simcore.yamlio import load_yaml_text, read_text_file

    root = __import__("pathlib").Path(__file__).resolve().parent.parent
    base = load_scenario(root / "scenarios" / "quick.yaml")
    base = parse_scenario({**base.model_dump(mode="python"), "duration_s": 0.05,
                           "policy": {"name": policy, "params": {}}, **over})
    return apply_profile(base, load_yaml_text(read_text_file(root / "scenarios/calibration/ns3_lte.yaml")), "builtin")


def _run(scn, compiled: bool, monkeypatch):
    from simcore.engine import Engine
    from simcore.phy import BuiltinPhy
    from simcore.plugins import make_policy

    with monkeypatch.context() as m:
        if not compiled:
            m.setattr(Engine, "_compiled_plan", lambda self, src: None)
        eng = Engine(scn, make_policy(scn.policy.name, scn.policy.params), BuiltinPhy())
        res = eng.run()
    assert (eng._plan is not None) == compiled
    return res


def test_compiled_decision_equals_decide_arrays(monkeypatch):
    """PF and max-CQI deciding every TTI from CSI reports (quick with the calibration profile) and with
    ideal CSI: the engine's one compiled decision gives the tables of ``decide_arrays`` + check +
    objective + record, bit for bit."""
    for policy in ("pf", "maxcqi"):
        for scn in (_quick_profiled(policy), parse_scenario({**_quick_profiled(policy).model_dump(mode="python"),
                                                              "phy": {"backend": "builtin"}})):
            a, b = _run(scn, True, monkeypatch), _run(scn, False, monkeypatch)
            assert len(a.decisions) == scn.n_tti
            for t in ("decisions", "tti", "packets"):
                pd.testing.assert_frame_equal(a.table(t), b.table(t), check_exact=True)


def test_compiled_decision_leaves_an_infeasible_one_to_the_full_check(monkeypatch):
    """A budget the kernel's check refuses: the full check decides and names it (the run stops)."""
    import pytest

    from simcore.engine import Engine, SimulationError
    from simcore.phy import BuiltinPhy
    from simcore.plugins import make_policy

    scn = _quick_profiled("pf")
    eng = Engine(scn, make_policy("pf"), BuiltinPhy())
    real = Engine._compiled_plan

    def shrunk(self, src):  # the RU budget halved after the first decision (read-only arrays: new ones)
        plan = real(self, src)
        self.ru_max_power_w = self.ru_max_power_w / 2
        self.ru_max_power_w.flags.writeable = False
        return plan[:5] + (self.ru_max_power_w * (1 + 1e-9),)

    monkeypatch.setattr(Engine, "_compiled_plan", shrunk)
    with pytest.raises(SimulationError, match="RU power budget: RU 0"):
        eng.run()
    assert eng.decision_rec.n == 1  # the refused decision left no row
