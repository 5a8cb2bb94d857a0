"""CU/DU processing queues: Lindley recursion == a simpy.Resource, and M/M/1 / M/D/1 theory."""

import numpy as np
import pytest
import simpy

from simcore.processing import FifoServer
from simcore.run import simulate
from simcore.scenario import Scenario, parse_scenario


def _simpy_departures(arrivals, services):
    """Reference: each packet is a SimPy process that requests a capacity-1 Resource."""
    env = simpy.Environment()
    server = simpy.Resource(env, capacity=1)
    out = np.zeros(arrivals.size)

    def packet(i):
        yield env.timeout(arrivals[i] - env.now)
        with server.request() as req:
            yield req
            yield env.timeout(services[i])
        out[i] = env.now

    def source():
        for i in range(arrivals.size):
            yield env.timeout(arrivals[i] - env.now)
            env.process(packet(i))

    env.process(source())
    env.run()
    return out


@pytest.mark.parametrize("load", [0.3, 0.9, 1.5])
def test_lindley_matches_simpy_resource(load):
    rng = np.random.default_rng(3)
    n = 400
    arrivals = np.cumsum(rng.exponential(1.0 / (load * 1000.0), n))
    server = FifoServer(1000.0, "exponential", np.random.default_rng(9))
    services = np.random.default_rng(9).exponential(1e-3, n)  # the same draws the server makes
    # serve in three batches, as the engine does across TTI blocks
    got = np.concatenate([server.serve(arrivals[:100]), server.serve(arrivals[100:250]), server.serve(arrivals[250:])])
    # the server draws its service times batch by batch from one generator: the same stream as one draw of n
    want = _simpy_departures(arrivals, services)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)


def _engine_queue(service: str, lam_pps: float, cu_pps: float, du_pps: float, duration_s: float, seed: int):
    data = Scenario().model_dump()
    data.update(duration_s=duration_s, seed=seed, record={"packets": True, "tti": False})
    data["processing"] = {"cu": {"service_rate_pps": cu_pps, "service": service},
                          "du": {"service_rate_pps": du_pps, "service": service}}
    data["slices"] = [{"name": "only", "ues": 2, "buffer_limit_kbytes": 1e6,
                       "traffic": {"model": "sporadic", "rate_pps": lam_pps / 2, "packet_bytes": 20}}]
    pk = simulate(parse_scenario(data)).packets
    done = pk[pk["status"] != "processing"]
    return done["cu_ms"].to_numpy() / 1e3, done["du_ms"].to_numpy() / 1e3


def test_mm1_sojourn_matches_theory():
    lam, mu_cu, mu_du = 4000.0, 10000.0, 8000.0
    cu, du = _engine_queue("exponential", lam, mu_cu, mu_du, duration_s=10.0, seed=5)
    # ~40,000 packets; relative standard error of the M/M/1 mean sojourn at rho <= 0.5 is < 1.5 %,
    # so the 5 % band is > 3 sigma
    assert abs(cu.mean() / (1 / (mu_cu - lam)) - 1) < 0.05
    assert abs(du.mean() / (1 / (mu_du - lam)) - 1) < 0.05  # Burke: the CU's output is Poisson


def test_md1_sojourn_matches_pollaczek_khinchine():
    lam, mu = 5000.0, 10000.0
    cu, _ = _engine_queue("deterministic", lam, mu, 1e7, duration_s=6.0, seed=8)
    rho = lam / mu
    w = 1 / mu + rho / (2 * mu * (1 - rho))  # M/D/1: service + P-K waiting time
    assert abs(cu.mean() / w - 1) < 0.05
