"""The snapshot problem's unique optimum: ESA and the MILP return the same allocation under both
objectives (hypothesis, including instances built to tie); hand-solved cases; ESA's size guard."""

import dataclasses
import functools

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from policies.esa import ExhaustiveSearch, SearchSpaceTooLarge
from policies.optimal import ExactOptimum
from simcore.contracts import Allocation, check_allocation
from simcore.engine import Engine
from simcore.phy import fbl_penalty
from simcore.plugins import PluginError, make_phy, make_policy
from simcore.scenario import parse_scenario
from simcore.snapshot import OBJECTIVES, SnapshotProblem, cap_halvings, level_factors_checked, tie_cost

from core_helpers import small


def observe(seed=1, ues=1, prbs=3, n_rus=1, duration_s=0.05, caps=(None, None, None), min_rate=(0.5, 0.1, 0.01),
            rate_mbps=1.0):
    data = small(ues=ues, duration_s=duration_s, seed=seed).model_dump()
    data["cell"]["prbs_per_ru"] = prbs
    data["cell"]["rus"] = [{"x_m": 300.0 * i, "y_m": 0.0, "height_m": 25.0, "max_power_dbm": 40.0} for i in range(n_rus)]
    for sl, cap, mr in zip(data["slices"], caps, min_rate):
        sl["power_cap_dbm"] = cap
        sl["min_rate_mbps"] = mr
    data["slices"][0]["traffic"] = {"model": "poisson", "rate_mbps": rate_mbps, "packet_bytes": 1500}
    scn = parse_scenario(data)
    eng = Engine(scn, make_policy("pf"), make_phy("builtin"))
    eng.run()
    return eng.observation(eng.n_tti - 1)


@functools.lru_cache(maxsize=None)
def base_observation(seed: int, twins: bool):
    """A network state to build instances on: 3 UEs x 4 PRBs, or 6 UEs (two per slice) x 3 PRBs."""
    return observe(seed=seed, ues=2 if twins else 1, prbs=3 if twins else 4, duration_s=0.02)


BUFFERS = (0.0, 500.0, 5e3, 5e4, 1e6)  # bits: empty, below one PRB's worth per interval, ..., full


@st.composite
def instances(draw):
    """A snapshot state, often built to tie: equal gains over PRBs, identical UEs of one slice, a
    saturated spectral efficiency, empty buffers, the CQI table's steps; Shannon, CQI or FBL rates."""
    twins = draw(st.booleans())
    base = base_observation(draw(st.integers(0, 2)), twins)
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    prbs = draw(st.integers(1, base.n_prbs))
    g = base.gain[:, :, :prbs] * rng.lognormal(0.0, 1.0, (base.n_ues, 1, prbs))
    mode = draw(st.sampled_from(["drawn", "equal_prbs", "all_equal", "saturated"]))
    p_ref = base.ru_max_power_w[0] / prbs
    if mode == "equal_prbs":
        g[:] = g[:, :, :1]
    elif mode == "all_equal":
        g[:] = g[0, 0, 0]
    elif mode == "saturated":  # SNR far above the top MCS at every level, on some or all UEs
        hot = rng.random(base.n_ues) < 0.7
        g[hot] = 1e9 * base.link.noise_w / p_ref
    buffers = np.array([draw(st.sampled_from(BUFFERS)) for _ in range(base.n_ues)])
    min_rate = np.array([draw(st.sampled_from([0.0, 1e4, 5e5, 5e6])) for _ in range(3)])[base.slice_id]
    if twins:  # the second UE of a slice copies the first one: same slice, gains and buffer
        for u in range(1, base.n_ues, 2):
            if draw(st.booleans()):
                g[u], buffers[u] = g[u - 1], buffers[u - 1]
    cap = draw(st.sampled_from([np.inf, 2.0, 5.0]))  # per-slice power cap (W) on eMBB and mMTC, or none
    link = base.link
    rate_model = draw(st.sampled_from(["shannon", "cqi", "fbl"]))
    if rate_model == "cqi":
        link = dataclasses.replace(link, rate_model="cqi")
    elif rate_model == "fbl":  # URLLC and mMTC at the finite-blocklength rate
        link = dataclasses.replace(link, ue_fbl_penalty=np.where(base.slice_id > 0, fbl_penalty(1e-5), np.nan))
    obs = dataclasses.replace(base, gain=g, buffer_bits=buffers, min_rate_bps=min_rate, link=link,
                              slice_power_cap_w=np.array([cap, np.inf, cap]),
                              max_delay_ms=np.array([draw(st.sampled_from([1.0, 100.0])) for _ in range(base.n_ues)]))
    levels = draw(st.sampled_from([(1.0,), (0.5, 1.0, 2.0), (1.0, 3.0)]))
    return obs, levels


