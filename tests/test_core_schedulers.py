"""Classic schedulers on hand-built observations: the textbook rule, slice weights, buffer awareness."""

import dataclasses

import numpy as np
import pytest

from policies.classic import MaxCqi, ProportionalFair, RoundRobin
from simcore.contracts import check_allocation
from simcore.engine import Engine
from simcore.plugins import make_phy, make_policy

from core_helpers import small


@pytest.fixture(scope="module")
def base_obs():
    """An observation of a 1-RU, 6-PRB cell with 3 UEs (one per slice), to be edited per test."""
    data = small(ues=1, duration_s=0.01).model_dump()
    data["cell"]["prbs_per_ru"] = 6
    from simcore.scenario import parse_scenario

    scn = parse_scenario(data)
    eng = Engine(scn, make_policy("pf"), make_phy("builtin"))
    return eng.observation(0)


def obs_with(base, rate, buffer_bits, avg=None, weights=(1.0, 1.0, 1.0), max_rate=None):
    rate = np.asarray(rate, dtype=float)
    return dataclasses.replace(
        base,
        prb_rate_bps=rate,
        buffer_bits=np.asarray(buffer_bits, dtype=float),
        avg_throughput_bps=np.ones(3) if avg is None else np.asarray(avg, dtype=float),
        slice_weight=np.asarray(weights, dtype=float),
        max_rate_bps=np.full(3, 1e12) if max_rate is None else np.asarray(max_rate, dtype=float),
        interval_tti=1,
    )


BIG = 1e12


def test_maxcqi_gives_each_prb_to_the_best_weighted_rate(base_obs):
    rate = np.array([[5, 1, 1, 1, 1, 9], [1, 6, 1, 1, 1, 1], [1, 1, 7, 7, 1, 1]], dtype=float) * 1e6
    o = obs_with(base_obs, rate, [BIG] * 3)
    a = MaxCqi().decide(o)
    check_allocation(a, o)
    assert a.prb_owner[0].tolist() == [0, 1, 2, 2, 0, 0]  # ties on PRB 4 go to the lowest index
    # weights: UE 2 (weight 10) wins every PRB where 10 * r beats the others
    o = obs_with(base_obs, rate, [BIG] * 3, weights=(1.0, 1.0, 10.0))
    assert MaxCqi().decide(o).prb_owner[0].tolist() == [2, 2, 2, 2, 2, 2]
    assert MaxCqi(slice_aware=False).decide(o).prb_owner[0].tolist() == [0, 1, 2, 2, 0, 0]


def test_pf_divides_by_average_throughput(base_obs):
    rate = np.full((3, 6), 1e6)
    rate[0] *= 2.0  # UE 0 twice as good everywhere
    o = obs_with(base_obs, rate, [BIG] * 3, avg=[4e6, 1e6, 3e6])
    # metric: UE0 2/4 = 0.5, UE1 1/1 = 1, UE2 1/3: UE 1 gets everything
    a = ProportionalFair().decide(o)
    check_allocation(a, o)
    assert a.prb_owner[0].tolist() == [1] * 6
    o = obs_with(base_obs, rate, [BIG] * 3, avg=[1e6, 1e6, 1e6])
    assert ProportionalFair().decide(o).prb_owner[0].tolist() == [0] * 6


def test_buffer_awareness_hands_on_unneeded_prbs(base_obs):
    rate = np.full((3, 6), 1e6)
    rate[0] *= 3.0
    tti = base_obs.link.tti_s
    bits_ue0 = 3e6 * tti  # one PRB of UE 0 carries this per TTI
    o = obs_with(base_obs, rate, [1.5 * bits_ue0, BIG, 0.0])
    a = MaxCqi().decide(o)
    owners = a.prb_owner[0].tolist()
    assert owners.count(0) == 2  # exactly what empties its buffer
    assert owners.count(1) == 4 and 2 not in owners  # UE 2 has nothing to send
    # the max-rate cap limits a UE like its buffer does
    o = obs_with(base_obs, rate, [BIG, BIG, 0.0], max_rate=[3e6, 1e12, 1e12])
    assert MaxCqi().decide(o).prb_owner[0].tolist().count(0) == 1


