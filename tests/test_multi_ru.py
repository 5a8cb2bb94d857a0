"""Several RUs that interfere: ESA and the joint MILP return the same allocation (hypothesis);
the worst-case (R-bar) mode is feasible and its true rates are at least its bounded ones; the
certified mode's gap is non-negative, zero where exact, and its bounds hold the exact optimum; the
joint relaxation's Lagrangian bounds hold it for any multipliers, and prove strongly interfering
states optimal where the interference-free bound could not."""

import dataclasses
import functools
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from oransim.evaluate import evaluate, sample_states
from policies.esa import ExhaustiveSearch
from policies.interference import JointTooLarge
from policies.joint_bound import JointRelaxation
from policies.optimal import ExactOptimum
from simcore.contracts import check_allocation
from simcore.plugins import make_policy
from simcore.scenario import load_scenario
from simcore.snapshot import OBJECTIVES, SnapshotProblem

from test_optimum import BUFFERS, observe


@functools.lru_cache(maxsize=None)
def base_observation(seed: int, n_rus: int):
    """A multi-RU network state to build instances on: one UE per slice per RU, 2 PRBs."""
    return observe(seed=seed, ues=1, prbs=2, n_rus=n_rus, duration_s=0.02)


def subset(obs, keep: np.ndarray):
    """The observation restricted to the UEs ``keep`` (per-UE arrays cut, the link's FBL penalties too)."""
    link = obs.link
    if link.ue_fbl_penalty is not None:
        link = dataclasses.replace(link, ue_fbl_penalty=link.ue_fbl_penalty[keep])
    per_ue = {f.name: getattr(obs, f.name)[keep] for f in dataclasses.fields(obs)
              if isinstance(getattr(obs, f.name), np.ndarray) and getattr(obs, f.name).shape[:1] == (obs.n_ues,)}
    return dataclasses.replace(obs, **per_ue, link=link)


@st.composite
def multi_ru_instances(draw, max_ues=4):
    """A 2-RU state (UEs of both RUs, some dropped), often built to interfere strongly: cross gains
    raised to the serving ones, fronthaul noise that matters; Shannon or CQI rates."""
    base = base_observation(draw(st.integers(0, 1)), 2)
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    n = draw(st.integers(2, max_ues))
    keep = np.sort(rng.choice(base.n_ues, size=n, replace=False))
    prbs = draw(st.integers(1, base.n_prbs))
    g = base.gain[:, :, :prbs] * rng.lognormal(0.0, 1.0, (base.n_ues, base.n_rus, prbs))
    mode = draw(st.sampled_from(["drawn", "close", "fronthaul"]))
    link = base.link
    if mode == "close":  # every UE hears both RUs about equally: interference decides
        g = g.max(axis=1, keepdims=True) * rng.uniform(0.3, 1.0, g.shape)
    elif mode == "fronthaul":  # quantization noise well above the thermal floor at the UEs
        link = dataclasses.replace(link, quant_noise_w=link.quant_noise_w * 1e4)
    if draw(st.booleans()):
        link = dataclasses.replace(link, rate_model="cqi")
    obs = dataclasses.replace(base, gain=g, link=link,
                              buffer_bits=np.array([draw(st.sampled_from(BUFFERS)) for _ in range(base.n_ues)]),
                              min_rate_bps=np.array([draw(st.sampled_from([0.0, 1e5, 2e6])) for _ in range(3)])[base.slice_id])
    obs = subset(obs, keep)
    levels = draw(st.sampled_from([(1.0,), (0.5, 1.0, 2.0)]))
    return obs, levels