@settings(max_examples=60, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(inst=instances())
def test_esa_and_milp_return_the_same_allocation(inst):
    obs, levels = inst
    for objective in OBJECTIVES:
        a = ExhaustiveSearch(level_factors=levels, objective=objective).decide(obs)
        b = ExactOptimum(level_factors=levels, mip_gap=1e-9, objective=objective).decide(obs)
        check_allocation(a, obs)
        check_allocation(b, obs)
        assert b.info["proven_optimal"] and b.info["exact"]
        assert a.prb_owner.tolist() == b.prb_owner.tolist(), (objective, a.info, b.info)
        assert np.array_equal(a.power_w, b.power_w)
        prob = SnapshotProblem(obs, levels, objective=objective)
        ea = prob.evaluate(a)
        assert a.info["needs_met"] == b.info["needs_met"] == (ea.violation_bps <= prob.violation_tol)
        if not a.info["needs_met"]:
            assert "least total shortfall" in a.info["message"]
        if objective == "served":  # no PRB for a UE that can use nothing
            empty = (obs.buffer_bits <= 0)
            assert not np.isin(a.prb_owner, np.flatnonzero(empty)).any()


@st.composite
def capped_instances(draw):
    """A snapshot state under slice caps far below P_RU / K (10 W RU, up to 3 PRBs): each slice capped
    on its own (or not), so the problem's levels are halved down to the tightest cap (``default_levels_w``)."""
    base = base_observation(draw(st.integers(0, 2)), False)
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    prbs = draw(st.integers(1, 3))
    g = base.gain[:, :, :prbs] * rng.lognormal(0.0, 1.0, (base.n_ues, 1, prbs))
    if draw(st.booleans()):
        g[:] = g[:, :, :1]  # equal PRBs: ties
    caps = np.array([draw(st.sampled_from([np.inf, 10.0, 2.0, 0.3, 0.05])) for _ in range(3)])
    obs = dataclasses.replace(base, gain=g, slice_power_cap_w=caps,
                              buffer_bits=np.array([draw(st.sampled_from(BUFFERS)) for _ in range(base.n_ues)]),
                              min_rate_bps=np.array([draw(st.sampled_from([0.0, 1e4, 5e5])) for _ in range(3)]))
    return obs, draw(st.sampled_from([(1.0,), (0.5, 1.0, 2.0)]))


@settings(max_examples=30, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(inst=capped_instances())
def test_esa_and_milp_agree_under_tight_slice_caps(inst):
    """Where a cap is below every level of P_RU / K the halved levels give the slice something to
    spend it on: ESA and the MILP still return the same allocation, within every cap."""
    obs, levels = inst
    prob = SnapshotProblem(obs, levels)
    tight = obs.slice_power_cap_w.min()
    if tight < obs.ru_max_power_w[0]:
        assert prob.levels_w.min() <= min(levels) * tight / obs.n_prbs * (1 + 1e-12)
    for objective in OBJECTIVES:
        a = ExhaustiveSearch(level_factors=levels, objective=objective).decide(obs)
        b = ExactOptimum(level_factors=levels, mip_gap=1e-9, objective=objective).decide(obs)
        check_allocation(a, obs)
        check_allocation(b, obs)
        assert b.info["proven_optimal"]
        assert a.prb_owner.tolist() == b.prb_owner.tolist(), (objective, a.info, b.info)
        assert np.array_equal(a.power_w, b.power_w)


def test_levels_follow_the_tightest_slice_cap_and_nothing_else():
    """Without a cap below the RU budget the levels are the factors times P_RU / K bit for bit, in
    their order (problems, labels and checkpoints of uncapped scenarios unchanged), and so is the
    optimum; a cap below it adds the factors halved, down to the cap spread over every PRB."""
    obs = observe(seed=2, prbs=3, ues=2)
    share = obs.ru_max_power_w / obs.n_prbs
    p_ru_dbm = 10 * np.log10(obs.ru_max_power_w[0] * 1e3)
    free = dataclasses.replace(obs, slice_power_cap_w=np.full(3, np.inf))
    at_budget = dataclasses.replace(obs, slice_power_cap_w=np.array([np.inf, 10 ** (p_ru_dbm / 10) / 1e3, np.inf]))
    for o in (free, at_budget):
        prob = SnapshotProblem(o)
        assert prob.levels_w.tobytes() == (share[:, None] * np.array([0.5, 1.0, 2.0])[None, :]).tobytes()
        assert prob.level_steps.tolist() == [[1, 2, 4]]
    assert cap_halvings(at_budget) == 0
    for objective in OBJECTIVES:
        a, b = (ExactOptimum(objective=objective).decide(o) for o in (free, at_budget))
        assert a.prb_owner.tobytes() == b.prb_owner.tobytes() and a.power_w.tobytes() == b.power_w.tobytes()
    # a cap of 1/100 of the RU budget: 7 halvings (2^-7 P_RU <= C < 2^-6 P_RU), each level once
    capped = dataclasses.replace(obs, slice_power_cap_w=np.array([np.inf, obs.ru_max_power_w[0] / 100, np.inf]))
    assert cap_halvings(capped) == 7
    prob = SnapshotProblem(capped)
    assert (prob.levels_w / share[:, None]).tolist() == [[0.5, 1.0, 2.0] + [2.0 ** -j for j in range(2, 9)]]
    assert prob.level_steps.tolist() == [[128, 256, 512, 64, 32, 16, 8, 4, 2, 1]]
    assert (SnapshotProblem(capped, level_factors=(1.0, 3.0)).levels_w / share[:, None]).shape == (1, 16)
    alloc = ExactOptimum(objective="rate").decide(capped)
    check_allocation(alloc, capped)
    urllc = np.isin(alloc.prb_owner[0], np.flatnonzero(capped.slice_id == 1))
    assert urllc.any() and alloc.power_w[0, urllc].max() <= capped.slice_power_cap_w[1]


def test_hand_built_instance():
    """Three UEs, two PRBs, one power level (P/2 per PRB), Shannon rates.

    UE 0 (eMBB, w=2) sees 60 dB on both PRBs: capped at the top MCS, r0 = B * 5.5547 per PRB.
    UE 1 (URLLC, w=3) sees 12 dB: r1 = B log2(1 + SINR1) per PRB, SINR1 = 10^1.2 / (1 + 10^1.2 q),
    q = sigma_q^2 / p the fronthaul noise relative to the PRB's power.
    UE 2 (mMTC) sees -30 dB. Per PRB, w1 r1 = 3 r1 > w0 r0 = 2 r0.
    ``rate`` (every bit counts; need R_min whatever the buffer):
    - no minimum rates: both PRBs to UE 1, objective 6 r1;
    - UE 0 needs r0: one PRB each, objective 2 r0 + 3 r1;
    - UE 0 needs 3 r0 (impossible): least shortfall = both PRBs to UE 0 (shortfall r0), objective 4 r0.
    ``served`` (rates count up to c = B / T_dec, T_dec = 10 ms):
    - UE 1 holds 1 Mbit (c1 = 100 Mbit/s, more than 2 r1), the others nothing: both PRBs to UE 1, 6 r1;
    - UE 1 holds 1 kbit (c1 = 100 kbit/s < r1), the others nothing: one PRB to UE 1 and the other idle
      (it would carry nothing that counts), objective 3 c1; the PRB is the one of smaller tie cost;
    - UE 0 holds 1 Mbit and UE 1 10 kbit (c1 = 1 Mbit/s, between r1 and 2 r1): UE 1's second PRB would
      add 3 (c1 - r1) < 2 r0, so one PRB each (the pair of smaller total tie cost), objective 3 r1 + 2 r0.
    """
    base = observe(seed=3, prbs=2, ues=1)
    assert base.n_ues == 3 and base.slice_weight.tolist() == [2.0, 3.0, 1.0] and base.interval_tti == 10
    link = base.link
    p = base.ru_max_power_w[0] / 2
    snr1 = 10 ** (12 / 10)
    g = np.zeros((3, 1, 2))
    g[0, 0, :] = 1e6 * link.noise_w / p
    g[1, 0, :] = snr1 * link.noise_w / p
    g[2, 0, :] = 1e-3 * link.noise_w / p
    r1 = link.prb_bandwidth_hz * np.log2(1 + snr1 / (1 + snr1 * link.quant_noise_w[0] / p))
    r0 = link.prb_bandwidth_hz * link.max_se
    assert 3 * r1 > 2 * r0
    no_drain = np.full(3, 1e12)  # delay targets so loose that buffers add no rate need

    def case(buffers, min_rate_0=0.0):
        return dataclasses.replace(base, gain=g, buffer_bits=np.array(buffers, dtype=float),
                                   min_rate_bps=np.array([min_rate_0, 0.0, 0.0]), max_delay_ms=no_drain,
                                   slice_power_cap_w=np.full(3, np.inf))

    def both(objective):
        return ExhaustiveSearch(level_factors=(1.0,), objective=objective), ExactOptimum(level_factors=(1.0,),
                                                                                        objective=objective)

    for pol in both("rate"):
        a = pol.decide(case([0.0, 0.0, 0.0]))
        assert a.prb_owner[0].tolist() == [1, 1]
        assert a.info["objective_bps"] == pytest.approx(6 * r1, rel=1e-9) and a.info["needs_met"]
        a = pol.decide(case([0.0, 0.0, 0.0], min_rate_0=r0))  # an empty buffer still needs R_min
        assert sorted(a.prb_owner[0].tolist()) == [0, 1]
        assert a.info["objective_bps"] == pytest.approx(2 * r0 + 3 * r1, rel=1e-9) and a.info["needs_met"]
        a = pol.decide(case([0.0, 0.0, 0.0], min_rate_0=3 * r0))
        assert a.prb_owner[0].tolist() == [0, 0]
        assert a.info["objective_bps"] == pytest.approx(4 * r0, rel=1e-9)
        assert a.info["violation_bps"] == pytest.approx(r0, rel=1e-9)
        assert not a.info["needs_met"] and "least total shortfall" in a.info["message"]

    c1 = 1e3 / 10e-3
    assert c1 < r1 < 1e4 / 10e-3 < 2 * r1 and 3 * (1e4 / 10e-3 - r1) < 2 * r0
    t = SnapshotProblem(base, level_factors=(1.0,)).choice_tie_cost(np.arange(3)[:, None], 0, np.arange(2), 0)  # (U, K)
    k1 = int(np.argmin(t[1]))  # equal gains on both PRBs: the tie cost picks UE 1's PRB
    pair = [1, 0] if t[1, 0] + t[0, 1] < t[1, 1] + t[0, 0] else [0, 1]  # and who gets which when UE 0 has data
    for pol in both("served"):
        a = pol.decide(case([0.0, 1e6, 0.0]))
        assert a.prb_owner[0].tolist() == [1, 1]
        assert a.info["objective_bps"] == pytest.approx(6 * r1, rel=1e-9)
        a = pol.decide(case([0.0, 1e3, 0.0]))
        assert a.prb_owner[0].tolist() == [1 if k == k1 else -1 for k in range(2)]
        assert a.info["objective_bps"] == pytest.approx(3 * c1, rel=1e-9) and a.info["power_steps"] == 1
        a = pol.decide(case([1e6, 1e4, 0.0]))
        assert a.prb_owner[0].tolist() == pair
        assert a.info["objective_bps"] == pytest.approx(3 * r1 + 2 * r0, rel=1e-9)


def test_served_and_rate_evaluate_one_allocation():
    """Under served a UE's rate counts up to B / T_dec and an empty UE needs nothing; under rate every
    bit/s counts and every UE needs its slice's R_min."""
    obs = dataclasses.replace(observe(seed=5, prbs=3), buffer_bits=np.array([0.0, 2e3, 5e5]))
    owner = np.array([[0, 1, 2]])
    alloc = Allocation(np.zeros(3, dtype=np.int64), owner, np.full((1, 3), obs.ru_max_power_w[0] / 3))
    rates = obs.link.ue_rates_bps(obs.gain, alloc.ue_ru, owner, alloc.power_w)
    t_dec = obs.interval_tti * obs.link.tti_s
    served = SnapshotProblem(obs).evaluate(alloc)
    assert served.served_bps.tolist() == pytest.approx(np.minimum(rates, obs.buffer_bits / t_dec).tolist())
    assert served.objective_bps == pytest.approx(float(obs.ue_weight @ served.served_bps))
    drain = obs.buffer_bits / (obs.max_delay_ms * 1e-3)
    need = np.where(obs.buffer_bits > 0, np.minimum(np.maximum(obs.min_rate_bps, drain), obs.max_rate_bps), 0.0)
    assert served.need_bps.tolist() == pytest.approx(need.tolist()) and served.need_bps[0] == 0.0
    assert served.power_steps == 3 * 2 and served.tie_cost > 0  # level 1.0 = two steps of 0.5 P/K
    full = SnapshotProblem(obs, objective="rate").evaluate(alloc)
    assert full.rates_bps.tolist() == full.served_bps.tolist() == pytest.approx(rates.tolist())
    assert full.objective_bps == pytest.approx(float(obs.ue_weight @ rates))
    assert full.need_bps.tolist() == obs.min_rate_bps.tolist()
    assert full.violation_bps == pytest.approx(float(np.maximum(obs.min_rate_bps - rates, 0).sum()))


def test_objective_and_levels_are_validated():
    obs = observe(seed=1, prbs=2)
    with pytest.raises(ValueError, match="objective must be one of served, rate"):
        SnapshotProblem(obs, objective="throughput")
    for name in ("esa", "optimal"):
        with pytest.raises(PluginError, match="objective must be one of served, rate"):
            make_policy(name, {"objective": "full"})
        assert make_policy(name, {"objective": "rate"}).objective == "rate"
        assert make_policy(name).objective == "served"
    with pytest.raises(ValueError, match="multiples of a common step"):
        level_factors_checked((1.0, 2 ** 0.5))
    assert SnapshotProblem(obs, level_factors=(0.5, 1.0, 2.0)).level_steps.tolist() == [[1, 2, 4]]
    assert SnapshotProblem(obs, level_factors=(1.0, 3.0)).level_steps.tolist() == [[1, 3]]
    t = tie_cost(np.arange(2**20))
    assert np.unique(t).size == 2**20 and t.min() >= 1 and t.max() <= 2**24  # one value per choice


def test_esa_refuses_an_oversized_instance():
    obs = observe(prbs=30, ues=10)
    with pytest.raises(SearchSpaceTooLarge) as exc:
        ExhaustiveSearch(max_space=1_000_000).decide(obs)
    size = (30 * 3 + 1) ** 30
    assert f"{size:,}" in str(exc.value) and "1,000,000" in str(exc.value)


def test_multi_ru_esa_and_joint_milp_exact_the_bounded_modes_never_better():
    obs = observe(seed=4, prbs=2, n_rus=2, ues=1, caps=(None, None, None), min_rate=(0.0, 0.0, 0.0))
    assert obs.n_ues == 6  # 2 RUs x 3 slices x 1 UE
    for objective in OBJECTIVES:
        a = ExhaustiveSearch(level_factors=(1.0,), max_space=10**7, objective=objective).decide(obs)
        b = ExactOptimum(level_factors=(1.0,), objective=objective).decide(obs)
        check_allocation(a, obs)
        check_allocation(b, obs)
        assert b.info["exact"] is True and b.info["mode"] == "joint"
        assert a.prb_owner.tolist() == b.prb_owner.tolist() and np.array_equal(a.power_w, b.power_w)
        prob = SnapshotProblem(obs, (1.0,), objective=objective)
        # ESA is the exact optimum with interference; the bounded modes can only match or trail it
        for mode in ("worst_case", "certified"):
            c = ExactOptimum(level_factors=(1.0,), objective=objective, interference=mode).decide(obs)
            check_allocation(c, obs)
            assert c.info["exact"] is False
            assert not prob.is_better(prob.evaluate(c), prob.evaluate(a))


def test_a_later_phase_without_a_feasible_point_keeps_the_previous_solution(monkeypatch):
    """HiGHS reaching its time limit with no feasible point (status 1, no x) in the last phase:
    the previous phase's solution is kept, it ties the optimum on tiers 1-3, and the result is
    reported as not proven. Any other failure, or one in the first phase, is still an error."""
    import policies.optimal as optimal

    obs = observe(seed=3, ues=2, prbs=4, rate_mbps=20.0)  # needs not all met: all four phases solve
    real, calls = optimal.milp, []

    def counting(*a, **kw):
        calls.append(1)
        return real(*a, **kw)

    monkeypatch.setattr(optimal, "milp", counting)
    best = ExactOptimum().decide(obs)
    n = len(calls)
    assert n == 4 and best.info["proven_optimal"] is True

    def failing(at, status, persist=False):
        """milp failing (no x) at call ``at``, and at every later call if ``persist``."""
        def milp(*a, **kw):
            calls.append(1)
            if len(calls) == at or (persist and len(calls) > at):
                return type("Res", (), {"x": None, "status": status, "message": "stub"})()
            return real(*a, **kw)
        return milp

    calls.clear()
    monkeypatch.setattr(optimal, "milp", failing(n, 1))
    kept = ExactOptimum().decide(obs)
    check_allocation(kept, obs)
    assert kept.info["proven_optimal"] is False and "limit_reached" in kept.info["status"]
    prob = SnapshotProblem(obs)
    e0, e1 = prob.evaluate(best), prob.evaluate(kept)
    assert e1.violation_bps == pytest.approx(e0.violation_bps, rel=1e-9) and e1.power_steps == e0.power_steps
    assert e1.objective_bps == pytest.approx(e0.objective_bps, rel=1e-9) and e1.tie_cost >= e0.tie_cost
    # "infeasible" in the last phase (numerical: the previous solution meets every row) is retried
    # with presolve, which answers here; reported twice, the previous solution is kept
    calls.clear()
    monkeypatch.setattr(optimal, "milp", failing(n, 2))
    retried = ExactOptimum().decide(obs)
    assert len(calls) == n + 1 and retried.info["proven_optimal"] is True
    assert retried.prb_owner.tolist() == best.prb_owner.tolist() and np.array_equal(retried.power_w, best.power_w)

    calls.clear()
    monkeypatch.setattr(optimal, "milp", failing(n, 2, persist=True))
    kept = ExactOptimum().decide(obs)
    check_allocation(kept, obs)
    assert len(calls) == n + 2 and kept.info["proven_optimal"] is False and "infeasible" in kept.info["status"]
    assert prob.evaluate(kept).violation_bps == pytest.approx(e0.violation_bps, rel=1e-9)
    calls.clear()
    monkeypatch.setattr(optimal, "milp", failing(1, 4))  # a solve error in phase 1: retried too
    again = ExactOptimum().decide(obs)
    assert len(calls) == n + 1 and again.prb_owner.tolist() == best.prb_owner.tolist()
    for at, status in ((n, 3), (1, 1), (1, 2)):
        calls.clear()
        monkeypatch.setattr(optimal, "milp", failing(at, status, persist=status == 2))
        with pytest.raises(RuntimeError, match="failed"):
            ExactOptimum().decide(obs)
