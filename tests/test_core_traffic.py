"""Traffic: arrivals reach the CU in time order and every UE buffer is FIFO, whatever the traffic
model and jitter; each model offers the load it promises."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from simcore.engine import TRAFFIC_BLOCK_TTI, Engine
from simcore.plugins import make_phy, make_policy
from simcore.processing import FifoServer
from simcore.scenario import PeriodicTraffic, Scenario, parse_scenario
from simcore.traffic import make_source, offered_load_bps

from core_helpers import assert_conserved


@st.composite
def traffic(draw):
    model = draw(st.sampled_from(["poisson", "ftp", "sporadic", "periodic"]))
    if model == "poisson":
        return {"model": model, "rate_mbps": draw(st.floats(0.1, 20.0)), "packet_bytes": 1500}
    if model == "ftp":
        return {"model": model, "file_rate_hz": draw(st.floats(1.0, 40.0)), "file_kbytes": draw(st.floats(1.0, 60.0))}
    if model == "sporadic":
        return {"model": model, "rate_pps": draw(st.floats(50.0, 3000.0)), "packet_bytes": 32}
    period = draw(st.floats(0.2, 40.0))
    # jitters from none to several periods and several traffic blocks
    jitter = draw(st.one_of(st.just(0.0), st.floats(0.0, 3.0 * period), st.floats(0.0, 60.0)))
    return {"model": model, "period_ms": period, "packet_bytes": 20, "jitter_ms": jitter}


@st.composite
def scenarios(draw):
    data = Scenario().model_dump()
    slices = draw(st.lists(traffic(), min_size=1, max_size=3))
    data["slices"] = [{"name": f"s{i}", "ues": draw(st.integers(1, 4)), "traffic": t,
                       "drop_late": draw(st.booleans()), "max_delay_ms": draw(st.sampled_from([1.5, 5.0, 50.0])),
                       "buffer_limit_kbytes": draw(st.sampled_from([3.0, 2000.0]))}
                      for i, t in enumerate(slices)]
    data["cell"]["numerology"] = draw(st.integers(0, 2))
    data["cell"]["prbs_per_ru"] = draw(st.sampled_from([6, 30]))
    data["scheduling"]["interval_tti"] = draw(st.integers(1, 5))
    data["policy"]["name"] = draw(st.sampled_from(["pf", "rr", "maxcqi"]))
    data["duration_s"] = draw(st.sampled_from([0.04, 0.1]))
    data["seed"] = draw(st.integers(0, 2**32))
    return parse_scenario(data)


def _leave_time(pk, scn):
    """When a packet left its UE buffer: the start of the TTI that sent its last bits, or its drop."""
    sent = pk["delivered_s"] - scn.cell.tti_s - scn.fronthaul.latency_us * 1e-6
    return np.where(pk["status"] == "delivered", sent, pk["dropped_s"])


@settings(max_examples=25, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_arrivals_reach_the_cu_in_order_and_buffers_are_fifo(scn):
    eng = Engine(scn, make_policy(scn.policy.name, scn.policy.params), make_phy("builtin"))
    seen = []
    serve = eng.cu.serve
    eng.cu.serve = lambda t: (seen.append(np.array(t)), serve(t))[1]
    res = eng.run()
    assert_conserved(res)
    at_cu = np.concatenate(seen) if seen else np.zeros(0)
    assert (np.diff(at_cu) >= 0).all(), "arrival times entering the CU go back in time"
    pk = res.packets.sort_values("packet_id")
    np.testing.assert_array_equal(pk["arrival_s"].to_numpy(), at_cu)
    assert (pk["arrival_s"] < scn.n_tti * scn.cell.tti_s).all()
    for _, p in pk.groupby("ue"):
        # the packets that entered the UE's buffer, in arrival order
        entered = p[(p["status"] != "processing") & (p["drop_reason"] != "buffer_full")]
        status = entered["status"].to_numpy()
        # they leave it (delivered or deadline-dropped) in that order, and the rest are still queued
        done = status != "queued"
        assert not (np.diff(done.astype(int)) > 0).any(), "a packet left the buffer before an older one"
        assert (np.diff(_leave_time(entered[done], scn)) >= -1e-12).all()
        d = entered[entered["status"] == "delivered"]
        first_tx = d["arrival_s"] + (d["cu_ms"] + d["du_ms"] + d["queue_ms"]) / 1e3
        assert (np.diff(first_tx.to_numpy()) >= -1e-12).all(), "a packet was transmitted before an older one"


def test_jitter_longer_than_a_traffic_block_keeps_every_report():
    """With jitter the reports still all arrive, inside the window that holds them."""
    cfg = PeriodicTraffic(model="periodic", period_ms=5.0, packet_bytes=20, jitter_ms=40.0)
    ues = np.arange(7)
    src = make_source(cfg, ues, np.random.default_rng(3))
    block = TRAFFIC_BLOCK_TTI * 1e-3
    counts = np.zeros(ues.size, int)
    for i in range(200):
        t0, t1 = i * block, (i + 1) * block
        t, ue, _ = src.arrivals(t0, t1)
        assert ((t >= t0) & (t < t1)).all()
        np.add.at(counts, ue, 1)
    # 3.2 s of 5 ms reports per device, less those jittered past the end (at most 40 ms worth)
    assert ((counts >= 3.2 / 5e-3 - 40 / 5 - 1) & (counts <= 3.2 / 5e-3 + 1)).all()


def test_fifo_server_refuses_arrivals_that_go_back_in_time():
    server = FifoServer(1000.0, "deterministic", np.random.default_rng(0))
    server.serve(np.array([0.001, 0.002]))
    with pytest.raises(ValueError, match="non-decreasing"):
        server.serve(np.array([0.0015]))
    with pytest.raises(ValueError, match="non-decreasing"):
        FifoServer(1000.0, "deterministic", np.random.default_rng(0)).serve(np.array([0.002, 0.001]))


OFFERED = [
    {"model": "poisson", "rate_mbps": 2.0, "packet_bytes": 1500},
    {"model": "ftp", "file_rate_hz": 20.0, "file_kbytes": 20.0, "packet_bytes": 1500},
    {"model": "sporadic", "rate_pps": 400.0, "packet_bytes": 32},
    {"model": "periodic", "period_ms": 7.0, "packet_bytes": 100, "jitter_ms": 3.0},
]


@pytest.mark.parametrize("cfg", OFFERED, ids=[c["model"] for c in OFFERED])
def test_offered_load_per_traffic_model(cfg):
    """Bits generated per UE over 20 s match ``offered_load_bps`` within ~4 standard errors."""
    data = Scenario().model_dump()
    data["slices"] = [{"name": "x", "traffic": cfg}]
    t_cfg = parse_scenario(data).slices[0].traffic
    n_ues, dur = 20, 20.0
    src = make_source(t_cfg, np.arange(n_ues), np.random.default_rng(11))
    bits = np.zeros(n_ues)
    block = TRAFFIC_BLOCK_TTI * 1e-3
    for i in range(int(round(dur / block))):
        t, ue, size = src.arrivals(i * block, (i + 1) * block)
        np.add.at(bits, ue, size)
    want = offered_load_bps(t_cfg)
    got = bits.sum() / (n_ues * dur)
    # tolerance: 4 standard errors of the mean load over all UEs (Poisson packets, or Poisson files
    # of exponential size: second moment 2 E[S]^2); periodic reports are deterministic but for each
    # device's phase (one report at most) and those jittered past the end of the run
    if cfg["model"] == "poisson":
        tol = 4 / np.sqrt(want / (cfg["packet_bytes"] * 8) * n_ues * dur)
    elif cfg["model"] == "sporadic":
        tol = 4 / np.sqrt(cfg["rate_pps"] * n_ues * dur)
    elif cfg["model"] == "ftp":
        tol = 4 * np.sqrt(2 / (cfg["file_rate_hz"] * n_ues * dur))
    else:
        tol = (1 + cfg["jitter_ms"] / cfg["period_ms"]) / (dur / (cfg["period_ms"] * 1e-3))
    assert got == pytest.approx(want, rel=tol)
    # and per UE, the same mean (the sources share their load equally)
    assert bits.std() / bits.mean() < 0.25