def test_round_robin_shares_in_proportion_to_slice_weights(base_obs):
    rate = np.full((3, 6), 1e6)
    o = obs_with(base_obs, rate, [BIG] * 3, weights=(1.0, 2.0, 3.0))
    rr = RoundRobin()
    a = rr.decide(o)
    check_allocation(a, o)
    counts = np.bincount(a.prb_owner[0], minlength=3)
    assert counts.tolist() == [1, 2, 3]
    counts = np.bincount(RoundRobin(slice_aware=False).decide(o).prb_owner[0], minlength=3)
    assert counts.tolist() == [2, 2, 2]
    # the start rotates from one decision to the next
    first = [rr.decide(obs_with(base_obs, rate, [BIG] * 3)).prb_owner[0, 0] for _ in range(3)]
    assert len(set(first)) == 3


def test_power_is_split_equally_and_within_budget(base_obs):
    rate = np.full((3, 6), 1e6)
    o = obs_with(base_obs, rate, [BIG, 0.0, 0.0])
    for pol in (RoundRobin(), ProportionalFair(), MaxCqi()):
        a = pol.decide(o)
        check_allocation(a, o)
        used = a.prb_owner[0] >= 0
        assert np.allclose(a.power_w[0, used], o.ru_max_power_w[0] / o.n_prbs)
        assert a.power_w.sum() <= o.ru_max_power_w.sum() * (1 + 1e-12)


def _greedy_reference(metric, bits, need):
    """The textbook sequential rule, PRB by PRB: the best-ranked candidate whose need is not covered."""
    ranked = np.argsort(-metric, axis=0, kind="stable").T.tolist()
    left = need.tolist()
    out = []
    for k, order in enumerate(ranked):
        pick = -1
        for i in order:
            if metric[i, k] == -np.inf:
                break
            if left[i] > 0:
                pick = i
                left[i] -= bits[i, k]
                break
        out.append(pick)
    return out


def test_vectorised_greedy_equals_the_sequential_rule():
    """Random metrics (with ties and unusable PRBs), rates and needs: same owners PRB by PRB."""
    from policies.classic import greedy_by_prb

    rng = np.random.default_rng(0)
    for trial in range(3000):
        n_c, n_k = int(rng.integers(1, 9)), int(rng.integers(0, 14))
        metric = rng.integers(0, 4, (n_c, n_k)).astype(float) if trial % 2 else rng.random((n_c, n_k))
        bits = rng.integers(0, 3, (n_c, n_k)).astype(float)
        metric[bits <= 0] = -np.inf
        need = rng.integers(0, 5, n_c).astype(float)
        want = _greedy_reference(metric, bits, need)
        assert greedy_by_prb(metric.copy(), bits, need).tolist() == want, trial


def test_greedy_fast_path_for_finite_metrics_equals_the_sequential_rule():
    """Finite metrics take the fast path (no per-entry checks, no bookkeeping for candidates that
    can never be covered): random metrics with ties, needs from tiny to beyond every PRB's bits,
    and PRBs that carry nothing; same owners PRB by PRB as the textbook rule."""
    from policies.classic import greedy_by_prb

    rng = np.random.default_rng(1)
    for trial in range(1000):
        n_c, n_k = int(rng.integers(1, 12)), int(rng.integers(1, 20))
        metric = rng.integers(1, 4, (n_c, n_k)).astype(float) if trial % 2 else rng.random((n_c, n_k)) + 0.1
        bits = rng.integers(0, 4, (n_c, n_k)).astype(float) * rng.random((n_c, n_k))
        need = rng.choice([0.0, 0.5, 2.0, 5.0, 1e9], n_c) * (1 + rng.random(n_c))
        need[bits.sum(axis=1) == 0] = 1e9  # exactly covered by all its bits: the margin's edge
        want = _greedy_reference(metric, bits, need)
        assert greedy_by_prb(metric.copy(), bits, need).tolist() == want, trial
