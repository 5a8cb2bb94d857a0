"""Classic schedulers on hand-built observations: the textbook rule, slice weights, buffer awareness."""

import dataclasses

import numpy as np
import pytest

from policies.classic import MaxCqi, ProportionalFair, RoundRobin
from simcore.contracts import DecisionArrays, check_allocation
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


def _kernel_owners(rate, weight, need, serving, n_ru, horizon_s=1.0):
    """The compiled metric kernel (max-CQI form: metric = weight * rate), owners per RU."""
    from policies.classic import _metric_allocate

    n_ue = rate.shape[0]
    owner, power = _metric_allocate(rate, need, np.full(n_ue, 1e300), weight, np.ones(n_ue), serving,
                                    np.full(n_ru, 6.0), horizon_s, False)
    assert np.array_equal(power > 0, owner >= 0) and np.all(power[owner >= 0] == 6.0 / max(rate.shape[1], 1))
    return owner


def test_compiled_greedy_equals_the_sequential_rule():
    """Random rates (ties, PRBs that carry nothing), weights, needs and serving RUs: the compiled
    kernel gives each RU's PRBs to the same UEs as the textbook rule run on that RU's UEs."""
    rng = np.random.default_rng(0)
    for trial in range(3000):
        n_ue, n_k, n_ru = int(rng.integers(1, 9)), int(rng.integers(0, 14)), int(rng.integers(1, 3))
        rate = rng.integers(0, 3, (n_ue, n_k)).astype(float) if trial % 2 else rng.random((n_ue, n_k))
        rate[rng.random((n_ue, n_k)) < 0.2] = 0.0
        weight = rng.integers(1, 3, n_ue).astype(float) if trial % 3 else rng.random(n_ue) + 0.1
        need = rng.integers(0, 5, n_ue).astype(float)
        serving = rng.integers(0, n_ru, n_ue)
        got = _kernel_owners(rate, weight, need, serving, n_ru)
        for r in range(n_ru):
            cand = ((need > 0) & (serving == r)).nonzero()[0]
            metric = weight[cand, None] * rate[cand]
            metric[rate[cand] <= 0] = -np.inf
            want = [-1 if i < 0 else int(cand[i]) for i in _greedy_reference(metric, rate[cand], need[cand])]
            assert got[r].tolist() == want, trial


def test_compiled_greedy_with_large_and_exact_needs_equals_the_sequential_rule():
    """Needs from tiny to beyond every PRB's bits, and exactly covered by all of a UE's bits (the
    edge of ``left > 0``), fractional horizons: same owners PRB by PRB as the textbook rule."""
    rng = np.random.default_rng(1)
    for trial in range(1000):
        n_ue, n_k = int(rng.integers(1, 12)), int(rng.integers(1, 20))
        rate = rng.integers(0, 4, (n_ue, n_k)).astype(float) * rng.random((n_ue, n_k))
        weight = rng.integers(1, 4, n_ue).astype(float) if trial % 2 else rng.random(n_ue) + 0.1
        h = float(rng.choice([1.0, 0.001, 0.01]))
        need = rng.choice([0.0, 0.5, 2.0, 5.0, 1e9], n_ue) * (1 + rng.random(n_ue)) * h
        need[rate.sum(axis=1) == 0] = 1e9
        exact = rng.random(n_ue) < 0.2
        need[exact] = (rate * h).sum(axis=1)[exact]
        got = _kernel_owners(rate, weight, need, np.zeros(n_ue, dtype=np.int64), 1, h)
        metric = weight[:, None] * rate
        bits = rate * h
        metric[bits <= 0] = -np.inf
        assert got[0].tolist() == _greedy_reference(metric, bits, need), trial


def _random_state(base, rng, n_ue=3):
    """A random state of ``base``'s cell: rates (some zero, some NaN), buffers (some empty), averages,
    slice weights; returns the Observation and its DecisionArrays with the rows of the UEs without
    data overwritten (NaN or huge): what the engine leaves there is not read."""
    n_k = base.n_prbs
    rate = rng.choice([0.0, 1e5, 1e6, 3e6], (n_ue, n_k)) * (1 + (rng.random((n_ue, n_k)) < 0.5) * rng.random((n_ue, n_k)))
    rate[rng.random((n_ue, n_k)) < 0.05] = np.nan
    buffer = rng.choice([0.0, 500.0, 4e3, 1e9], n_ue)
    o = obs_with(base, rate, buffer, avg=rng.choice([0.0, 0.5, 1e5, 2e6], n_ue) * (1 + rng.random(n_ue)),
                 weights=tuple(rng.choice([1.0, 2.0, 0.5], 3)), max_rate=rng.choice([1e5, 2e7, 1e12], n_ue))
    junk = rate.copy()
    junk[buffer <= 0] = rng.choice([np.nan, 1e30, 0.0])
    return o, DecisionArrays.from_observation(o)._replace(prb_rate_bps=junk)


@pytest.mark.parametrize("make", [ProportionalFair, MaxCqi, RoundRobin,
                                  lambda: ProportionalFair(period_tti=3, slice_aware=False)])
def test_array_path_decides_as_the_observation_path(base_obs, make):
    """decide_arrays (what the engine calls for the classic schedulers, on the rows of the UEs with
    data only) and decide(Observation) give the same allocation, bit for bit, over random states."""
    rng = np.random.default_rng(3)
    by_obs, by_arrays = make(), make()
    for _ in range(400):
        o, arrays = _random_state(base_obs, rng)
        a, b = by_obs.decide(o), by_arrays.decide_arrays(arrays)
        check_allocation(b, arrays)
        for x, y in ((a.ue_ru, b.ue_ru), (a.prb_owner, b.prb_owner), (a.power_w, b.power_w)):
            assert x.dtype == y.dtype and np.array_equal(x, y)


