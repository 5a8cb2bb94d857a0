"""PHY: SINR with fronthaul quantization noise (hand-computed), CQI mapping, rate caps, path loss, fading."""

import math

import numpy as np
import pytest

from simcore.channel import (Channel, drop_ues, los_probability, pathloss_cost231_db, pathloss_uma_db,
                            pathloss_umi_db)
from simcore.phy import CQI_EFFICIENCY, BuiltinPhy, LinkModel, cqi_gap_for_ber, sinr_to_cqi
from simcore.contracts import Allocation

from core_helpers import small


def link(bits=None, rate_model="shannon", **phy):
    data = small().model_dump()
    data["phy"].update(rate_model=rate_model, **phy)
    if bits is not None:
        data["fronthaul"]["quantizer_bits"] = bits
    from simcore.scenario import parse_scenario

    s = parse_scenario(data)
    return s, LinkModel.from_scenario(s)


def test_noise_per_prb_by_hand():
    s, lk = link()
    b_prb = 12 * 15e3  # numerology 0
    assert s.cell.prb_bandwidth_hz == b_prb
    assert lk.noise_w == pytest.approx(10 ** ((-174 + 10 * math.log10(b_prb) + 9 - 30) / 10), rel=1e-12)


def test_sinr_with_and_without_quantization_noise_by_hand():
    g, p = 1e-10, 0.5  # gain, W on the PRB
    gain = np.full((1, 1, 4), g)
    owner = np.array([[0, -1, 0, -1]])
    power = np.array([[p, 0.0, p / 8, 0.0]])  # PRB 2 lightly loaded
    for bits in (4, 8, 16):
        _, lk = link(bits=bits)
        n0b, q = lk.noise_w, lk.quant_noise_w[0]
        want = [p * g / (n0b + g * q), p / 8 * g / (n0b + g * q)]  # the same noise on both PRBs
        sinr = lk.prb_sinr(gain, owner, power)
        assert sinr[0, [0, 2]] == pytest.approx(want, rel=1e-12)
        assert np.isnan(sinr[0, 1]) and np.isnan(sinr[0, 3])
        # the PHY backend reports the same and carries no bits on idle PRBs
        res = BuiltinPhy()
        res.open(None, None, lk)
        out = res.step(0, Allocation(np.array([0]), owner, power), gain)
        assert out.prb_sinr[0, [0, 2]] == pytest.approx(want, rel=1e-12)
        assert out.prb_bits[0, 1] == 0 and out.prb_bits[0, 3] == 0
        assert out.prb_bits[0, [0, 2]] == pytest.approx(lk.prb_bits(np.array(want)), rel=1e-12)
    # with a strong signal, the fronthaul caps each PRB's SINR at its own SQNR p / sigma_q^2: a PRB
    # at 1/8 of the power sees 9 dB less
    _, lk4 = link(bits=4)
    strong = lk4.prb_sinr(np.full((1, 1, 4), 1.0), owner, power)[0]
    q4 = lk4.quant_noise_w[0]
    assert strong[0] == pytest.approx(p / q4, rel=1e-6) and strong[2] == pytest.approx(p / 8 / q4, rel=1e-6)


def test_two_ru_interference_by_hand():
    _, lk = link(bits=10)
    q = np.array([3e-9, 5e-9])  # fronthaul noise per PRB of RU 0 and RU 1
    lk = LinkModel(**{**lk.__dict__, "quant_noise_w": q})
    # UE0 on RU0, UE1 on RU1, both on PRB 0
    gain = np.zeros((2, 2, 2))
    gain[0, 0, :], gain[0, 1, :] = 2e-10, 5e-11
    gain[1, 0, :], gain[1, 1, :] = 3e-11, 4e-10
    owner = np.array([[0, -1], [1, -1]])
    power = np.array([[1.0, 0.0], [2.0, 0.0]])
    want0 = 1.0 * 2e-10 / (lk.noise_w + (2.0 + q[1]) * 5e-11 + 2e-10 * q[0])
    want1 = 2.0 * 4e-10 / (lk.noise_w + (1.0 + q[0]) * 3e-11 + 4e-10 * q[1])
    sinr = lk.prb_sinr(gain, owner, power)
    assert sinr[0, 0] == pytest.approx(want0, rel=1e-12)
    assert sinr[1, 0] == pytest.approx(want1, rel=1e-12)
    # RU 1 moves to PRB 1: its signal leaves PRB 0, its (white) fronthaul noise does not
    sinr = lk.prb_sinr(gain, np.array([[0, -1], [-1, 1]]), np.array([[1.0, 0.0], [0.0, 2.0]]))
    assert sinr[0, 0] == pytest.approx(2e-10 / (lk.noise_w + q[1] * 5e-11 + 2e-10 * q[0]), rel=1e-12)
    # RU 1 silent: nothing of it reaches UE 0
    sinr = lk.prb_sinr(gain, np.array([[0, -1], [-1, -1]]), np.array([[1.0, 0.0], [0.0, 0.0]]))
    assert sinr[0, 0] == pytest.approx(2e-10 / (lk.noise_w + 2e-10 * q[0]), rel=1e-12)
    # the per-UE view (equal power everywhere) and the MILP's fixed interference use the same terms
    interf = lk.interference_w(gain, np.array([0, 1]), np.array([[1.0, 1.0], [2.0, 2.0]]))
    assert interf[0] == pytest.approx((2.0 + q[1]) * 5e-11, rel=1e-12)
    assert interf[1] == pytest.approx((1.0 + q[0]) * 3e-11, rel=1e-12)


