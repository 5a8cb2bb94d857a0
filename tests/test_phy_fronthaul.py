"""Fronthaul quantization noise: the variance by hand, and against a quantized OFDM signal.

The model (simcore.phy docstring): a time-domain b-bit quantizer per I/Q component whose full scale
sits papr_backoff_db above the RMS of the RU's signal at maximum power; its noise (plus clipping)
is white across the sampled band, so each PRB gets sigma_q^2 = P_max (B_PRB / f_s) (kappa^2 /
(3 4^b) + clip), whatever its own power.
"""

import math
from pathlib import Path

import numpy as np
import pytest

from simcore.phy import LinkModel
from simcore.scenario import ScenarioError, parse_scenario

from core_helpers import scenario


def test_noise_variance_by_hand():
    # default cell: 30 PRBs of 180 kHz, 46 dBm; 30 x 12 = 360 subcarriers / 0.9 -> 512-point FFT,
    # f_s = 512 x 15 kHz = 7.68 MHz; 100 Mbit/s / (2 x 7.68 Msps) = 6.5 -> b = 6 bits
    s = scenario(fronthaul={"capacity_mbps": 100.0, "latency_us": 50.0})
    assert s.sampling_rate_hz == 7.68e6 and s.quantizer_bits == 6
    p_max = 10 ** ((46 - 30) / 10)  # 39.81 W
    kappa2 = 10 ** (12 / 10)  # default papr_backoff_db 12
    quant = kappa2 / (3 * 2 ** 12)  # 1.28979e-3 of P_max
    kappa = math.sqrt(kappa2)
    q_tail = 0.5 * math.erfc(kappa / math.sqrt(2))
    pdf = math.exp(-kappa2 / 2) / math.sqrt(2 * math.pi)
    # clipping error minus its part correlated with the signal (Bussgang), per component over sigma^2
    clip = 2 * ((1 + kappa2) * q_tail - kappa * pdf) - 4 * q_tail**2
    assert clip == pytest.approx(6.7400e-6, rel=1e-4)
    want = p_max * (quant + clip) * 180e3 / 7.68e6
    assert want == pytest.approx(1.209744e-3, rel=1e-6)  # W per PRB
    link = LinkModel.from_scenario(s)
    assert link.quant_noise_w == pytest.approx([want], rel=1e-12)
    # SQNR of a PRB at the equal share P_max / K: 6.02 b + 4.77 - 12 dB + oversampling 10 log10(7.68 / 5.4)
    sqnr_db = 10 * math.log10(p_max / 30 / link.quant_noise_w[0])
    assert sqnr_db == pytest.approx(6.0206 * 6 + 4.7712 - 12 + 10 * math.log10(7.68 / 5.4), abs=0.05)
    # one bit more: a quarter of the quantization part
    s7 = scenario(fronthaul={"capacity_mbps": 100.0, "latency_us": 50.0, "quantizer_bits": 7})
    q7 = LinkModel.from_scenario(s7).quant_noise_w[0]
    assert q7 == pytest.approx(p_max * (quant / 4 + clip) * 180e3 / 7.68e6, rel=1e-12)


def _quantize(x: np.ndarray, bits: int, full_scale: float) -> np.ndarray:
    """Mid-rise uniform quantizer with 2^bits levels over [-full_scale, full_scale], clipping outside."""
    step = 2 * full_scale / 2**bits
    idx = np.clip(np.floor(x / step), -(2 ** (bits - 1)), 2 ** (bits - 1) - 1)
    return (idx + 0.5) * step


