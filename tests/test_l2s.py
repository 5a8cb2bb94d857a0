"""The link-to-system model (simcore.l2s): curves and HARQ against hand computations, and in the engine."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate

from simcore import l2s
from simcore.buffers import DELIVERED, DROP_HARQ, DROPPED, QUEUED, PacketTable, UeBuffers
from simcore.scenario import L2sConfig, ScenarioError, parse_scenario, scenario_warnings

from core_helpers import Recording, assert_conserved, run_engine, small

GAP = 10 ** 0.1  # the default 1 dB coding gap, linear


def bpsk_mi(snr: float) -> float:
    """Mutual information of BPSK (+-1) over real AWGN of variance 1/snr, by direct integration:
    1 - E[log2(1 + exp(-2 y / sigma^2))] given +1 sent."""
    s2 = 1.0 / snr

    def f(y):
        return (math.exp(-(y - 1.0) ** 2 / (2 * s2)) / math.sqrt(2 * math.pi * s2)
                * np.logaddexp(0.0, -2 * y / s2) / math.log(2))

    width = 12 * math.sqrt(s2)
    return 1.0 - integrate.quad(f, 1 - width, 1 + width, limit=200)[0]


def q(z: float) -> float:
    return 0.5 * math.erfc(z / math.sqrt(2))


# ------------------------------------------------------------------------------------ curves
def test_qpsk_mutual_information_is_two_bpsk():
    # QPSK of unit energy at SINR rho: two BPSKs, each at SNR rho per real dimension
    for rho_db in (-5.0, 0.0, 3.0, 8.0):
        rho = 10 ** (rho_db / 10)
        assert float(l2s.bicm_mi(rho, 0)) == pytest.approx(2 * bpsk_mi(rho), abs=3e-4)
    assert float(l2s.bicm_mi(1.0, 0)) == pytest.approx(0.97189, abs=3e-4)  # 2 x 0.48595 at 0 dB
    # saturation at Qm, nothing at no SINR, and more bits per symbol need more SINR at low MI
    assert [float(l2s.bicm_mi(1e5, m)) for m in range(3)] == pytest.approx([2.0, 4.0, 6.0], abs=1e-6)
    assert float(l2s.bicm_mi(0.0, 1)) == 0.0
    assert l2s.bicm_mi_inverse(l2s.bicm_mi(4.0, 2), 2) == pytest.approx(4.0, rel=1e-3)


def test_miesm_effective_sinr():
    # equal SINRs: the effective SINR is that SINR; unequal: the SINR of the mean MI
    assert l2s.miesm(np.full(5, 3.0), 1) == pytest.approx(3.0, rel=1e-3)
    eff = l2s.miesm(np.array([1.0, 10.0]), 0)
    mean_mi = (2 * bpsk_mi(1.0) + 2 * bpsk_mi(10.0)) / 2
    assert float(l2s.bicm_mi(eff, 0)) == pytest.approx(mean_mi, abs=5e-4)
    assert 1.0 < eff < 5.5  # below the arithmetic mean: a faded PRB costs more than a strong one gives


def test_bler_against_hand_computation():
    # MCS 1 (QPSK, 0.1523 bit per use) on 1 PRB (180 uses) at 0 dB, 1 dB coding gap
    rho = 1.0 / GAP
    mi = 2 * bpsk_mi(rho)
    v = (1 - (1 + rho) ** -2) / math.log(2) ** 2
    n, k = 180.0, 0.1523 * 180
    hand = q((n * mi - k) / math.sqrt(n * v))
    assert float(l2s.bler(1.0, 1, n, GAP, 6144)) == pytest.approx(hand, abs=2e-3)
    # MCS 7 (16QAM, 1.4766) at 3 dB on 2 PRBs
    rho = 10 ** 0.3 / GAP
    mi = float(l2s.bicm_mi(rho, 1))
    v = (1 - (1 + rho) ** -2) / math.log(2) ** 2
    n, k = 360.0, 1.4766 * 360
    assert float(l2s.bler(10 ** 0.3, 7, n, GAP, 6144)) == pytest.approx(q((n * mi - k) / math.sqrt(n * v)), rel=1e-9)
    # a block of three code blocks: all three must decode
    n = 30 * 180.0
    k = 5.5547 * n  # 29,995 bits: 5 blocks of 6144 or fewer
    c = math.ceil(k / 6144)
    rho = 10 ** 2.0 / GAP
    mi = float(l2s.bicm_mi(rho, 2))
    v = (1 - (1 + rho) ** -2) / math.log(2) ** 2
    per_block = q((n / c * mi - k / c) / math.sqrt(n / c * v))
    assert c == 5
    assert float(l2s.bler(100.0, 15, n, GAP, 6144)) == pytest.approx(1 - (1 - per_block) ** c, rel=1e-9)


def test_mcs_thresholds_are_where_bler_meets_the_target():
    thr = l2s.mcs_thresholds_db(4, 180.0, 0.1, GAP, 6144)
    for n in (1, 4):
        for mcs in (1, 8, 15):
            x = 10 ** (thr[n, mcs - 1] / 10)
            assert float(l2s.bler(x, mcs, n * 180.0, GAP, 6144)) == pytest.approx(0.1, abs=1e-6)
    assert (np.diff(thr[1:], axis=1) > 0).all()  # a higher MCS needs more SINR
    # a gap per modulation: each MCS's threshold moves with its own modulation's gap
    per_mod = l2s.mcs_thresholds_db(1, 180.0, 0.1, 10 ** (np.array([1.0, 2.0, 3.0])[l2s.MCS_MOD] / 10), 6144)
    thr3 = l2s.mcs_thresholds_db(1, 180.0, 0.1, 10 ** 0.3, 6144)
    assert per_mod[1, 0] == pytest.approx(thr[1, 0]) and per_mod[1, 14] == pytest.approx(thr3[1, 14])
    assert per_mod[1, 7] == pytest.approx(thr[1, 7] + 1.0, abs=1e-6)  # 16QAM: 2 dB instead of 1


# ------------------------------------------------------------------------------ HARQ, OLLA
ERR, OK = -1.0, 2.0  # stand-in uniform draws: below any block error probability / above any


class Draws:
    """A stand-in random generator: ``random`` returns the queued values (ERR: error, OK: decoded)."""

    def __init__(self, values):
        self.values = list(values)

    def random(self, size=None):
        if size is None:
            return float(self.values.pop(0))
        return np.array([self.values.pop(0) for _ in range(size)], dtype=float)


def one_ue(sizes_bits, draws, **cfg) -> tuple[l2s.LinkToSystem, UeBuffers, PacketTable]:
    pk = PacketTable()
    n = len(sizes_bits)
    pk.add(np.zeros(n, dtype=np.int64), np.asarray(sizes_bits, float), np.zeros(n), np.zeros(n), np.zeros(n))
    buf = UeBuffers(1, np.array([1e9]), np.zeros(1, dtype=np.int64), np.array([1.0]), np.array([False]), pk)
    buf.admit_ready(0.0)
    data = L2sConfig().model_dump()
    for key, value in cfg.items():
        section, _, field = key.partition("__")
        if field:
            data[section][field] = value
        else:
            data[key] = value
    model = l2s.LinkToSystem(L2sConfig.model_validate(data), 180e3, 1e-3, 1, buf, Draws(draws), DROP_HARQ)
    return model, buf, pk


def tti(model, buf, k, sinr=10.0, prbs=1):
    owner = np.full((1, prbs), 0)
    s = np.broadcast_to(np.asarray(sinr, dtype=float), (1, prbs))
    cap, here = model.step(k, owner, s, s, k * 1e-3, (k + 1) * 1e-3)
    return buf.serve(cap, k * 1e-3, (k + 1) * 1e-3) + here


def test_block_error_keeps_bits_queued_and_retransmission_delivers_them():
    model, buf, pk = one_ue([300.0], [ERR, OK])  # first transmission fails, the retransmission decodes
    assert tti(model, buf, 0)[0] == 0.0
    assert buf.backlog_bits[0] == 300.0 and pk.status[0] == QUEUED
    assert model.in_flight_bits == 300.0
    assert pk.first_tx_s[0] == 0.0  # it went on air at TTI 0
    for k in range(1, 8):  # nothing before the HARQ round trip (8 TTIs); no new data to send
        assert tti(model, buf, k)[0] == 0.0
    assert tti(model, buf, 8)[0] == 300.0
    assert pk.status[0] == DELIVERED and pk.done_s[0] == pytest.approx(9e-3)
    assert buf.backlog_bits[0] == 0.0 and model.in_flight_bits == 0.0
    assert model.stats["transmissions"] == 2 and model.stats["first_nacks"] == 1


@pytest.mark.parametrize("combining", ["ir", "chase", "none"])
def test_soft_combining_against_hand_computation(combining):
    model, buf, _ = one_ue([300.0], [ERR, ERR], harq__combining=combining, harq__max_transmissions=3)
    tti(model, buf, 0, sinr=0.5)
    tti(model, buf, 8, sinr=2.0)
    blk = model.pending[0][0]
    assert blk.mcs >= 1 and blk.n_tx == 2
    mod = int(l2s.MCS_MOD[blk.mcs - 1])
    n = 180.0

    def mi(x):
        return float(l2s.bicm_mi(x / GAP, mod))

    def v(x):
        return (1 - (1 + x / GAP) ** -2) / math.log(2) ** 2

    if combining == "ir":  # mutual information and dispersion add up over the transmissions
        assert blk.info == pytest.approx(n * mi(0.5) + n * mi(2.0))
        assert blk.spread == pytest.approx(n * v(0.5) + n * v(2.0))
    elif combining == "chase":  # the SINRs add up (one PRB each time: effective = its SINR)
        assert blk.chase == pytest.approx(2.5, rel=1e-3)
    else:
        assert blk.chase == pytest.approx(0.5, rel=1e-3)  # only the first transmission's


def test_blocks_are_delivered_in_order():
    # at 0 dB one PRB carries 108 bits (MCS 4): two blocks; the first fails, the second decodes
    model, buf, pk = one_ue([100.0, 100.0], [ERR, OK, OK], harq__processes=2)
    out0 = tti(model, buf, 0, sinr=1.0)
    assert out0[0] == 0.0
    first = model.pending[0][0]
    out1 = tti(model, buf, 1, sinr=1.0)
    assert out1[0] == 0.0, "a decoded block waits for the earlier one in HARQ"
    second = model.pending[0][1]
    assert second.state == l2s.ACKED and first.state == l2s.IN_FLIGHT
    out8 = tti(model, buf, 8, sinr=1.0)
    assert out8[0] == pytest.approx(second.hi)
    assert model.pending[0] == []


def test_exhausted_block_drops_its_packets_and_conservation_holds():
    model, buf, pk = one_ue([300.0, 300.0], [ERR, ERR], harq__max_transmissions=2, harq__processes=1)
    tti(model, buf, 0, sinr=100.0)  # one block carries both packets (600 bits on 1 PRB at 20 dB)
    assert model.pending[0][0].hi == 600.0
    tti(model, buf, 8, sinr=100.0)  # second failure: lost
    assert (pk.status[:2] == DROPPED).all() and (pk.drop_reason[:2] == DROP_HARQ).all()
    assert buf.backlog_bits[0] == 0.0 and model.stats["lost_blocks"] == 1
    # requeue instead: the block starts a new round and is delivered
    model, buf, pk = one_ue([300.0], [ERR, ERR, OK], harq__max_transmissions=2, harq__on_failure="requeue")
    tti(model, buf, 0)
    tti(model, buf, 8)
    assert model.stats["requeued_blocks"] == 1 and pk.status[0] == QUEUED
    assert tti(model, buf, 16)[0] == 300.0 and pk.status[0] == DELIVERED


def test_harq_processes_limit_new_blocks():
    # one process, round trip 8: a UE can start a block only every 8 TTIs
    model, buf, _ = one_ue([50.0] * 10, [OK] * 10, harq__processes=1, olla__enabled=False)
    sent = [tti(model, buf, k, sinr=0.3)[0] > 0 for k in range(17)]
    assert [k for k, s in enumerate(sent) if s] == [0, 8, 16]
    assert model.stats["no_process_ttis"] == 14


def test_outer_loop_offset_against_hand_computation():
    # target 0.1, step up 0.5 dB: one NACK then three ACKs of first transmissions
    model, buf, _ = one_ue([1e4] * 4, [ERR, OK, OK, OK], harq__processes=8)
    for k in range(4):
        tti(model, buf, k)
    assert model.offset_db[0] == pytest.approx(0.5 - 3 * 0.5 * 0.1 / 0.9)


def test_mcs_choice_is_the_highest_meeting_the_target():
    model, buf, _ = one_ue([1e6], [OK], olla__enabled=False)
    tti(model, buf, 0, sinr=10 ** 0.8, prbs=1)
    blk_bits = buf.out_bits[0]
    ok = [float(l2s.bler(10 ** 0.8, m, 180.0, GAP, 6144)) <= 0.1 for m in range(1, 16)]
    mcs = max(m for m, good in zip(range(1, 16), ok) if good)
    assert blk_bits == pytest.approx(l2s.MCS_EFFICIENCY[mcs - 1] * 180.0)


def test_ns3_like_options_against_hand_computation():
    # worst_prb: per PRB the highest MCS its one-PRB block carries at 10% BLER, the block takes the lowest
    model, buf, _ = one_ue([1e6], [OK], mcs_selection="worst_prb", olla__enabled=False)
    tti(model, buf, 0, sinr=[[10.0, 1.0]], prbs=2)
    per_prb = [max([m for m in range(1, 16) if float(l2s.bler(x, m, 180.0, GAP, 6144)) <= 0.1], default=0)
               for x in (10.0, 1.0)]
    assert buf.out_bits[0] == pytest.approx(l2s.MCS_EFFICIENCY[min(per_prb) - 1] * 360.0)
    # overhead: a quarter of the resource elements carry no data; MCS 1 forced below range
    model, buf, _ = one_ue([1e6], [OK], overhead_fraction=0.25, below_range="lowest_mcs", olla__enabled=False)
    tti(model, buf, 0, sinr=0.01)
    assert buf.out_bits[0] == pytest.approx(0.1523 * 135.0)
    model, buf, _ = one_ue([1e6], [OK], olla__enabled=False)
    tti(model, buf, 0, sinr=0.01)
    assert buf.out_bits[0] == 0.0 and model.stats["no_mcs_ttis"] == 1  # idle below range
    # control channel: lost with 0.09 at -5 dB (QPSK effective SINR), independent of the block's decoding
    model, _, _ = one_ue([1.0], [OK], control_errors=True)
    p_block = float(l2s.block_error_rate(100.0, 50.0, 90.0, 6144))
    p = float(model._error_probability(100.0, 50.0, 90.0, 10 ** -0.5))
    assert p == pytest.approx(1 - (1 - 0.09) * (1 - p_block))
    assert float(model._error_probability(100.0, 50.0, 90.0, 10 ** -0.55)) == pytest.approx(
        1 - (1 - 0.135) * (1 - p_block))  # halfway between -6 dB (0.18) and -5 dB (0.09)


def test_without_harq_a_lost_block_goes_back_to_the_queue():
    model, buf, pk = one_ue([300.0], [ERR, OK], harq__enabled=False)
    assert tti(model, buf, 0)[0] == 0.0
    assert buf.backlog_bits[0] == 300.0 and model.in_flight_bits == 0.0 and model.sent[0] == 0.0
    assert tti(model, buf, 1)[0] == 300.0  # sent again at the next grant, as new data
    assert pk.status[0] == DELIVERED and pk.first_tx_s[0] == 0.0


# ------------------------------------------------------------------------------ in the engine
def l2s_scenario(**phy):
    data = small(ues=2, duration_s=0.15).model_dump()
    data["phy"].update(phy)
    data["scheduling"]["interval_tti"] = 1
    return parse_scenario(data)


@pytest.mark.parametrize("variant", [
    {"rus": 2, "harq": {"combining": "chase", "on_failure": "requeue", "max_transmissions": 2}, "policy": "maxcqi"},
    {"harq": {"combining": "none", "processes": 2}, "policy": "rr", "numerology": 1},
    # several blocks per UE per TTI (each with its HARQ process) and a CRC per block
    {"rus": 2, "harq": {"processes": 3}, "policy": "pf", "l2s": {"tb_prbs": 2, "crc_bits": 24}},
])
def test_engine_l2s_variants_conserve(variant):
    data = small(ues=2, duration_s=0.1).model_dump()
    if variant.get("rus"):
        data["cell"]["rus"] = [{"x_m": 400.0 * i, "y_m": 0.0} for i in range(variant["rus"])]
    data["cell"]["numerology"] = variant.get("numerology", 0)
    data["phy"]["l2s"] = {"enabled": True, "bler_target": 0.3, "harq": variant["harq"], **variant.get("l2s", {})}
    data["phy"]["csi"] = {"period_tti": 2, "delay_tti": 1}
    data["channel"]["ue_speed_kmh"] = 60.0
    data["scheduling"]["interval_tti"] = 2
    scn = parse_scenario(data)
    _, res = run_engine(scn, policy := Recording(variant["policy"]))
    assert_conserved(res)
    assert res.counts["l2s_nacks"] > 0
    if variant["harq"].get("on_failure") == "requeue":
        assert "harq" not in set(res.packets["drop_reason"].astype(str))


def test_engine_with_l2s_conserves_and_is_reproducible():
    # aged CSI and a high BLER target: errors; one transmission only: lost blocks
    scn = l2s_scenario(l2s={"enabled": True, "bler_target": 0.5, "olla": {"enabled": False},
                            "harq": {"max_transmissions": 1}}, csi={"period_tti": 4, "delay_tti": 3})
    _, res = run_engine(scn, policy := Recording("pf"))
    assert_conserved(res)
    c = res.counts
    assert c["l2s_lost_blocks"] > 0 and c["l2s_first_nacks"] > 0
    reasons = set(res.packets.loc[res.packets["status"] == "dropped", "drop_reason"].astype(str))
    assert "harq" in reasons
    assert c["harq_bits"] <= c["buffer_bits"] + 1e-6
    _, again = run_engine(scn, Recording("pf"))
    assert again.packets.equals(res.packets) and again.tti.equals(res.tti)
    # the L2S has its own random stream: the traffic does not move when it is switched on
    _, off = run_engine(l2s_scenario(csi={"period_tti": 4, "delay_tti": 3}), Recording("pf"))
    np.testing.assert_array_equal(off.packets["arrival_s"], res.packets["arrival_s"])


class PeekChannel(Recording):
    """Keeps a copy of the engine's channel gain at every decision, with the observation's."""

    def __init__(self):
        super().__init__("pf")
        self.engine = None
        self.live = []

    def decide(self, obs):
        self.live.append(self.engine.channel.gain.copy())
        return super().decide(obs)


def test_observation_holds_the_report_measured_period_and_delay_ago():
    from simcore.engine import Engine
    from simcore.plugins import make_phy

    scn = l2s_scenario(csi={"period_tti": 5, "delay_tti": 2})
    policy = PeekChannel()
    eng = Engine(scn, policy, make_phy("builtin"))
    policy.engine = eng
    eng.run()
    gains = [obs.gain for obs, _ in policy.seen]
    for k in range(40):
        measured = max(0, (k - 2) // 5 * 5)  # reports at 0, 5, 10, ...; usable 2 TTIs later
        np.testing.assert_array_equal(gains[k], policy.live[measured])
    assert not np.array_equal(gains[6], gains[7])


def test_schema_refuses_l2s_where_it_cannot_apply():
    data = small().model_dump()
    data["phy"]["l2s"] = {"enabled": True}
    data["phy"]["backend"] = "ns3-shm"
    with pytest.raises(ScenarioError, match="phy.l2s.enabled"):
        parse_scenario(data)
    data["phy"]["backend"] = "builtin"
    data["phy"]["l2s"]["harq"] = {"processes": 4}
    assert "phy.l2s.harq.processes" in [p for p, _ in scenario_warnings(parse_scenario(data))]
    data["slices"][1]["rate_model"] = "fbl"
    with pytest.raises(ScenarioError, match=r"slices\[1\].rate_model"):
        parse_scenario(data)


# ------------------------------------------------------------- blocks per PRB group, CRC, speed
def test_a_block_per_prb_group_has_its_own_mcs_and_error_draw():
    # 12 PRBs: the first 6 at 0 dB, the last 6 at 20 dB; no HARQ, MCS of the worst PRB of the block
    sinr = np.r_[np.full(6, 1.0), np.full(6, 100.0)]
    lte = dict(mcs_selection="worst_prb", harq__enabled=False, olla__enabled=False, coding_gap_db=0.0)
    model, buf, _ = one_ue([1e6], [ERR, OK], tb_prbs=6, **lte)  # the 0 dB block fails, the 20 dB one decodes
    thr = model.thr_db[1]
    mcs_lo, mcs_hi = (int(np.searchsorted(thr, x, side="right")) for x in (0.0, 20.0))
    assert 1 <= mcs_lo < mcs_hi
    got = tti(model, buf, 0, sinr=sinr, prbs=12)[0]
    assert got == pytest.approx(l2s.MCS_EFFICIENCY[mcs_hi - 1] * 6 * 180.0)  # only the good block's bits
    assert model.stats["blocks"] == 2 and model.stats["first_nacks"] == 1
    # one block over all 12 PRBs: the worst PRB's MCS for all of them, one draw
    model, buf, _ = one_ue([1e6], [OK], **lte)
    assert tti(model, buf, 0, sinr=sinr, prbs=12)[0] == pytest.approx(l2s.MCS_EFFICIENCY[mcs_lo - 1] * 12 * 180.0)
    assert model.stats["blocks"] == 1
    # both blocks decoded: the bits of both, once each
    model, buf, _ = one_ue([1e6], [OK, OK], tb_prbs=6, **lte)
    both = l2s.MCS_EFFICIENCY[[mcs_lo - 1, mcs_hi - 1]].sum() * 6 * 180.0
    assert tti(model, buf, 0, sinr=sinr, prbs=12)[0] == pytest.approx(both)
    assert buf.backlog_bits[0] == pytest.approx(1e6 - both)
    # a block with nothing left to carry is not sent: 100 bits fit in the first block
    model, buf, _ = one_ue([100.0], [OK, OK], tb_prbs=6, **lte)
    assert tti(model, buf, 0, sinr=sinr, prbs=12)[0] == 100.0 and model.stats["blocks"] == 1


def test_crc_bits_come_out_of_the_payload_in_whole_bytes():
    model, buf, _ = one_ue([1e6], [OK, OK], crc_bits=24, mcs_selection="worst_prb", olla__enabled=False,
                           harq__enabled=False, coding_gap_db=0.0)
    mcs = int(np.searchsorted(model.thr_db[1], 10.0, side="right"))
    nominal = l2s.MCS_EFFICIENCY[mcs - 1] * 2 * 180.0
    assert tti(model, buf, 0, sinr=10.0, prbs=2)[0] == 8 * math.floor((nominal - 24) / 8)
    # segmented: one CRC per code block besides the block's own (TS 36.212 5.1.2)
    bits = np.array([6000.0, 13000.0])
    assert model._payload(bits).tolist() == [8 * math.floor((6000 - 24) / 8), 8 * math.floor((13000 - 4 * 24) / 8)]
    # a block too small for its CRC is not sent (MCS 1 on one PRB: 27 bits)
    assert model._payload(np.array([27.0])).tolist() == [0.0]


def test_scalar_error_probability_equals_the_array_one():
    model, _, _ = one_ue([1.0], [], control_errors=True)
    rng = np.random.default_rng(3)
    rho = 10 ** rng.uniform(-1.5, 2.5, 200)
    mod = rng.integers(0, 3, 200)
    uses = rng.uniform(100, 20000, 200)
    bits = uses * rng.uniform(0.1, 5.5, 200)
    ctrl = 10 ** rng.uniform(-1.2, 0.5, 200)
    mi = np.array([l2s.bicm_mi(r, m) for r, m in zip(rho, mod)])
    assert [l2s._mi_scalar(l2s._mi_lists()[m], r) for r, m in zip(rho, mod)] == pytest.approx(mi, rel=1e-12, abs=1e-15)
    info, spread = uses * mi, uses * l2s.dispersion(rho)
    exact = model._error_probability(info, spread, bits, ctrl)
    scalar = [model._error_probability_scalar(*a) for a in zip(info, spread, bits, ctrl)]
    assert scalar == pytest.approx(exact, rel=1e-9, abs=1e-12)
    assert 0.05 < np.mean(exact) < 0.95  # the draws span both decoded and lost blocks


def test_threshold_rows_when_first_needed_equal_the_full_table():
    full = l2s.mcs_thresholds_db(8, 180.0, 0.1, GAP, 6144)
    lazy = l2s._Thresholds(np.full(15, 180.0), 0.1, np.full(15, GAP), 6144)
    assert np.array_equal(lazy[np.array([3, 1, 8])], full[[3, 1, 8]])
    assert np.array_equal(lazy[5], full[5])


def test_lte_transport_block_sizes():
    # TS 36.213 Table 7.1.7.2.1-1 entries (I_TBS, N_PRB): (0, 1) 16, (26, 6) 4392, (9, 6) 936 per 6 PRBs
    assert l2s.lte_tbs_bits(np.array([1, 15, 6]), np.array([1, 6, 12])).tolist() == [16.0, 4392.0, 2 * 936.0]
    assert l2s.lte_tbs_bits(np.array([2]), np.array([3])).tolist() == [144.0]  # I_TBS 2, 3 PRBs
    model, buf, _ = one_ue([1e6], [OK], tbs="lte", mcs_selection="worst_prb", harq__enabled=False,
                           olla__enabled=False, coding_gap_db=0.0)
    mcs = int(np.searchsorted(model.thr_db[1], 10.0, side="right"))
    assert tti(model, buf, 0, sinr=10.0, prbs=2)[0] == l2s.LTE_TBS_6PRB[l2s.LTE_ITBS[mcs - 1], 1]
    with pytest.raises(ScenarioError, match="crc_bits"):
        parse_scenario(small(ues=1).model_dump() | {"phy": {"l2s": {"enabled": True, "tbs": "lte", "crc_bits": 24}}})


# ------------------------------------------------------------------------------- CQI table
#: one-PRB 10 %-BLER SINRs (dB) of LTE MCS 0..28 measured through ns-3.44's own LteMiErrorModel
#: (scenarios/calibration/ns3_lte.yaml); note MCS 1 and 2 below MCS 0
NS3_MCS_DB = [-4.40, -4.80, -4.45, -3.00, -2.35, -1.30, -0.75, 0.50, 1.55, 2.05, 3.85, 4.35, 5.15, 6.05, 7.05,
              7.75, 8.70, 10.25, 10.60, 11.50, 12.50, 13.60, 14.50, 15.50, 16.00, 16.95, 17.95, 18.90, 19.85]


def test_lte_reporting_rule_against_hand_computation():
    # CQI c needs MCS 0..2c-1 all decoding (running maximum), CQI 15 all 29
    t = l2s.lte_cqi_thresholds_db(NS3_MCS_DB)
    assert t[:4].tolist() == [-4.40, -3.00, -1.30, 0.50]  # CQI 1: max(-4.40, -4.80); 2: MCS 3; 3: MCS 5; 4: MCS 7
    assert t[13:].tolist() == [18.90, 19.85]
    # a dip: MCS 5 needing less than MCS 4 does not lower CQI 3 below MCS 4's need
    dip = list(NS3_MCS_DB)
    dip[5] = -3.5
    assert l2s.lte_cqi_thresholds_db(dip)[2] == -2.35
    # the CQI ns-3's LteAmc reported for a flat one-RB SINR of -10..20 dB (its CreateCqiFeedbacks, 1 dB steps)
    ns3_cqi = [0] * 6 + [1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 8, 8, 8, 9, 10, 10, 11, 11, 12, 13, 13, 14, 15]
    assert np.searchsorted(t, np.arange(-10.0, 21.0), side="right").tolist() == ns3_cqi
    # the shipped calibration profile holds these points
    from pathlib import Path

    import yaml

    profile = Path(__file__).resolve().parents[1] / "scenarios" / "calibration" / "ns3_lte.yaml"
    assert yaml.safe_load(profile.read_text())["builtin"]["phy.l2s.cqi_sinr_db"] == NS3_MCS_DB


def test_a_given_cqi_table_sets_the_mcs():
    table = [-6.0 + 2.0 * j for j in range(15)]  # CQI j from -8 + 2 j dB
    for sel in ("worst_prb", "miesm"):
        model, buf, _ = one_ue([1e6], [OK], cqi_sinr_db=table, mcs_selection=sel, harq__enabled=False,
                               olla__enabled=False)
        tti(model, buf, 0, sinr=10 ** 0.5, prbs=1)  # 5 dB: CQI 6 (from 4 dB), not 7 (from 6 dB)
        assert buf.out_bits[0] == pytest.approx(l2s.MCS_EFFICIENCY[5] * 180.0), sel
    model, _, _ = one_ue([1.0], [OK], cqi_sinr_db=NS3_MCS_DB)  # 29 values: LTE's rule
    assert model.thr_db[3].tolist() == l2s.lte_cqi_thresholds_db(NS3_MCS_DB).tolist()
    assert model.thr_db[np.array([1, 6])].shape == (2, 15)
    for bad, why in (([0.0] * 14, "15 values"), (table[::-1], "must not decrease")):
        with pytest.raises(ScenarioError, match=why):
            parse_scenario(small(ues=1).model_dump() | {"phy": {"l2s": {"enabled": True, "cqi_sinr_db": bad}}})

# ------------------------------------------------------------------- the compiled step (l2s_fast)
@pytest.mark.skipif(not l2s.HAVE_NUMBA, reason="numba not installed")
@pytest.mark.parametrize("case", [
    # the shipped calibration profile (worst-PRB MCS from its CQI table, a block per 6 PRBs, LTE sizes,
    # PDCCH loss, no HARQ) and, the same without its CQI table (the BLER model's own thresholds)
    {"profile": True, "ues": 4},
    {"l2s": {"mcs_selection": "worst_prb", "below_range": "lowest_mcs", "tb_prbs": 6, "tbs": "lte",
             "coding_gap_db": [2.0, 2.0, 1.0], "control_errors": True, "harq": {"enabled": False},
             "olla": {"enabled": False}}, "csi": {"period_tti": 2, "delay_tti": 6}, "ues": 6},
    # the whole TTI compiled (worst PRB, no HARQ) with ideal CSI, OLLA, two RUs, nominal sizes less a CRC
    {"l2s": {"mcs_selection": "worst_prb", "harq": {"enabled": False}, "bler_target": 0.3, "crc_bits": 24,
             "tb_prbs": 3}, "rus": 2},
    # defaults (MIESM, HARQ IR, OLLA) with ideal CSI, two RUs, blocks per 2 PRBs with a CRC
    {"l2s": {"tb_prbs": 2, "crc_bits": 24, "bler_target": 0.3}, "rus": 2},
    # Chase combining, requeue after 2 transmissions; a lone transmission lost (IR, 1 transmission)
    {"l2s": {"bler_target": 0.4, "harq": {"combining": "chase", "on_failure": "requeue", "max_transmissions": 2}},
     "csi": {"period_tti": 3, "delay_tti": 2}},
    {"l2s": {"bler_target": 0.5, "harq": {"max_transmissions": 1, "processes": 2}, "olla": {"enabled": False}},
     "csi": {"period_tti": 4, "delay_tti": 3}, "rus": 2},
])
def test_compiled_step_gives_the_reference_results(monkeypatch, case):
    # the same packets, per-TTI records and counters, bit for bit, as the numpy/Python step
    data = small(ues=case.get("ues", 3), duration_s=0.2).model_dump()
    if case.get("rus"):
        data["cell"]["rus"] = [{"x_m": 400.0 * i, "y_m": 0.0} for i in range(case["rus"])]
    data["phy"]["l2s"] = {"enabled": True, **case.get("l2s", {})}
    data["phy"]["csi"] = case.get("csi", {"period_tti": 1, "delay_tti": 0})
    data["channel"]["ue_speed_kmh"] = 30.0
    data["scheduling"]["interval_tti"] = 2
    scn = parse_scenario(data)
    if case.get("profile"):
        from pathlib import Path

        from oransim.calibrate import apply_profile
        from simcore.yamlio import load_yaml_text, read_text_file

        shipped = Path(__file__).resolve().parent.parent / "scenarios" / "calibration" / "ns3_lte.yaml"
        scn = apply_profile(scn, load_yaml_text(read_text_file(shipped)), "builtin")
        assert scn.phy.l2s.tbs == "lte" and scn.phy.csi.period_tti == 2
    out = {}
    for fast in (True, False):
        monkeypatch.setattr(l2s, "FAST", fast)
        eng, out[fast] = run_engine(scn, Recording("pf"))
        assert eng.l2s.fast == fast
        # worst PRB without HARQ: LinkToSystem.tti (the whole TTI compiled), else the compiled step
        assert eng._whole_tti == (fast and scn.phy.l2s.mcs_selection == "worst_prb" and not scn.phy.l2s.harq.enabled)
    fast, ref = out[True], out[False]
    assert fast.counts == ref.counts
    for name in ("packets", "tti", "decisions"):
        assert fast.table(name).equals(ref.table(name)), name
    c = ref.counts
    assert c["l2s_blocks"] > 100 and c["l2s_first_nacks"] > 0  # the draws matter
    harq = case.get("l2s", {}).get("harq", {})
    if harq.get("max_transmissions") == 1:
        assert c["l2s_lost_blocks"] > 0
    if harq.get("on_failure") == "requeue":
        assert c["l2s_requeued_blocks"] > 0


@pytest.mark.skipif(not l2s.HAVE_NUMBA, reason="numba not installed")
def test_compiled_effective_sinr_equals_the_numpy_one():
    # blocks_of_tti's MIESM (dB) against effective_sinr on random PRB SINRs and owners, exactly
    from simcore import l2s_fast

    model, _, _ = one_ue([1.0], [], tb_prbs=3)
    rng = np.random.default_rng(11)
    n_ues = 5
    for _ in range(50):
        owner = rng.integers(-1, n_ues, size=(2, 12))
        sinr = 10 ** rng.uniform(-4.0, 4.0, size=(2, 12))
        sinr[rng.random((2, 12)) < 0.1] = 0.0
        enq = np.full(n_ues, 1e6)
        zeros = np.zeros(n_ues)
        params = np.array([3, 1, 1, 1, 0, 0, 0, 0, 6144, 8, 4, 0, 0], dtype=np.int64)
        _, row_of, _, ues, n_prb, eff_db, _, go, _ = l2s_fast.blocks_of_tti(
            owner, 10 * np.log10(np.maximum(sinr, l2s._TINY)), sinr, enq, zeros, zeros,
            np.full(n_ues, np.iinfo(np.int64).max), np.zeros((n_ues, 4), dtype=np.int64), l2s.mi_tables()[0],
            np.array(l2s.mi_tables()[1]), l2s._GRID_DB, params, np.array([1.0, 0.1, 5.0, l2s._GRID_LO_DB, 0.1]))
        mask = owner >= 0
        links, inv, counts = np.unique(owner[mask] * 8 + model._groups(owner.shape)[0][mask], return_inverse=True,
                                       return_counts=True)
        assert np.array_equal(ues, links // 8) and np.array_equal(row_of, inv) and np.array_equal(n_prb, counts)
        assert np.array_equal(10.0 ** (eff_db / 10.0), model.effective_sinr(inv, sinr[mask], counts))
        assert go.all()


@pytest.mark.skipif(not l2s.HAVE_NUMBA, reason="numba not installed")
def test_compiled_uniforms_are_the_generators():
    # LinkToSystem.tti's error draws: numpy's random() from the PCG64 state, leaving it as random() does
    from simcore import l2s_fast
    from simcore.decision_fast import PcgState

    rng, twin = np.random.default_rng(5), np.random.default_rng(5)
    state = PcgState.of(rng).state
    drawn = [l2s_fast._next_double(state) for _ in range(1000)]
    assert np.array_equal(drawn, twin.random(1000))
    assert rng.bit_generator.state == twin.bit_generator.state and rng.random() == twin.random()