def test_cqi_mapping_monotone_and_bounded():
    sinr = np.logspace(-3, 4, 2000)
    gap = cqi_gap_for_ber(5e-5)
    cqi = sinr_to_cqi(sinr, gap)
    assert cqi.min() == 0 and cqi.max() == 15
    assert (np.diff(cqi) >= 0).all()
    assert (np.diff(CQI_EFFICIENCY) > 0).all()
    _, lk = link(rate_model="cqi")
    se = lk.spectral_efficiency(sinr)
    assert (np.diff(se) >= 0).all() and se.max() == pytest.approx(5.5547)
    assert gap == pytest.approx(-math.log(5 * 5e-5) / 1.5)


def test_rate_never_exceeds_cap():
    sinr = np.logspace(-3, 9, 500)
    for cap in (2.0, 5.5547, 7.4):
        _, lk = link(max_spectral_efficiency=cap, snr_gap_db=3.0)
        se = lk.spectral_efficiency(sinr)
        assert se.max() <= cap and se.max() == pytest.approx(cap)
        assert (np.diff(se) >= 0).all()
        assert lk.spectral_efficiency(np.array([np.nan]))[0] == 0.0
        assert (lk.prb_bits(sinr) <= cap * lk.prb_bandwidth_hz * lk.tti_s + 1e-9).all()


def test_pathloss_models():
    d = np.geomspace(10, 5000, 200)
    for fn in (pathloss_uma_db, pathloss_umi_db):
        for los in (True, False):
            pl = fn(d, 25.0 if fn is pathloss_uma_db else 10.0, 1.5, 3.5, los)
            assert (np.diff(pl) > 0).all()
    assert pathloss_cost231_db(1000.0) == pytest.approx(128.1)
    assert pathloss_cost231_db(10000.0) == pytest.approx(128.1 + 37.6)


# TR 38.901 Table 7.4.1-1 at 3.5 GHz, UE 1.5 m, worked by hand: UMa BS 25 m (d'_BP = 560.4 m),
# UMi street canyon BS 10 m (d'_BP = 210.1 m); one point below and one above the breakpoint.
# (d2d m, LOS dB, NLOS dB); NLOS is the NLOS' formula, larger than LOS at each point.
PL_BY_HAND = {
    pathloss_uma_db: (25.0, [(200.0, 89.57, 114.46), (1200.0, 112.57, 144.76)]),
    pathloss_umi_db: (10.0, [(100.0, 85.31, 104.64), (600.0, 110.27, 132.06)]),
}


@pytest.mark.parametrize("fn", list(PL_BY_HAND), ids=["uma", "umi"])
def test_pathloss_by_hand(fn):
    h_bs, points = PL_BY_HAND[fn]
    for d2d, los_db, nlos_db in points:
        assert fn(d2d, h_bs, 1.5, 3.5, True) == pytest.approx(los_db, abs=0.01)
        assert fn(d2d, h_bs, 1.5, 3.5, False) == pytest.approx(nlos_db, abs=0.01)