@pytest.mark.parametrize("bits,backoff_db", [(5, 12.0), (8, 12.0), (4, 10.0), (8, 9.0)])
def test_noise_per_prb_matches_a_quantized_ofdm_signal(bits, backoff_db):
    """Quantize a 512-point OFDM signal (30 PRBs at the RU's maximum power: 2 PRBs at 1/16 of the
    others' power, 2 empty) with the model's full scale. The distortion left after removing its part
    correlated with the signal (Bussgang: that part is a gain on the signal, not noise) has, on every
    PRB, loaded or not, the model's sigma_q^2. Bands: 400 symbols give about 2 % spread per PRB; at
    9 dB, where clipping dominates, its intermodulation is not quite white (in band about 7 % above
    the white average), hence 10 %."""
    s = scenario(fronthaul={"capacity_mbps": 150.0, "latency_us": 50.0, "quantizer_bits": bits,
                            "papr_backoff_db": backoff_db})
    link = LinkModel.from_scenario(s)
    n_fft, n_prb, n_sym = 512, 30, 400
    p_max = 10 ** ((46 - 30) / 10)
    prb_power = np.ones(n_prb)
    prb_power[[3, 17]] = 1 / 16
    prb_power[[8, 25]] = 0.0
    prb_power *= p_max / prb_power.sum()  # the RU at its maximum power, where the clipping term holds
    rng = np.random.default_rng(5)
    used = np.r_[np.arange(1, 181), np.arange(n_fft - 180, n_fft)]  # 360 subcarriers around DC
    sc_power = np.repeat(prb_power / 12, 12)
    # numpy's ifft: E|x|^2 = sum_k E|X_k|^2 / N^2, so X_k carries N^2 times its power
    X = np.zeros((n_sym, n_fft), complex)
    X[:, used] = (rng.standard_normal((n_sym, 360)) + 1j * rng.standard_normal((n_sym, 360))) \
        * np.sqrt(sc_power * n_fft**2 / 2)
    x = np.fft.ifft(X, axis=1)
    assert np.mean(np.abs(x) ** 2) == pytest.approx(p_max, rel=0.02)
    full_scale = math.sqrt(p_max / 2) * 10 ** (backoff_db / 20)  # kappa x RMS per component at P_max
    y = _quantize(x.real, bits, full_scale) + 1j * _quantize(x.imag, bits, full_scale)
    gain = np.vdot(x, y).real / np.vdot(x, x).real  # Bussgang gain, 1 - 2 Q(kappa) for a clipper
    assert gain == pytest.approx(1 - math.erfc(10 ** (backoff_db / 20) / math.sqrt(2)), abs=2e-3)
    D = np.fft.fft(y - gain * x, axis=1)
    per_prb = (np.abs(D[:, used]) ** 2).mean(axis=0).reshape(n_prb, 12).sum(axis=1) / n_fft**2
    np.testing.assert_allclose(per_prb, link.quant_noise_w[0], rtol=0.10 if backoff_db < 10 else 0.07)
    # white: the empty and lightly loaded PRBs get what the loaded ones get
    assert per_prb[[8, 25, 3, 17]].mean() == pytest.approx(per_prb.mean(), rel=0.05)


def test_papr_backoff_is_validated():
    with pytest.raises(ScenarioError) as exc:
        parse_scenario({"fronthaul": {"papr_backoff_db": 1.0}})
    assert "fronthaul.papr_backoff_db" in str(exc.value)


def test_fronthaul_binds_in_the_paper_cell():
    """The old per-PRB-power model lost 0.7 % of mean PRB capacity from 9 to 4 bits and 3.7 % at
    3 bits; with the time-domain quantizer 3 bits cost about a quarter (20-drop mean 0.75)."""
    from policies.classic import ProportionalFair
    from simcore.engine import Engine
    from simcore.phy import BuiltinPhy
    from simcore.scenario import load_scenario

    base = load_scenario(Path(__file__).resolve().parents[1] / "scenarios" / "paper_default.yaml")
    cap = {}
    for bits in (9, 4, 3):
        data = base.model_dump()
        data["fronthaul"]["quantizer_bits"] = bits
        data["duration_s"] = 0.01  # only the drop and the first observation are used
        rates = [Engine(parse_scenario({**data, "seed": seed}), ProportionalFair(), BuiltinPhy())
                 .observation(0).prb_rate_bps.mean() for seed in (1, 2, 3)]
        cap[bits] = np.mean(rates)
    assert cap[4] / cap[9] < 0.99
    assert cap[3] / cap[9] < 0.85


def test_observation_estimate_is_the_phy_sinr_at_full_load():
    """Three RUs, every PRB in use at P/K: the per-UE estimate (equal power, full interference,
    LinkModel.interference_w) equals the PHY's SINR (LinkModel.prb_sinr) wherever the UE owns the PRB."""
    s = scenario(cell={"numerology": 0, "prbs_per_ru": 4, "carrier_ghz": 3.5, "noise_figure_db": 9.0,
                       "rus": [{"x_m": 400.0 * i, "y_m": 0.0} for i in range(3)]},
                 fronthaul={"capacity_mbps": 60.0, "latency_us": 50.0})
    link = LinkModel.from_scenario(s)
    rng = np.random.default_rng(3)
    n_ue = 6
    gain = rng.exponential(1.0, (n_ue, 3, 4)) * 10 ** rng.uniform(-13, -9, (n_ue, 3, 1))
    serving = np.array([0, 0, 1, 1, 2, 2])
    p = np.full(3, 10 ** 1.6)
    _, est = link.estimated_prb_rate_bps(gain, serving, p)
    for shift in (0, 1):
        owner = np.array([[0, 1, 0, 1], [2, 3, 2, 3], [4, 5, 4, 5]])
        owner = np.roll(owner, shift, axis=1)
        sinr = link.prb_sinr(gain, owner, np.full((3, 4), 10 ** 1.6 / 4))
        for r in range(3):
            for k in range(4):
                assert sinr[r, k] == pytest.approx(est[owner[r, k], k], rel=1e-9)