@settings(max_examples=25, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(inst=multi_ru_instances())
def test_esa_and_joint_milp_return_the_same_allocation(inst):
    obs, levels = inst
    for objective in OBJECTIVES:
        a = ExhaustiveSearch(level_factors=levels, objective=objective, max_space=10**6).decide(obs)
        b = ExactOptimum(level_factors=levels, mip_gap=1e-9, objective=objective).decide(obs)
        check_allocation(b, obs)
        assert b.info["mode"] == "joint" and b.info["exact"] and b.info["proven_optimal"]
        assert b.info["gap"] == 0.0 and b.info["joint_choices"] > 0
        assert a.prb_owner.tolist() == b.prb_owner.tolist(), (objective, a.info, b.info)
        assert np.array_equal(a.power_w, b.power_w)
        assert a.ue_ru.tolist() == b.ue_ru.tolist()


@settings(max_examples=12, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(inst=multi_ru_instances(max_ues=6), objective=st.sampled_from(OBJECTIVES))
def test_worst_case_is_feasible_and_its_true_rates_at_least_the_bounded_ones(inst, objective):
    obs, levels = inst
    a = ExactOptimum(level_factors=levels, objective=objective, interference="worst_case").decide(obs)
    check_allocation(a, obs)
    info = a.info
    assert info["mode"] == "worst_case" and info["exact"] is False and info["exact_for"] == "worst_case"
    prob = SnapshotProblem(obs, levels, objective=objective)
    ev = prob.evaluate(a)
    tol = 1e-9 * max(1.0, float(ev.rates_bps.max(initial=0.0)))
    assert (ev.rates_bps >= info["bounded_rates_bps"] - tol).all()
    assert ev.objective_bps >= info["bounded_objective_bps"] - tol
    assert ev.violation_bps <= info["bounded_violation_bps"] + tol
    assert (a.ue_ru == obs.serving_ru).all()  # the bounded problem keeps each UE on its serving RU


@settings(max_examples=10, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(inst=multi_ru_instances(max_ues=4), objective=st.sampled_from(OBJECTIVES))
def test_certified_gap_is_nonnegative_and_its_bounds_hold_the_exact_optimum(inst, objective):
    obs, levels = inst
    exact = ExactOptimum(level_factors=levels, objective=objective, interference="joint").decide(obs)
    cert = ExactOptimum(level_factors=levels, objective=objective, interference="certified").decide(obs)
    check_allocation(cert, obs)
    prob = SnapshotProblem(obs, levels, objective=objective)
    ev, ex = prob.evaluate(cert), prob.evaluate(exact)
    info = cert.info
    assert info["mode"] == "certified" and info["gap"] >= 0.0 and info["shortfall_gap_bps"] >= 0.0
    assert not prob.is_better(ev, ex)  # the exact optimum is never beaten
    tol = 1e-6 * max(1.0, info["upper_bound_bps"])
    assert info["shortfall_lower_bound_bps"] <= ex.violation_bps + prob.violation_tol + tol
    if ex.violation_bps <= ev.violation_bps + prob.violation_tol:  # the bound covers the exact optimum
        assert ex.objective_bps <= info["upper_bound_bps"] * (1 + 1e-4) + tol
    if info["gap"] == 0.0 and info["shortfall_gap_bps"] <= prob.violation_tol:  # certified optimal: same tiers 1, 2
        assert ev.objective_bps == pytest.approx(ex.objective_bps, rel=1e-6, abs=1.0)


def test_joint_refuses_above_its_limit_naming_the_size_and_auto_falls_back():
    obs = base_observation(0, 2)
    with pytest.raises(JointTooLarge) as exc:
        ExactOptimum(interference="joint", max_joint_choices=100, objective="rate").decide(obs)
    size = 2 * (6 * 3 + 2) ** 2  # K * prod_r (U L + off + idle); under rate every UE can take a PRB
    assert f"{size:,}" in str(exc.value) and "max_joint_choices=100" in str(exc.value)
    a = ExactOptimum(max_joint_choices=100).decide(obs)
    assert a.info["mode"] == "certified" and a.info["interference"] == "auto" and a.info["gap"] >= 0.0
    assert ExactOptimum().decide(obs).info["mode"] == "joint"
    with pytest.raises(ValueError, match="interference must be one of auto, joint, worst_case, certified"):
        ExactOptimum(interference="fixed")


def test_two_ru_cell_optimal_never_worse_than_pf_in_shortfall():
    """The 2-RU cell of scenarios/esa_small_2ru.yaml: `optimal` (joint, exact) has no more total shortfall than PF."""
    scn = load_scenario(Path(__file__).resolve().parents[1] / "scenarios/esa_small_2ru.yaml")
    opt, pf = ExactOptimum(), make_policy("pf")
    states = sample_states(scn, 4, seed=1, warmup_tti=100)
    for obs in states:
        prob = SnapshotProblem(obs)
        a = opt.decide(obs)
        assert a.info["mode"] == "joint" and a.info["exact"]
        assert prob.evaluate(a).violation_bps <= prob.evaluate(pf.decide(obs)).violation_bps + prob.violation_tol
    table, _ = evaluate(states[:2], ["pf"], optimum="optimal")  # evaluate says which mode the optimum used
    assert table.attrs["optimum_modes"] == ["joint"] and table.attrs["optimum_gap_pct"] == 0.0


def _random_multipliers(rng, obs, relax, scale):
    """Non-negative multipliers for ``JointRelaxation.lagrangian`` in its argument order (mu, nu, pi, theta,
    sigma, pi_cut), exponential at ``scale`` (0 gives all zeros)."""
    mu = rng.exponential(scale, obs.n_rus) * 1e3
    nu = rng.exponential(scale, (obs.n_rus, obs.slice_power_cap_w.size))
    pi, sigma = rng.exponential(scale, obs.n_ues), rng.exponential(scale, obs.n_ues)
    theta = float(rng.exponential(scale))
    pi_cut = rng.exponential(scale, relax.cut_ues.size)  # the need rows' rounding cuts
    return mu, nu, pi, theta, sigma, pi_cut


@settings(max_examples=8, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(inst=multi_ru_instances(max_ues=4), objective=st.sampled_from(OBJECTIVES), seed=st.integers(0, 2**32 - 1))
def test_joint_relaxation_bounds_hold_the_exact_optimum_for_any_multipliers(inst, objective, seed):
    """Weak duality: any non-negative multipliers give a valid bound (no solver needed to be right), and
    the column-generated bounds too: shortfall bound <= V*, objective bound (at V*) >= F*."""
    obs, levels = inst
    prob = SnapshotProblem(obs, levels, objective=objective)
    exact = prob.evaluate(ExactOptimum(level_factors=levels, objective=objective, interference="joint").decide(obs))
    relax = JointRelaxation(prob, 1e3)
    assert relax.fits
    unit, v_star, f_star = 1e3, exact.violation_bps, exact.objective_bps
    v_max = (v_star + prob.violation_tol) / unit
    tol = 1e-6 * max(1.0, f_star / unit)
    rng = np.random.default_rng(seed)
    for scale in (0.0, 1e-3, 1.0, 10.0):
        multipliers = _random_multipliers(rng, obs, relax, scale)
        assert relax.lagrangian(None, *multipliers)[0] <= v_star / unit + tol
        assert relax.lagrangian(v_max, *multipliers)[0] >= f_star / unit - tol
    relax.add_allocation(ExactOptimum(level_factors=levels, objective=objective, interference="worst_case").decide(obs))
    assert relax.shortfall_lower_bound(5.0) <= v_star + prob.violation_tol + 1e-3
    assert relax.objective_upper_bound(v_star + prob.violation_tol, 5.0) >= f_star * (1 - 1e-9) - 1e-3


def test_certified_proves_strongly_interfering_two_ru_states_optimal():
    """The 2-RU cell (RUs 300 m apart on the same 2 PRBs) under rate: the interference-free bound left
    gaps of 23-50 % on states the answer solved exactly; the joint relaxation's bound closes them.
    (On other states the gap may stay open.)"""
    scn = load_scenario(Path(__file__).resolve().parents[1] / "scenarios/esa_small_2ru.yaml")
    for obs in sample_states(scn, 3, seed=1, warmup_tti=200):
        prob = SnapshotProblem(obs, objective="rate")
        exact = prob.evaluate(ExactOptimum(objective="rate", interference="joint").decide(obs))
        cert = ExactOptimum(objective="rate", interference="certified").decide(obs)
        check_allocation(cert, obs)
        ev = prob.evaluate(cert)
        assert cert.info["gap"] <= 1e-4 and cert.info["shortfall_gap_bps"] <= prob.violation_tol
        assert ev.violation_bps == pytest.approx(exact.violation_bps, abs=1.0)
        assert ev.objective_bps == pytest.approx(exact.objective_bps, rel=1e-6)
        assert cert.info["upper_bound_bps"] >= exact.objective_bps * (1 - 1e-9)


def test_local_search_scores_a_prb_change_as_the_full_evaluation_does():
    """The local search rescoring only the changed PRB gives every candidate the shortfall and objective
    of a full evaluation (policies.esa.score_batch), and its result is feasible and never worse."""
    from policies.esa import score_batch
    from policies.local_search import _score_prb_changes, local_search
    from simcore.snapshot import allocation_from_choices

    obs = base_observation(1, 2)
    for objective in OBJECTIVES:
        prob = SnapshotProblem(obs, objective=objective)
        owner = np.array([[0, 1], [3, 4]])  # UEs 0-2 are RU 0's, 3-5 RU 1's
        level = np.array([[1, 1], [0, 1]])  # within both budgets (levels 0.5, 1, 2 x P / K)
        cand_u = np.r_[-1, np.repeat([0, 1, 2], 3)]
        cand_l = np.r_[0, np.tile([0, 1, 2], 3)]
        for r, k in ((0, 0), (1, 1)):
            cu = cand_u + (3 if r else 0) * (cand_u >= 0)
            own_b, lvl_b = np.repeat(owner[None], cu.size, 0), np.repeat(level[None], cu.size, 0)
            own_b[:, r, k], lvl_b[:, r, k] = cu, cand_l
            ok, viol, obj = score_batch(prob, own_b, lvl_b)
            ok2, viol2, obj2 = _score_prb_changes(prob, owner, level, r, k, cu, cand_l)[:3]
            assert (ok2 == ok).all()
            np.testing.assert_allclose(viol2, viol, rtol=1e-9, atol=1e-6)
            np.testing.assert_allclose(obj2, obj, rtol=1e-9, atol=1e-6)
        start = allocation_from_choices(obs, owner, level, prob.levels_w)
        alloc, ev = local_search(prob, start)
        check_allocation(alloc, obs)
        assert not prob.is_better(prob.evaluate(start), ev)
        assert ev.objective_bps == prob.evaluate(alloc).objective_bps


def _tiers_1_2(prob, owner, level):
    """(V, F) of allocations given as owners and levels (B, R, K), and whether each keeps the budgets."""
    from policies.esa import score_batch

    ok, viol, obj = score_batch(prob, owner, level)
    return ok, np.where(ok, viol, np.inf), np.where(ok, obj, -np.inf)


@pytest.mark.parametrize("objective", OBJECTIVES)
def test_swap_move_applies_the_best_exchange_of_two_prbs(objective):
    """_swap_move's one step, scored PRB by PRB, applies the pair of PRBs exchanging owners, states or
    levels that a full evaluation of every such exchange (policies.esa.score_batch) ranks first on tiers
    1-2, and only when it beats the current allocation."""
    from policies.local_search import _swap_move

    obs = observe(seed=3, ues=2, prbs=4, n_rus=2, duration_s=0.02)
    prob = SnapshotProblem(obs, objective=objective)
    rng = np.random.default_rng(7)
    moved_any = False
    for trial in range(6):
        owner = np.full((2, 4), -1)
        level = rng.integers(0, 2, size=(2, 4))  # levels 0.5 and 1 x P / K: within every budget
        for r in range(2):
            mine = np.flatnonzero(obs.serving_ru == r)
            owner[r] = rng.choice(np.r_[mine, -1], size=4)
        r = trial % 2
        cand_o, cand_l = [owner], [level]
        for k1 in range(4):
            for k2 in range(k1 + 1, 4):
                for kind in range(3):
                    o, lv = owner.copy(), level.copy()
                    if kind in (0, 1):
                        o[r, [k1, k2]] = o[r, [k2, k1]]
                    if kind in (1, 2):
                        lv[r, [k1, k2]] = lv[r, [k2, k1]]
                    cand_o.append(o)
                    cand_l.append(lv)
        ok, viol, obj = _tiers_1_2(prob, np.array(cand_o), np.array(cand_l))
        keep = prob.tied_best(viol, obj)
        o, lv = owner.copy(), level.copy()
        moved = _swap_move(prob, o, lv, r, max_moves=1)
        assert moved == (not keep[0])
        _, v_new, f_new = _tiers_1_2(prob, o[None], lv[None])
        best = int(np.argmax(np.where(keep, obj, -np.inf)))
        assert v_new[0] == pytest.approx(viol[best], abs=prob.violation_tol)
        assert f_new[0] == pytest.approx(obj[best], rel=1e-9, abs=1e-3)
        moved_any |= moved
    assert moved_any  # the trials exercise an applied exchange


@pytest.mark.parametrize("objective", OBJECTIVES)
def test_best_response_is_the_best_allocation_of_one_ru_with_the_other_fixed(objective):
    """best_response re-solves RU r exactly with the other RU fixed: its shortfall and objective are those
    of the best of every allocation of RU r (enumerated and scored in full, RU r transmitting somewhere,
    UEs of the other RU left there), to the candidate MIP gap."""
    from policies.certified import best_response
    from simcore.snapshot import allocation_from_choices

    obs = base_observation(0, 2)  # 6 UEs, 2 PRBs
    prob = SnapshotProblem(obs, objective=objective)
    opt = ExactOptimum(objective=objective)
    owner = np.array([[0, -1], [3, 4]]) if obs.serving_ru[3] == 1 else np.array([[0, -1], [1, 2]])
    level = np.array([[1, 0], [0, 1]])
    start = allocation_from_choices(obs, owner, level, prob.levels_w)
    for r in range(2):
        others = set(owner[1 - r][owner[1 - r] >= 0])
        ues = [u for u in range(obs.n_ues) if u not in others]
        states = [(-1, 0)] + [(u, lv) for u in ues for lv in range(prob.n_levels)]
        cand_o, cand_l = [], []
        for s0 in states:
            for s1 in states:
                if s0[0] < 0 and s1[0] < 0:
                    continue  # RU r transmits somewhere (the best response keeps its fronthaul noise on)
                o, lv = owner.copy(), level.copy()
                o[r], lv[r] = [s0[0], s1[0]], [s0[1], s1[1]]
                cand_o.append(o)
                cand_l.append(lv)
        ok, viol, obj = _tiers_1_2(prob, np.array(cand_o), np.array(cand_l))
        keep = prob.tied_best(viol, obj)
        alloc = best_response(opt, prob, start, r)
        check_allocation(alloc, obs)
        ev = prob.evaluate(alloc)
        assert ev.violation_bps <= viol[keep].min() + prob.violation_tol
        assert ev.objective_bps >= obj[keep].max() * (1 - 1.01e-3) - 1e-3


def test_zero_slot_rows_count_the_ues_the_shortfall_budget_can_leave_without_a_slot():
    """zero_slot_groups: per distinct need t, at most n_t of the UEs needing >= t own no slot, n_t the most
    whose smallest needs fit in the budget; rows that cut nothing are left out."""
    obs = base_observation(0, 2)  # 6 UEs: eMBB, URLLC, mMTC on each RU
    obs = dataclasses.replace(obs, min_rate_bps=np.array([1e6, 1e5, 1e4])[obs.slice_id])
    relax = JointRelaxation(SnapshotProblem(obs, objective="rate"), 1e3)
    member, count = relax.zero_slot_groups(25.0)  # kbit/s: two 10 kb/s needs fit, no 100 kb/s one
    assert count.tolist() == [2.0, 0.0, 0.0]
    assert member.sum(axis=1).tolist() == [6, 4, 2]  # needs >= 10, >= 100, >= 1000 kb/s
    assert (member[2] == (obs.slice_id == 0)).all()
    member, count = relax.zero_slot_groups(3000.0)  # every UE may go without: nothing to cut
    assert count.size == 0 and member.shape == (0, obs.n_ues)


@settings(max_examples=8, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(inst=multi_ru_instances(max_ues=4), seed=st.integers(0, 2**32 - 1))
def test_zero_slot_rows_keep_the_objective_bound_above_the_exact_optimum(inst, seed):
    """With the zero-slot rows the objective bound at the optimum's shortfall still holds the exact
    optimum, under rate where every UE needs: the column-generated bound, and the Lagrangian at the
    master's multipliers with the zero-slot ones perturbed at random (weak duality, near the LP's value
    where a wrong term would show)."""
    obs, levels = inst
    prob = SnapshotProblem(obs, levels, objective="rate")
    best = ExactOptimum(level_factors=levels, objective="rate", interference="joint").decide(obs)
    exact = prob.evaluate(best)
    relax = JointRelaxation(prob, 1e3)
    relax.add_allocation(best)  # the restricted master can meet every row from the start
    f_ub = relax.objective_upper_bound(exact.violation_bps + prob.violation_tol, 5.0)
    assert f_ub >= exact.objective_bps * (1 - 1e-9) - 1e-3
    v_max = (exact.violation_bps + prob.violation_tol) / 1e3
    f_star = exact.objective_bps / 1e3
    tol = 1e-6 * max(1.0, f_star)
    _, multipliers = relax._master(v_max)
    *rest, lam, kappa, states = multipliers
    rng = np.random.default_rng(seed)
    for scale in (0.0, 1e-3, 0.1, 1.0, 10.0):
        lam_p = lam * rng.uniform(0.0, 2.0, lam.size) + rng.exponential(scale, lam.size)
        kappa_p = kappa * rng.uniform(0.0, 2.0, kappa.size) + rng.exponential(scale, kappa.size)
        assert relax.lagrangian(v_max, *rest, lam_p, kappa_p, states)[0] >= f_star - tol


def _node_of(relax, alloc, rng):
    """A branch-and-price node (``policies.joint_branch``) that keeps ``alloc``: a few of its decisions, drawn
    at random among the four kinds of branching (owner, another UE banned, transmit/silent, one RU per UE)."""
    from policies.joint_branch import Node

    obs = relax.obs
    pos = np.full(obs.n_ues, -1)
    pos[relax.useful] = np.arange(relax.useful.size)
    node = Node(np.zeros((obs.n_rus, relax.useful.size, obs.n_prbs), dtype=bool),
                np.zeros((obs.n_rus, obs.n_prbs), dtype=bool), np.zeros((obs.n_rus, obs.n_prbs), dtype=bool))
    for _ in range(3):
        r, k = int(rng.integers(obs.n_rus)), int(rng.integers(obs.n_prbs))
        u = int(alloc.prb_owner[r, k])
        kind = int(rng.integers(4))
        if u < 0 or pos[u] < 0:
            if u < 0:
                node = node.child(r, -1, k, owns=False)
            continue
        others = [i for i in range(relax.useful.size) if i != pos[u]]
        if kind == 0:
            node = node.child(r, int(pos[u]), k, owns=True)
        elif kind == 1 and others:
            node = node.child(r, int(rng.choice(others)), k, owns=False)
        elif kind == 2:
            node = node.child(r, -1, k, owns=True)
        else:
            node = node.child(r, int(pos[u]), -1, owns=True)
    return node


@settings(max_examples=8, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(inst=multi_ru_instances(max_ues=4), objective=st.sampled_from(OBJECTIVES), seed=st.integers(0, 2**32 - 1))
def test_branch_and_price_bounds_hold_the_exact_optimum(inst, objective, seed):
    """Branch-and-price (policies.joint_branch): a node's Lagrangian bound, for random multipliers, holds every
    allocation the node keeps (here the exact optimum); the bounds after a node budget hold the exact optimum
    and are never looser than the root's."""
    obs, levels = inst
    prob = SnapshotProblem(obs, levels, objective=objective)
    best = ExactOptimum(level_factors=levels, objective=objective, interference="joint").decide(obs)
    exact = prob.evaluate(best)
    relax = JointRelaxation(prob, 1e3)
    unit, v_star, f_star = 1e3, exact.violation_bps, exact.objective_bps
    v_max = (v_star + prob.violation_tol) / unit
    tol = 1e-6 * max(1.0, f_star / unit)
    rng = np.random.default_rng(seed)
    for scale in (0.0, 1e-3, 1.0, 10.0):
        node = _node_of(relax, best, rng)
        multipliers = _random_multipliers(rng, obs, relax, scale)
        assert relax.lagrangian(None, *multipliers, node=node)[0] <= v_star / unit + tol
        assert relax.lagrangian(v_max, *multipliers, node=node)[0] >= f_star / unit - tol
    relax.add_allocation(ExactOptimum(level_factors=levels, objective=objective, interference="worst_case").decide(obs))
    v_root = relax.shortfall_lower_bound(5.0, nodes=0)
    f_root = relax.objective_upper_bound(v_star + prob.violation_tol, 5.0, nodes=0)
    v_lb = relax.shortfall_lower_bound(5.0, nodes=12)
    f_ub = relax.objective_upper_bound(v_star + prob.violation_tol, 5.0, nodes=12)
    assert v_root - 1e-3 <= v_lb <= v_star + prob.violation_tol + 1e-3
    assert f_star * (1 - 1e-9) - 1e-3 <= f_ub <= f_root * (1 + 1e-9) + 1e-3


def test_shortfall_chains_score_changes_exactly_and_serve_waiting_ues():
    """The chains' scorer (only the PRBs that differ recomputed) gives policies.esa.score_batch's budgets,
    shortfall and objective on candidates changing a few PRBs of a 3-RU state; from starts where each RU
    leaves a UE without a PRB while another holds two, shortfall_chains returns a feasible allocation never
    worse than its start, and lowers the shortfall on some of them."""
    from policies.esa import score_batch
    from policies.local_search import _ChangeScorer, shortfall_chains
    from simcore.snapshot import allocation_from_choices

    obs = observe(seed=2, ues=2, prbs=6, n_rus=3, duration_s=0.02)
    obs = dataclasses.replace(obs, buffer_bits=np.full(obs.n_ues, 1e6),
                              min_rate_bps=np.array([2e6, 5e5, 1e5])[obs.slice_id])
    rng = np.random.default_rng(0)
    lowered = 0
    for objective in OBJECTIVES:
        prob = SnapshotProblem(obs, objective=objective)
        for _ in range(3):
            owner = np.zeros((3, 6), dtype=np.int64)
            level = rng.integers(0, 2, size=(3, 6))  # levels 0.5 and 1 x P / K: within every budget
            for r in range(3):
                fill = list(rng.permutation(np.flatnonzero(obs.serving_ru == r))[1:6])  # the first one waits
                owner[r] = (fill + [fill[0]] * 6)[:6]  # the second takes the PRBs left over
            own_b, lvl_b = np.repeat(owner[None], 30, 0), np.repeat(level[None], 30, 0)
            for b in range(1, 30):
                for _ in range(rng.integers(1, 4)):
                    r, k = rng.integers(0, 3), rng.integers(0, 6)
                    own_b[b, r, k] = rng.choice(np.flatnonzero(obs.serving_ru == r))
                    lvl_b[b, r, k] = rng.integers(0, 3)
            ok, viol, obj = score_batch(prob, own_b, lvl_b)
            ok2, viol2, obj2 = _ChangeScorer(prob, owner, level)(prob, own_b, lvl_b)
            assert (ok2 == ok).all()
            np.testing.assert_allclose(viol2, viol, rtol=1e-9, atol=1e-6)
            np.testing.assert_allclose(obj2, obj, rtol=1e-9, atol=1e-6)
            start = allocation_from_choices(obs, owner, level, prob.levels_w)
            alloc, ev = shortfall_chains(prob, start)
            check_allocation(alloc, obs)
            before = prob.evaluate(start)
            assert not prob.is_better(before, ev)
            lowered += ev.violation_bps < before.violation_bps - prob.violation_tol
    assert lowered  # the starts exercise applied chains


def test_local_search_shortcuts_pick_what_the_full_computation_picks():
    """The local search's two shortcuts change no choice: the current rates passed in give the same scores as
    recomputed, and ``_best_index`` (power steps and tie costs of the candidates tied on tiers 1-2 only) returns
    ``best_index`` over every candidate's four tiers, budgets broken or not."""
    from policies.esa import score_batch
    from policies.local_search import _best_index, _score_prb_changes
    from simcore.snapshot import allocation_from_choices

    rng = np.random.default_rng(3)
    obs = base_observation(1, 2)
    for objective in OBJECTIVES:
        prob = SnapshotProblem(obs, objective=objective)
        owner = np.array([[0, 1], [3, 4]])
        level = np.array([[1, 1], [0, 1]])
        rates = prob.rates(allocation_from_choices(obs, owner, level, prob.levels_w))
        cand_u = np.r_[-1, np.repeat([3, 4, 5], 3)]
        cand_l = np.r_[0, np.tile([0, 1, 2], 3)]
        fresh = _score_prb_changes(prob, owner, level, 1, 0, cand_u, cand_l)
        given_rates = _score_prb_changes(prob, owner, level, 1, 0, cand_u, cand_l, rates)
        for a, b in zip(fresh, given_rates):
            np.testing.assert_array_equal(a, b)
        for _ in range(20):  # random batches with ties on tiers 1-2 and broken budgets
            own_b = rng.integers(-1, 6, size=(12, 2, 2))
            lvl_b = rng.integers(0, 3, size=(12, 2, 2))
            own_b[:, 0][own_b[:, 0] >= 3] = -1  # UEs 0-2 on RU 0, 3-5 on RU 1
            own_b[:, 1][(own_b[:, 1] >= 0) & (own_b[:, 1] < 3)] = -1
            own_b[6:] = own_b[:6]  # the same owners at other levels: ties on tiers 1-2 where levels do not matter
            ok, viol, obj = score_batch(prob, own_b, lvl_b)
            viol, obj = np.where(ok, viol, np.inf), np.where(ok, obj, -np.inf)
            steps, cost = prob.tiers_3_4(own_b, lvl_b)
            full = prob.best_index(viol, obj, np.where(ok, steps, np.iinfo(np.int64).max), cost)
            assert _best_index(prob, own_b, lvl_b, viol, obj, ok) == full


def test_joint_pricing_takes_the_best_column_with_distinct_owners():
    """The joint relaxation's pricing (``JointRelaxation._price``) against enumeration on a 3-RU state: per PRB
    and power vector, the best sum of the transmitting RUs' owner terms over owners that are all different (a
    UE is on one RU, so never owns two RUs' slots of one PRB), and the owners it returns reach that value."""
    import itertools

    obs = base_observation(0, 3)  # 9 UEs, 2 PRBs
    obs = dataclasses.replace(obs, min_rate_bps=np.array([2e6, 5e5, 1e5])[obs.slice_id])
    prob = SnapshotProblem(obs, (0.5, 1.0, 2.0), objective="rate")
    relax = JointRelaxation(prob, 1e3)
    assert relax.useful.size == obs.n_ues
    rng = np.random.default_rng(3)
    w = obs.ue_weight.astype(float)
    pi, mu = rng.exponential(1.0, obs.n_ues), rng.exponential(1e3, obs.n_rus)
    pi[obs.slice_id == 0] *= 20.0  # a few UEs worth far more than the rest: the RUs' best owners collide
    nu = np.zeros((obs.n_rus, obs.slice_power_cap_w.size))
    h, owner = relax._price(w, pi, None, mu, nu)
    # each UE's term on each slot (R, U, K, L, M): its weighted rate, its clipped rate's multiplier, less the power's
    val = w[None, :, None, None, None] * relax.rate + pi[None, :, None, None, None] * np.minimum(
        relax.rate, relax.need[None, :, None, None, None])
    val -= (mu[:, None] * prob.levels_w)[:, None, None, :, None]
    collided = 0
    for k in range(obs.n_prbs):
        for n, vec in enumerate(relax.vectors):
            on = np.flatnonzero(vec > 0)
            best, first = -np.inf, None
            for owners in itertools.product(range(obs.n_ues), repeat=on.size):
                if len(set(owners)) == on.size:
                    best = max(best, sum(val[r, u, k, vec[r] - 1, relax.others[n, r]] for r, u in zip(on, owners)))
            independent = sum(val[r, :, k, vec[r] - 1, relax.others[n, r]].max() for r in on)
            collided += independent > best + 1e-9
            assert h[k, n] == pytest.approx(best if on.size else 0.0, rel=1e-12, abs=1e-9)
            got = owner[on, k, n]
            assert len(set(got.tolist())) == on.size and (owner[vec == 0, k, n] == -1).all()
            reached = sum(val[r, u, k, vec[r] - 1, relax.others[n, r]] for r, u in zip(on, got))
            assert reached == pytest.approx(h[k, n], rel=1e-12, abs=1e-9)
    assert collided  # the state makes the distinct owners matter



def test_priced_top_keeps_the_largest_values_largest_first_ties_to_the_lower_ue():
    """The pricing's per-RU best owners (``joint_bound._priced_top``, the priced value here the table itself) against a
    stable sort, on values with many ties and banned entries (a branch-and-price node's: -inf)."""
    from policies.joint_bound import _priced_top

    rng = np.random.default_rng(5)
    table = rng.integers(0, 4, size=(3, 7, 40, 1, 1)).astype(float)  # 4 distinct values over 7 UEs: ties everywhere
    ban = rng.random((3, 7, 40)) < 0.2
    ban[:, :, 0] = True  # an entry with every UE banned
    coef = np.zeros((5, 7))
    coef[0] = 1.0  # the value is 1 x the need-clipped table, less a zero power price
    use = np.array([False] * 5 + [True])
    top = np.empty((3, 3, 40, 1, 1), dtype=np.int64)
    top_val = np.empty(top.shape)
    _priced_top(table, table, table, np.zeros(table.shape, dtype=np.int8), coef, np.zeros(7), np.zeros((7, 1)),
                np.zeros((3, 7)), np.zeros((3, 1)), ban, use, top, top_val)
    val = np.where(ban[:, :, :, None, None], -np.inf, table)
    order = np.argsort(-val, axis=1, kind="stable")[:, :3]  # largest first, ties to the lower index
    expected = np.take_along_axis(val, order, axis=1)
    assert (top_val == expected).all()
    finite = np.isfinite(expected)
    assert (top[finite] == order[finite]).all()
    assert (np.take_along_axis(val, top, axis=1) == top_val).all()  # every index holds its value


def _states_of(relax, alloc, prob):
    """Each UE's one-slot state (policies.joint_states) in ``alloc``: (n_s,) index 0..J for O_1..O_{J+1}, J + 1
    for M, J + 2 for Z; and the allocation's slots of each UE of class <= i, (J, n_s)."""
    obs, st_ = relax.obs, relax.states
    pos = np.full(obs.n_ues, -1)
    pos[relax.useful] = np.arange(relax.useful.size)
    level = prob.levels_of(alloc)
    shape = (prob.n_levels + 1,) * obs.n_rus
    classes = {int(u): [] for u in st_.ues}
    for k in range(obs.n_prbs):
        vec = int(np.ravel_multi_index(level[:, k] + 1, shape))
        for r in range(obs.n_rus):
            u = int(alloc.prb_owner[r, k])
            if u in classes:
                classes[u].append(int(st_.cls[r, pos[u], k, level[r, k], relax.others[vec, r]]))
    state = np.array([st_.n_j + 2 if not c else (c[0] - 1 if len(c) == 1 else st_.n_j + 1)
                      for c in (classes[int(u)] for u in st_.ues)], dtype=np.int64)
    below = np.array([[sum(c <= i for c in classes[int(u)]) for u in st_.ues] for i in range(1, st_.n_j + 1)],
                     dtype=np.int64)
    return state, below.reshape(st_.n_j, st_.n_s)


@settings(max_examples=10, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(inst=multi_ru_instances(max_ues=4), objective=st.sampled_from(OBJECTIVES), seed=st.integers(0, 2**32 - 1))
def test_one_slot_state_rows_hold_the_exact_optimum(inst, objective, seed):
    """The one-slot state rows (policies.joint_states): at the exact optimum each UE's state satisfies rows
    (a)-(d) with its true shortfall; the Lagrangian with random state multipliers (and the master's, perturbed)
    holds the exact optimum on both tiers (weak duality); the column-generated bounds too."""
    obs, levels = inst
    prob = SnapshotProblem(obs, levels, objective=objective)
    best = ExactOptimum(level_factors=levels, objective=objective, interference="joint").decide(obs)
    exact = prob.evaluate(best)
    relax = JointRelaxation(prob, 1e3)
    st_ = relax.states
    assert st_ is not None
    state, below = _states_of(relax, best, prob)
    short = np.maximum(prob.need_bps - prob.rates(best), 0.0)[st_.ues] / 1e3  # each UE's true shortfall, kbit/s
    one = state <= st_.n_j
    assert (below[np.minimum(state, st_.n_j - 1), np.arange(st_.n_s)][one & (state < st_.n_j)] >= 1).all()  # (b_i)
    implied = np.where(one, st_.cost[np.arange(st_.n_s), np.minimum(state, st_.n_j)], 0.0)
    implied = np.where(state == st_.n_j + 2, st_.need, implied)  # (d): the shortfall each state implies
    assert implied.sum() <= exact.violation_bps / 1e3 + 1e-6 * max(1.0, exact.violation_bps / 1e3)
    assert (implied <= short + 1e-6).all()
    unit, v_star, f_star = 1e3, exact.violation_bps, exact.objective_bps
    v_max = (v_star + prob.violation_tol) / unit
    tol = 1e-6 * max(1.0, f_star / unit)
    rng = np.random.default_rng(seed)
    for scale in (0.0, 1e-3, 1.0, 10.0):
        multipliers = _random_multipliers(rng, obs, relax, scale)
        states = (rng.exponential(scale, st_.n_s) * 10, rng.exponential(scale, (st_.n_j, st_.n_s)),
                  rng.exponential(scale, st_.n_s), rng.exponential(scale, st_.n_s))
        assert relax.lagrangian(None, *multipliers, states=states)[0] <= v_star / unit + tol
        assert relax.lagrangian(v_max, *multipliers, states=states)[0] >= f_star / unit - tol
    relax.add_allocation(best)
    for v in (None, v_max):
        _, multipliers = relax._master(v)
        *rest, (alpha, beta, gamma, delta) = multipliers
        for scale in (0.0, 0.1, 10.0):
            states = tuple(m * rng.uniform(0.0, 2.0, m.shape) + rng.exponential(scale, m.shape)
                           for m in (alpha, beta, gamma, delta))
            bound = relax.lagrangian(v, *rest, states)[0]
            assert bound <= v_star / unit + tol if v is None else bound >= f_star / unit - tol
    assert relax.shortfall_lower_bound(5.0) <= v_star + prob.violation_tol + 1e-3
    assert relax.objective_upper_bound(v_star + prob.violation_tol, 5.0) >= f_star * (1 - 1e-9) - 1e-3


def test_one_slot_state_rows_lift_the_shortfall_bound_to_the_optimum(monkeypatch):
    """Two RUs on two PRBs, every UE hearing both about equally, two eMBB UEs needing 600 kb/s and two mMTC
    UEs 10 kb/s: the LP meets the eMBB needs with a little over one PRB each of rates below the need; the
    state rows (one PRB short, or two PRBs and an mMTC UE without one) lift the least shortfall to the optimum's."""
    import policies.joint_bound as jb

    base = base_observation(0, 2)
    rng = np.random.default_rng(0)
    g = base.gain * rng.lognormal(0.0, 1.0, base.gain.shape)
    g = g.max(axis=1, keepdims=True) * rng.uniform(0.3, 1.0, g.shape)
    obs = dataclasses.replace(base, gain=g, min_rate_bps=np.array([6e5, 1e4, 1e4])[base.slice_id])
    obs = subset(obs, np.flatnonzero(base.slice_id != 1))
    levels = (0.5, 1.0, 2.0)
    prob = SnapshotProblem(obs, levels, objective="rate")
    v_star = prob.evaluate(ExactOptimum(level_factors=levels, objective="rate", interference="joint").decide(obs)).violation_bps
    start = ExactOptimum(level_factors=levels, objective="rate", interference="worst_case").decide(obs)
    bounds = []
    for rows in (False, True):
        monkeypatch.setattr(jb, "STATE_ROWS", rows)
        relax = JointRelaxation(prob, 1e3)
        relax.add_allocation(start)
        bounds.append(relax.shortfall_lower_bound(5.0))
    assert bounds[0] < 0.95 * v_star  # without the rows: 18.5 of 20 kb/s
    assert bounds[1] == pytest.approx(v_star, rel=1e-4)  # with them: the optimum, proved


def test_restricted_one_pass_milp_keeps_the_start_silence_and_the_top_choices(monkeypatch):
    """``certified.restricted`` keeps, per PRB, every silent choice, the PRB_CHOICES of largest weighted rate,
    each UE's choices on its UE_PRBS best PRBs and the start; with limits above the sizes it keeps everything.
    A best response restricted that hard, its start given to HiGHS as the first incumbent, is feasible and
    never worse than its start on tiers 1-2."""
    import policies.certified as certified
    from simcore.snapshot import allocation_from_choices

    obs = observe(seed=2, ues=2, prbs=6, n_rus=3, duration_s=0.02)
    obs = dataclasses.replace(obs, buffer_bits=np.full(obs.n_ues, 1e6),
                              min_rate_bps=np.array([2e6, 5e5, 1e5])[obs.slice_id])
    prob = SnapshotProblem(obs, objective="rate")
    opt = ExactOptimum(objective="rate")
    mine = [np.flatnonzero(obs.serving_ru == r) for r in range(3)]
    owner = np.array([m[np.arange(6) % m.size] for m in mine])  # every UE of each RU served
    level = np.zeros((3, 6), dtype=np.int64)  # the cheapest level: never left out as dominated
    start = allocation_from_choices(obs, owner, level, prob.levels_w)
    captured = []
    real = certified.restricted
    monkeypatch.setattr(certified, "restricted", lambda p, ch, s=None: captured.append((ch, s)) or real(p, ch, s))
    monkeypatch.setattr(certified, "PRB_CHOICES", 3)
    monkeypatch.setattr(certified, "UE_PRBS", 1)
    for r in range(3):
        alloc = certified.best_response(opt, prob, start, r)
        check_allocation(alloc, obs)
        before, after = prob.evaluate(start), prob.evaluate(alloc)
        assert after.violation_bps <= before.violation_bps + prob.violation_tol
        if after.violation_bps >= before.violation_bps - prob.violation_tol:
            assert after.objective_bps >= before.objective_bps - prob.objective_tol(before.objective_bps)
    ch, x0 = captured[0]
    assert x0 is not None and x0.sum() == obs.n_prbs  # the start is one choice per PRB of this MILP
    out, x1 = real(prob, ch, x0)
    kept = np.isin(np.arange(ch.group.size), np.flatnonzero(x0))
    assert x1.sum() == obs.n_prbs and out.group[x1].tolist() == ch.group[x0].tolist()
    own_u = np.full(ch.group.size, -1)
    own_u[ch.slot_x] = ch.slot_u
    value = np.asarray(ch.rate.T @ obs.ue_weight).ravel()
    want = (own_u < 0) | kept
    for g in np.unique(ch.group):
        idx = np.flatnonzero(ch.group == g)
        want[idx[np.argsort(-value[idx], kind="stable")[:3]]] = True
    for u in np.unique(own_u[own_u >= 0]):  # each UE's best PRB (its best rate over levels)
        idx = np.flatnonzero(own_u == u)
        rate = np.asarray(ch.rate[u, idx]).ravel()
        want[idx[ch.group[idx] == ch.group[idx][np.argmax(rate)]]] = True
    assert out.group.size == want.sum() < ch.group.size
    monkeypatch.setattr(certified, "PRB_CHOICES", 10**6)
    monkeypatch.setattr(certified, "UE_PRBS", 10**6)
    assert real(prob, ch, x0)[0] is ch


def test_gap_target_stops_the_starts_once_the_certified_gap_is_within_it(monkeypatch):
    """``gap_target``: once the gap is proven within it, no power-pattern start runs (a count, so the answer does not
    depend on the machine's load); with target 0 they run, and the answer is never worse in the problem's order."""
    import policies.certified as certified

    with pytest.raises(ValueError, match="gap_target must be in"):
        ExactOptimum(gap_target=1.0)
    scn = load_scenario(Path(__file__).resolve().parents[1] / "scenarios/esa_small_2ru.yaml")
    obs = sample_states(scn, 1, seed=1, warmup_tti=200)[0]
    prob = SnapshotProblem(obs, objective="rate")
    calls = []
    real = certified.pattern_start
    monkeypatch.setattr(certified, "pattern_start", lambda *a: calls.append(1) or real(*a))
    answers = {}
    for target in (0.0, 0.99):
        calls.clear()
        a = ExactOptimum(objective="rate", interference="certified", gap_target=target).decide(obs)
        check_allocation(a, obs)
        assert a.info["gap"] >= 0.0 and (target == 0.0 or a.info["gap"] <= target)
        answers[target] = (prob.evaluate(a), len(calls))
    assert answers[0.0][1] >= 1 and answers[0.99][1] == 0
    assert not prob.is_better(answers[0.99][0], answers[0.0][0])


def test_association_start_moves_ues_to_other_rus_and_never_worsens_the_answer(monkeypatch):
    """pattern_start with ``ue_ru`` serves UEs from the RUs given (every UE moved: each owned PRB is a changed
    association), feasible; certified with that start added is never worse in the problem's order than without."""
    import policies.certified as certified

    scn = load_scenario(Path(__file__).resolve().parents[1] / "scenarios/esa_small_2ru.yaml")
    obs = sample_states(scn, 1, seed=1, warmup_tti=200)[0]
    prob = SnapshotProblem(obs, objective="rate")
    opt = ExactOptimum(objective="rate", interference="certified", gap_target=0.0)
    pattern = np.full((obs.n_rus, obs.n_prbs), prob.n_levels)  # every PRB at most at the top level
    moved = (obs.serving_ru + 1) % obs.n_rus
    start = certified.pattern_start(opt, prob, pattern, moved)
    check_allocation(start, obs)
    rr, kk = np.nonzero(start.prb_owner >= 0)
    assert rr.size and (start.ue_ru[start.prb_owner[rr, kk]] != obs.serving_ru[start.prb_owner[rr, kk]]).all()
    answers = []
    for association in (lambda self: None, lambda self: moved):
        monkeypatch.setattr(JointRelaxation, "shortfall_association", association)
        a = opt.decide(obs)
        check_allocation(a, obs)
        assert a.info["gap"] >= 0.0
        answers.append(prob.evaluate(a))
    assert not prob.is_better(answers[0], answers[1])