def test_los_probability_formula_and_draws():
    """TR 38.901 Table 7.4.2-1 (UE height <= 13 m) by hand, and the drop's LOS draws against it."""
    assert los_probability("uma", [10.0, 18.0]).tolist() == [1.0, 1.0]
    assert los_probability("uma", 100.0) == pytest.approx(0.18 + math.exp(-100 / 63) * 0.82, rel=1e-12)
    assert los_probability("uma", 100.0) == pytest.approx(0.34767, abs=1e-5)
    assert los_probability("umi", 100.0) == pytest.approx(0.23098, abs=1e-5)
    assert los_probability("cost231_128_1", 300.0) == 1.0
    data = small().model_dump()
    data["slices"] = [{**data["slices"][0], "ues": 2000}]
    data["ue_drop"] = {"radius_m": 400.0, "min_distance_m": 10.0}
    from simcore.scenario import parse_scenario

    for model in ("uma", "umi"):
        data["channel"]["pathloss"] = model
        s = parse_scenario(data)
        rng = np.random.default_rng(5)
        geos = [drop_ues(s, rng) for _ in range(4)]
        d = np.concatenate([g.dist2d_m[:, 0] for g in geos])
        los = np.concatenate([g.los[:, 0] for g in geos])
        p = los_probability(model, d)
        for lo, hi in ((10, 18), (18, 50), (50, 120), (120, 250), (250, 400)):
            m = (d >= lo) & (d < hi)
            # LOS count in the bin: a sum of Bernoulli(p_i); 4 standard deviations
            sd = np.sqrt((p[m] * (1 - p[m])).sum())
            assert abs(los[m].sum() - p[m].sum()) <= 4 * sd + 1e-9, (model, lo, hi)


def test_shadowing_sigma():
    """Log-normal shadowing has mean 0 and the model's sigma per LOS state, or the configured one."""
    data = small().model_dump()
    data["slices"] = [{**data["slices"][0], "ues": 2000}]
    data["cell"]["prbs_per_ru"] = 1
    from simcore.scenario import parse_scenario

    for sigma_cfg, want in ((None, {True: 4.0, False: 6.0}), (8.0, {True: 8.0, False: 8.0})):
        data["channel"]["shadowing_sigma_db"] = sigma_cfg
        s = parse_scenario(data)
        rng = np.random.default_rng(8)
        x, los = [], []
        for _ in range(3):
            geo = drop_ues(s, rng)
            x.append(Channel(s, geo, rng).shadowing_db[:, 0])
            los.append(geo.los[:, 0])
        x, los = np.concatenate(x), np.concatenate(los)
        for state in (True, False):
            v = x[los == state]
            sigma = want[state]
            assert v.size > 500
            # standard errors: sigma / sqrt(n) for the mean, sigma / sqrt(2 n) for the std
            assert abs(v.mean()) < 4 * sigma / np.sqrt(v.size)
            assert abs(v.std() - sigma) < 4 * sigma / np.sqrt(2 * v.size)


@pytest.mark.parametrize("prbs, mu, fs_mhz", [(6, 0, 1.92), (15, 0, 3.84), (25, 0, 7.68), (30, 0, 7.68), (52, 0, 15.36),
                                              (106, 0, 30.72), (273, 1, 122.88), (30, 2, 30.72)])
def test_fronthaul_sample_rate(prbs, mu, fs_mhz):
    """Smallest power-of-two FFT covering the PRBs' subcarriers with a 10 % guard band, times the SCS
    (the LTE/NR sampling rates: 1.92, 3.84, 7.68, 15.36, 30.72, 122.88 Msps)."""
    data = small().model_dump()
    data["cell"].update(prbs_per_ru=prbs, numerology=mu)
    data["fronthaul"]["capacity_mbps"] = 5000.0
    from simcore.scenario import parse_scenario

    assert parse_scenario(data).sampling_rate_hz == pytest.approx(fs_mhz * 1e6, rel=1e-12)


@pytest.mark.parametrize("capacity_mbps, fs_msps, bits", [(150.0, None, 9), (153.6, None, 10), (153.5, None, 9),
                                                           (15.36, None, 1), (1000.0, None, 16), (100.0, 10.0, 5)])
def test_quantizer_bits_from_fronthaul_capacity(capacity_mbps, fs_msps, bits):
    """b = floor(C_FH / (2 f_s)) bits per I/Q component, at most 16; 30 PRBs at 15 kHz: f_s = 7.68 Msps."""
    data = small().model_dump()
    data["fronthaul"].update(capacity_mbps=capacity_mbps, sampling_rate_msps=fs_msps)
    from simcore.scenario import parse_scenario

    s = parse_scenario(data)
    assert s.quantizer_bits == bits
    data["fronthaul"]["quantizer_bits"] = 3  # configured bits win over the capacity
    assert parse_scenario(data).quantizer_bits == 3


