"""Engine timing: the throughput average policies see, and when late packets are dropped."""

import numpy as np
import pytest

from simcore.engine import EWMA_TTI
from simcore.scenario import Scenario, parse_scenario

from core_helpers import Recording, run_engine, small


def test_pf_sees_the_ewma_of_what_was_served():
    """avg_throughput_bps at a decision in TTI k is the EWMA (t_c = EWMA_TTI TTIs) of the bits served
    in TTIs 0..k-1, recomputed here from the tti table; PF's metric divides by it."""
    data = small(ues=3, duration_s=0.3).model_dump()
    data["cell"]["numerology"] = 1
    data["scheduling"]["interval_tti"] = 3
    policy = Recording("pf")
    eng, res = run_engine(parse_scenario(data), policy)
    tti_s = eng.tti_s
    served = res.tti.pivot(index="tti", columns="ue", values="served_bits").to_numpy()
    assert served.sum() > 0
    avg = np.zeros(served.shape[1])
    want = {}
    for k in range(served.shape[0]):
        want[k] = avg.copy()
        avg = avg * (1 - 1 / EWMA_TTI) + served[k] / (EWMA_TTI * tti_s)
    assert len(policy.seen) == eng.n_tti // 3
    for obs, _ in policy.seen:
        np.testing.assert_allclose(obs.avg_throughput_bps, want[obs.tti], rtol=1e-9, atol=1e-6)
    np.testing.assert_allclose(eng.avg_tput_bps, avg, rtol=1e-9, atol=1e-6)


def test_late_packets_are_dropped_at_the_first_tti_boundary_past_their_deadline():
    """A drop_late slice's packet leaves at the first TTI boundary at which it is in the buffer and
    older than max_delay_ms; a delivered one was last sent at a boundary where it was not."""
    data = Scenario().model_dump()
    data.update(duration_s=0.3, seed=4)
    data["cell"]["numerology"] = 1  # 0.5 ms TTIs; a deadline that is not a multiple of them
    deadline_ms = 1.3
    data["slices"] = [
        {"name": "bulk", "ues": 3, "weight": 3.0, "traffic": {"model": "poisson", "rate_mbps": 20.0}},
        {"name": "urllc", "ues": 3, "weight": 0.2, "max_delay_ms": deadline_ms, "drop_late": True,
         "traffic": {"model": "sporadic", "rate_pps": 3000, "packet_bytes": 200}},
    ]
    scn = parse_scenario(data)
    _, res = run_engine(scn, Recording("pf"))
    tti, fh, deadline = scn.cell.tti_s, scn.fronthaul.latency_us * 1e-6, deadline_ms * 1e-3
    pk = res.packets
    u = pk[pk["slice"] == "urllc"]
    late = u[u["drop_reason"] == "deadline"]
    assert len(late) > 20 and (u["status"] == "delivered").sum() > 20
    du_depart = late["arrival_s"] + (late["cu_ms"] + late["du_ms"]) / 1e3
    admitted_k = np.ceil(du_depart / tti - 1e-9)  # first boundary at or after leaving the DU
    expired_k = np.floor((late["arrival_s"] + deadline) / tti + 1e-9) + 1  # first boundary with age > deadline
    np.testing.assert_allclose(late["dropped_s"], np.maximum(admitted_k, expired_k) * tti, atol=1e-9)
    # delivered: the TTI that sent the last bits began while the packet was within its deadline
    d = u[u["status"] == "delivered"]
    last_tx_start = d["delivered_s"] - tti - fh
    assert ((last_tx_start - d["arrival_s"]) <= deadline + 1e-9).all()
    # at the end no packet older than the deadline is still queued
    q = u[u["status"] == "queued"]
    assert ((scn.n_tti - 1) * tti - q["arrival_s"] <= deadline + 1e-9).all()
    # slices without drop_late never drop for the deadline
    assert not (pk.loc[pk["slice"] == "bulk", "drop_reason"] == "deadline").any()


@pytest.mark.parametrize("interval", [1, 4])
def test_decision_at_tti_k_is_used_from_tti_k(interval):
    """The PRBs recorded in TTI k are those of the decision made at the start of TTI k's interval."""
    data = small(ues=2, duration_s=0.05).model_dump()
    data["scheduling"]["interval_tti"] = interval
    policy = Recording("pf")
    eng, res = run_engine(parse_scenario(data), policy)
    prbs = res.tti.pivot(index="tti", columns="ue", values="prbs").to_numpy()
    for obs, alloc in policy.seen:
        want = np.bincount(alloc.prb_owner[alloc.prb_owner >= 0], minlength=eng.n_ues)
        for k in range(obs.tti, min(obs.tti + interval, eng.n_tti)):
            np.testing.assert_array_equal(prbs[k], want)


def test_hol_delay_is_the_age_of_the_oldest_packet_in_the_buffer():
    """hol_delay_ms at each decision, kept incrementally as heads move, against the packets table."""
    data = small(ues=3, duration_s=0.2, seed=9).model_dump()
    data["slices"][1]["drop_late"] = True
    data["scheduling"]["interval_tti"] = 2
    scn = parse_scenario(data)
    policy = Recording("pf")
    _, res = run_engine(scn, policy)
    pk = res.packets
    tti, fh = scn.cell.tti_s, scn.fronthaul.latency_us * 1e-6
    du = (pk["arrival_s"] + (pk["cu_ms"] + pk["du_ms"]) / 1e3).to_numpy()
    entered = ((pk["status"] != "processing") & (pk["drop_reason"] != "buffer_full")).to_numpy()
    # when each packet left the buffer (delivered: the start of the TTI that sent its last bits)
    left = np.where(pk["status"] == "delivered", pk["delivered_s"] - tti - fh, pk["dropped_s"]).astype(float)
    left[(pk["status"] == "queued").to_numpy()] = np.inf
    ue, arrival = pk["ue"].to_numpy(), pk["arrival_s"].to_numpy()
    checked = 0
    for obs, _ in policy.seen:
        now = obs.tti * tti
        # in the buffer at the decision: admitted by now, not yet gone (service at TTI k comes after it)
        inside = entered & (du <= now + 1e-12) & (left >= now - 1e-12)
        inside &= ~((pk["status"] == "dropped").to_numpy() & (left <= now + 1e-12))
        want = np.zeros(obs.n_ues)
        for u in range(obs.n_ues):
            a = arrival[inside & (ue == u)]
            want[u] = (now - a.min()) * 1e3 if a.size else 0.0
            checked += a.size > 0
        np.testing.assert_allclose(obs.hol_delay_ms, want, atol=1e-9)
        np.testing.assert_allclose(obs.buffer_bits > 0, want > 0)
    assert checked > 50