def test_rayleigh_fading_statistics():
    """E|h|^2 = 1 and power autocorrelation rho^2 between consecutive TTIs (Rayleigh AR(1))."""
    data = small(ues=20).model_dump()
    data["channel"].update(fading_correlation=0.8, shadowing_sigma_db=0.0)
    data["cell"]["prbs_per_ru"] = 50
    from simcore.scenario import parse_scenario

    s = parse_scenario(data)
    rng = np.random.default_rng(1)
    ch = Channel(s, drop_ues(s, rng), rng)
    norm = []
    for _ in range(60):
        ch.advance()
        ch.refresh_all()
        norm.append(ch.gain / ch.large_scale_gain[:, :, None])
    x = np.stack(norm)  # (T, U, R, K) = |h|^2
    assert x.mean() == pytest.approx(1.0, abs=0.03)
    a, b = x[:-1].ravel() - 1, x[1:].ravel() - 1
    # for Rayleigh |h|^2, corr(|h_t|^2, |h_t+1|^2) = rho^2
    assert np.corrcoef(a, b)[0, 1] == pytest.approx(0.64, abs=0.03)


def test_lazy_fading_draws_have_the_same_law():
    """Skipping n TTIs (drawn only when read) keeps E|h|^2 = 1 and correlation rho^(2n)."""
    data = small(ues=20).model_dump()
    data["channel"].update(fading_correlation=0.9, shadowing_sigma_db=0.0)
    data["cell"]["prbs_per_ru"] = 50
    from simcore.scenario import parse_scenario

    s = parse_scenario(data)
    rng = np.random.default_rng(2)
    ch = Channel(s, drop_ues(s, rng), rng)
    xs = []
    for _ in range(50):
        for _ in range(3):
            ch.advance()
        ch.refresh_all()
        xs.append((ch.gain / ch.large_scale_gain[:, :, None]).copy())
    x = np.stack(xs)
    assert x.mean() == pytest.approx(1.0, abs=0.03)
    assert np.corrcoef(x[:-1].ravel(), x[1:].ravel())[0, 1] == pytest.approx(0.9 ** 6, abs=0.03)


@pytest.mark.parametrize("predraw", [0, 1, 2])
def test_mixed_lazy_refreshes_keep_the_ar1_law(predraw):
    """The engine's pattern: PRB-owner entries every TTI (drawn TTI by TTI, or pre-drawn until the
    next decision, or pre-drawn too far and cut short by the decision), everything at decisions
    (every 5 TTIs)."""
    data = small(ues=40).model_dump()
    data["channel"].update(fading_correlation=0.85, shadowing_sigma_db=0.0)
    data["cell"]["prbs_per_ru"] = 40
    from simcore.scenario import parse_scenario

    s = parse_scenario(data)
    rng = np.random.default_rng(4)
    ch = Channel(s, drop_ues(s, rng), rng)
    n_ue = ch.gain.shape[0]
    owned, other = [], []
    for t in range(400):
        if t:
            ch.advance()
        if t % 5 == 0:
            ch.refresh_all()
            other.append((ch.gain[n_ue // 2:, 0, :] / ch.large_scale_gain[n_ue // 2:, :1]).copy())
            owner = np.arange(s.cell.prbs_per_ru)[None, :] % (n_ue // 2)  # first half of the UEs own PRBs
            owner = owner.copy()  # a fresh allocation object, as the engine hands over
        ch.refresh_prbs(owner, until_tti=(t // 5 + predraw) * 5 if predraw else None)
        k = np.arange(s.cell.prbs_per_ru)
        owned.append(ch.gain[owner[0], 0, k] / ch.large_scale_gain[owner[0], 0])
    x = np.stack(owned)
    # across seeds the sample mean has a standard deviation of ~0.018 and the correlation ~0.009:
    # the bands below are ~3 sigma
    assert x.mean() == pytest.approx(1.0, abs=0.055)
    assert np.corrcoef(x[:-1].ravel(), x[1:].ravel())[0, 1] == pytest.approx(0.85 ** 2, abs=0.03)
    y = np.stack(other)
    assert y.mean() == pytest.approx(1.0, abs=0.05)
    assert np.corrcoef(y[:-1].ravel(), y[1:].ravel())[0, 1] == pytest.approx(0.85 ** 10, abs=0.04)


def test_complex_normal_draws():
    """Box-Muller CN(0, 1): each part N(0, 1/2) (Kolmogorov-Smirnov), uncorrelated, |w|^2 ~ Exp(1)."""
    from scipy import stats

    from simcore.channel import complex_normal

    w = complex_normal(np.random.default_rng(3), (400, 500)).astype(float)
    assert w.shape == (2, 400, 500)
    re, im = w[0].ravel(), w[1].ravel()
    for part in (re, im):
        assert stats.kstest(part * np.sqrt(2.0), "norm").pvalue > 1e-3
    assert abs(np.corrcoef(re, im)[0, 1]) < 4 / np.sqrt(re.size)
    assert stats.kstest(re**2 + im**2, "expon").pvalue > 1e-3
