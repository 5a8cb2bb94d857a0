"""``optimal``'s certified mode for several RUs: the best allocation found, an upper bound, the gap.

Where the joint formulation (``policies.interference``) is too large to solve exactly, ``optimal``
(``interference="certified"``, or ``auto`` above ``max_joint_choices``) returns a feasible allocation
together with a certificate of how far from the optimum it can be.

**The allocation** is the best, in the problem's order (least shortfall, then largest objective, then
least power, then the tie cost), of several starts, each improved (``improve``) by best responses and a
local search with the true SINR:

- the worst-case problem (the reference model's R-bar, ``optimal``'s ``worst_case`` mode), each RU's MILP
  solved to a looser gap, under ``rate`` in one pass with the shortfall weighted above the objective
  (``_tiers_1_2_at_once``), under ``served`` stopped after the objective phase;
- where the joint relaxation generated at most ``COLUMN_START_LIMIT`` columns, a MILP over those columns;
- each RU's MILP with the PRBs' powers held at most at a pattern read off the joint bound's LP
  (``pattern_start``: the interference of the pattern, so every true rate is at least the table's); once more
  with the least-shortfall LP's pattern and each UE on the RU that LP serves it from (the only start or move that
  changes a served UE's RU).

Once the joint bound is solved, the starts stop as soon as the gap is proven within ``ExactOptimum``'s
``gap_target`` (default 2 %; 0: every start runs), the bound at the best shortfall found so far standing for every
allocation with at most that shortfall (``target_met``).

The best of these then goes through ``shortfall_chains`` (``policies.local_search``; ``chained``): moves across
RUs aimed at the first tier, where a UE holding two PRBs keeps one, made enough by the other RUs quietening
it, and gives the other to a UE left without any.

A best response (``best_response``) re-solves one RU's allocation, every other RU's held fixed: RU r's
power on PRB k is interference to the other RUs' owners of PRB k only, so each of RU r's choices (PRB k
silent, or given to UE u at level l) carries the true rate of u and of those owners, and the single-RU
MILP over these choices (need rows of every UE) is exact for that sub-problem; under ``rate`` it is solved
in one pass with the shortfall weighted above the objective (and never above the current one), over each PRB's
and each UE's likeliest choices (``restricted``), the current allocation HiGHS's first incumbent, and taken
only where it comes first. RU after RU, round
after round, this reaches an allocation no one RU can improve alone; the local search
(``policies.local_search``: single PRBs, pairs of power changes, exchanges of two PRBs' owners or levels)
then makes the moves that touch several RUs' rates on one PRB.

**The bound** is the tighter of two: the joint problem's per-PRB relaxation (``policies.joint_bound``:
interference kept, PRBs mixed fractionally; Lagrangian bounds valid for any multipliers) and the
interference-free relaxation (every rate at least the true one; each UE may take PRBs of every RU;
integral) solved by HiGHS, whose dual bound is valid even when it stops early. Under ``rate`` the second
is solved only where the first could not be (its table too large): where both were solved on the 3-RU
cell the joint one was the tighter on both tiers on every state, and the second costs 1-2 CPU s. ``info["gap"]`` =
(bound - objective) / bound over every allocation whose shortfall is at most this one's;
``info["shortfall_gap_bps"]`` = its shortfall above the least possible; ``info["bounds_bps"]`` holds each
bound and ``info["best_start"]`` names the start the answer came from. Both bounds are certified
(never estimates): a step stopped by its limit only loosens them.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import highspy
from scipy.sparse import csr_matrix, vstack

from policies.interference import Choices, interference_free_choices, worst_case_interference_w
from policies.joint_bound import JointRelaxation
from policies.local_search import local_search, shortfall_chains
from policies.optimal import _UNIT_BPS, CANDIDATE_GAP, ExactOptimum, _allowed, _Mip
from simcore.contracts import Allocation
from simcore.snapshot import SnapshotProblem, allocation_from_choices

#: The joint relaxation's columns are searched for a start (a MILP) up to this many columns, within this many
#: branch-and-bound nodes per phase (a count, not a time: measured on the 2-RU cell, HiGHS ends these at the root).
COLUMN_START_LIMIT = 1000
COLUMN_START_NODES = 500
#: The joint relaxation's column generation stops after ``joint_bound.MAX_ROUNDS`` rounds (so that its bound
#: does not depend on the machine's load) or, as a safety net, this many times ``bound_time_limit_s`` CPU seconds.
JOINT_TIME_FACTOR = 5
#: Rounds of best responses (every RU's MILP with the others held fixed) in ``improve``, at most.
BEST_RESPONSE_ROUNDS = 2
#: A best response's single MILP (``_tiers_1_2_at_once``) counts 1 kbit/s of total shortfall as this many kbit/s of
#: (weighted) objective: the first tier dominates except where the objective moves by more than 1,000 times as much.
SHORTFALL_WEIGHT = 1e3
#: A one-pass MILP (a best response, a start's per-RU MILP) keeps on each PRB this many choices of largest weighted
#: rate, and for each UE its choices on this many of its best PRBs (``restricted``).
PRB_CHOICES = 30
UE_PRBS = 12
#: Rounds of starts from the joint bound's power patterns (each after an objective bound at the best shortfall).
PATTERN_ROUNDS = 1


class _Skipped(Exception):
    pass


def improve(opt: ExactOptimum, prob: SnapshotProblem, alloc: Allocation, failed: list, best_ev=None):
    """Best responses (``best_response``), then ``local_search`` where the result can still win: (allocation,
    evaluation), never worse than ``alloc`` (a best response weighs its two tiers and stops at the candidate MIP
    gap: it is taken only where it comes first). With ``best_ev`` (the best found so far) the search
    runs only if the result's shortfall is at most that one's: the search rarely moves the shortfall (measured on
    the 3-RU cell: it never did after best responses, and added 0.00-0.05 % of objective), so a start left with
    more shortfall cannot win. RU after RU, at most ``BEST_RESPONSE_ROUNDS`` rounds; an RU is solved again only when
    another RU's allocation changed since its last best response (with the others as they were, its answer
    would be the same one)."""
    n_ru = prob.obs.n_rus
    stale = np.full(n_ru, n_ru > 1)  # another RU changed since this RU's last best response
    for _ in range(BEST_RESPONSE_ROUNDS):
        for r in range(n_ru):
            if not stale[r]:
                continue
            if unbeatable(prob, prob.evaluate(alloc)):  # tiers 1-2 cannot improve: the search lowers power
                stale[:] = False
                break
            try:
                moved = best_response(opt, prob, alloc, r)
            except RuntimeError as exc:  # no solution within the MILP's time limit: keep the allocation
                failed.append(str(exc))
                moved = alloc
            stale[r] = False
            # taken only where it comes first (within its MIP gap it may also come back a little worse)
            if prob.is_better(prob.evaluate(moved), prob.evaluate(alloc)):
                alloc = moved
                stale[np.arange(n_ru) != r] = True
        if not stale.any():
            break
    ev = prob.evaluate(alloc)
    if best_ev is not None and ev.violation_bps > best_ev.violation_bps + prob.violation_tol:
        return alloc, ev
    return local_search(prob, alloc)


def chained(prob: SnapshotProblem, alloc: Allocation, ev, name: str):
    """``alloc`` after ``shortfall_chains`` (moves across RUs that serve a UE left without a PRB) and, where one
    was made, ``local_search`` again: (allocation, evaluation, name of its start, "+ chains" where they helped)."""
    if prob.obs.n_rus < 2:
        return alloc, ev, name
    moved, moved_ev = shortfall_chains(prob, alloc)
    if not prob.is_better(moved_ev, ev):
        return alloc, ev, name
    moved, moved_ev = local_search(prob, moved)
    return moved, moved_ev, name + " + chains"


def solve_certified(opt: ExactOptimum, prob: SnapshotProblem):
    """Best feasible allocation found, with an upper bound on the true optimum and the gap between them
    (the module docstring); ``opt`` gives the MILP's settings."""
    obs = prob.obs
    start, names, failed = [], [], []
    try:
        table = prob.single_ru_rate_table(worst_case_interference_w(prob)) / _UNIT_BPS
        start.append(opt._solve_per_ru(prob, table, True, _one_pass(opt, prob))[0])
        names.append("worst case")
    except RuntimeError as exc:  # the solver found nothing within its time limit
        failed.append(str(exc))
    if not start:  # the search then starts from every PRB idle
        idle = np.full((obs.n_rus, obs.n_prbs), -1)
        start.append(allocation_from_choices(obs, idle, np.zeros_like(idle), prob.levels_w))
        names.append("idle")
    best, best_ev, best_start = None, None, None
    for alloc, name in zip(start, names):
        alloc, ev = improve(opt, prob, alloc, failed)
        if best is None or prob.is_better(ev, best_ev):
            best, best_ev, best_start = alloc, ev, name
    best, best_ev, best_start = chained(prob, best, best_ev, best_start)
    relax = JointRelaxation(prob, _UNIT_BPS)
    bounds, columns = {}, 0
    if relax.fits and not unbeatable(prob, best_ev):
        for alloc in start + [best]:
            relax.add_allocation(alloc)
        bounds["shortfall_joint"] = relax.shortfall_lower_bound(JOINT_TIME_FACTOR * opt.bound_time_limit_s)
        try:  # a start among the relaxation's columns: the joint MILP restricted to them (small cells:
            # with thousands of columns HiGHS finds worse points than the starts within its limit)
            columns = len(relax.cols)
            if columns > COLUMN_START_LIMIT:
                raise _Skipped
            alloc = opt._solve(prob, relax.choices(), candidate=True, node_limit=COLUMN_START_NODES)[0]
        except _Skipped:
            pass
        except RuntimeError as exc:
            failed.append(str(exc))
        else:
            alloc, ev = local_search(prob, alloc)
            relax.add_allocation(alloc)
            if prob.is_better(ev, best_ev):
                best, best_ev, best_start = alloc, ev, "columns"
    v_lb, f_ub = 0.0, np.inf
    if relax.fits and not unbeatable(prob, best_ev):
        v_lb = bounds.get("shortfall_joint", 0.0)
        for round_ in range(PATTERN_ROUNDS + 1):  # the bound at the best shortfall, starts from its LP's power
            v_best = best_ev.violation_bps  # patterns, and the bound again where they lowered the shortfall
            f_ub = bounds["objective_joint"] = relax.objective_upper_bound(
                v_best + prob.violation_tol, JOINT_TIME_FACTOR * opt.bound_time_limit_s)
            if round_ == PATTERN_ROUNDS or target_met(opt, f_ub, best_ev):
                break
            patterns = [(pattern, None) for pattern in relax.power_patterns()]
            ue_ru = relax.shortfall_association()
            if ue_ru is not None:  # the least-shortfall LP's nearest power pattern with its UEs' RUs
                patterns.append((relax.shortfall_pattern(), ue_ru))
            for pattern, ue_ru in patterns:
                try:
                    alloc, ev = improve(opt, prob, pattern_start(opt, prob, pattern, ue_ru), failed, best_ev)
                except RuntimeError as exc:  # nothing found within the MILP's time limit
                    failed.append(str(exc))
                    continue
                relax.add_allocation(alloc)
                if prob.is_better(ev, best_ev):
                    best, best_ev, best_start = alloc, ev, "power pattern"
                if target_met(opt, f_ub, best_ev):  # f_ub holds every allocation with at most v_best of shortfall
                    break
            if best_start == "power pattern":
                best, best_ev, best_start = chained(prob, best, best_ev, best_start)
            if best_ev.violation_bps >= v_best - prob.violation_tol or target_met(opt, f_ub, best_ev):
                break  # same shortfall (the bound stands), or within the target already at the looser bound
    f = best_ev.objective_bps
    if unbeatable(prob, best_ev):
        v_lb, f_ub = 0.0, f  # nothing can do better on tiers 1 and 2: no bound to solve for
    else:
        if prob.objective == "served":  # no allocation counts more than every cap
            f_ub = min(f_ub, float(obs.ue_weight @ prob.cap_bps))
        proven = f_ub - f <= prob.objective_tol(f) and best_ev.violation_bps <= v_lb + prob.violation_tol
        # the interference-free relaxation keeps the integrality the joint one mixes away, but ignores the
        # interference: on the 3-RU cell it was the looser one on every state measured (docs/multi_ru.md), so
        # it is solved only where the joint relaxation does not fit or a served bound is not yet proven
        if not proven and (prob.objective == "served" or "objective_joint" not in bounds):
            try:
                v_free, f_free = interference_free_bound(opt, prob, best_ev.violation_bps)
            except RuntimeError as exc:  # no bound within its time limit: the joint one stands alone
                failed.append(str(exc))
            else:
                bounds.update(shortfall_interference_free=v_free, objective_interference_free=f_free)
                v_lb, f_ub = max(v_lb, v_free), min(f_ub, f_free)
    gap = (max(0.0, (f_ub - f) / f_ub) if f_ub > 0 else 0.0) if np.isfinite(f_ub) else 1.0
    # gap 0 at the least shortfall proves tiers 1 and 2 (shortfall, objective), not the power and tie tiers
    info = {"mode": "certified", "exact": False, "proven_optimal": False,
            "tiers_1_2_proven": gap == 0.0 and best_ev.violation_bps <= v_lb + prob.violation_tol,
            "gap": gap, "upper_bound_bps": f_ub, "shortfall_lower_bound_bps": v_lb,
            "shortfall_gap_bps": max(0.0, best_ev.violation_bps - v_lb), "status": "certified",
            "bounds_bps": {k: float(v) for k, v in bounds.items()}, "joint_relaxation_entries": relax.size,
            "joint_columns": columns, "best_start": best_start}
    if failed:
        info["failed_steps"] = failed
    return best, info


def pattern_start(opt: ExactOptimum, prob: SnapshotProblem, pattern: np.ndarray,
                  ue_ru: np.ndarray | None = None) -> Allocation:
    """Each RU's MILP with every PRB's power held at most at ``pattern`` (R, K) (0 silent, l + 1 level l)
    and the interference of that pattern: every rate at least the table's (less power only lowers
    the interference), so the allocation is feasible and no worse than its MILP says. Each UE on its serving
    RU, or on ``ue_ru`` (U,) when given: a start whose associations differ from the serving RUs'."""
    if ue_ru is not None:
        moved = SnapshotProblem(dataclasses.replace(prob.obs, serving_ru=np.asarray(ue_ru, dtype=np.int64)),
                                levels_w=prob.levels_w, objective=prob.objective)
        alloc = pattern_start(opt, moved, pattern)  # UEs without a PRB go back to their serving RU:
        return allocation_from_choices(prob.obs, alloc.prb_owner, prob.levels_of(alloc), prob.levels_w)
    obs = prob.obs
    levels = prob.levels_w[np.arange(obs.n_rus)[:, None], np.maximum(pattern - 1, 0)]
    power = np.where(pattern > 0, levels, 0.0)
    table = prob.single_ru_rate_table(obs.link.interference_w(obs.gain, obs.serving_ru, power))
    allowed = np.arange(prob.n_levels)[None, None, :] < pattern[obs.serving_ru][:, :, None]
    return opt._solve_per_ru(prob, np.where(allowed, table, 0.0) / _UNIT_BPS, True, _one_pass(opt, prob))[0]


def target_met(opt: ExactOptimum, f_ub: float, ev) -> bool:
    """The gap of ``ev`` (its objective) below the bound ``f_ub`` (bit/s, over every allocation with at most the
    shortfall it was solved at, which ``ev``'s is not above) is within ``opt.gap_target``: more starts would only
    narrow a gap already certified small enough."""
    return bool(opt.gap_target > 0 and np.isfinite(f_ub) and f_ub > 0
                and (f_ub - ev.objective_bps) / f_ub <= opt.gap_target)


def unbeatable(prob: SnapshotProblem, ev) -> bool:
    """Under served, an allocation meeting every need with every UE at its cap: nothing does better on tiers 1, 2."""
    f_max = float(prob.obs.ue_weight @ prob.cap_bps)
    return ev.violation_bps <= prob.violation_tol and ev.objective_bps >= f_max - prob.objective_tol(f_max)


def interference_free_bound(opt: ExactOptimum, prob: SnapshotProblem, violation_bps: float) -> tuple[float, float]:
    """Lower bound on the least shortfall, and upper bound on the objective of every allocation whose
    shortfall is at most ``violation_bps``: the interference-free relaxation's dual bounds (bit/s)."""
    m = _Mip(prob, interference_free_choices(prob, _UNIT_BPS, _allowed))
    if not m.n_x:  # nothing can carry anything: every need unmet, no objective
        return float(prob.need_bps.sum()), 0.0
    opts = {"time_limit": opt.bound_time_limit_s, "mip_rel_gap": 1e-4, "disp": False, "presolve": False}
    v_lb = max(0.0, m.bound(m.sum_s, opts)) * _UNIT_BPS if m.n_s else 0.0
    if m.n_s:
        m.rows.append((m.sum_s, -np.inf, (violation_bps + prob.violation_tol) / _UNIT_BPS))
    f_ub = -m.bound(-m.f_coef(prob.obs.ue_weight), opts) * _UNIT_BPS
    if prob.objective == "served":
        f_ub = min(f_ub, float(prob.obs.ue_weight @ prob.cap_bps))
    return v_lb, f_ub


def best_response(opt: ExactOptimum, prob: SnapshotProblem, alloc: Allocation, r: int) -> Allocation:
    """RU r's allocation re-solved with every other RU's held fixed: one MILP whose choices per PRB k are RU r
    silent on k, or k given to a UE u at a level l, each with the true rate of u and of the other RUs' owners
    of PRB k (RU r's power there is their interference). UEs on other RUs stay there; UEs without a PRB may
    join RU r. RU r keeps radiating its fronthaul noise (if it ends with no PRB, every rate is only higher
    than counted), so the answer's shortfall and objective are at most and at least the MILP's.

    Under ``rate`` the two tiers are solved at once (``_tiers_1_2_at_once``): total shortfall at most
    ``alloc``'s (one of the MILP's points), then ``SHORTFALL_WEIGHT`` x shortfall - objective least. One solve
    instead of the exact mode's two (measured on the 3-RU cell: a quarter of the CPU, the same gaps); the
    answer never has more shortfall than ``alloc``, and ``improve`` keeps the better of its start and end.
    Under ``served``, the two phases (``_one_pass`` says why)."""
    from policies.local_search import _prb_rates

    obs = prob.obs
    n_ue, n_prb, n_lvl = obs.n_ues, obs.n_prbs, prob.n_levels
    owner = alloc.prb_owner.copy()
    level = np.maximum(prob.levels_of(alloc), 0)
    rr = np.arange(obs.n_rus)
    power = np.where(owner >= 0, prob.levels_w[rr[:, None], level], 0.0)
    on = (owner >= 0).any(axis=1)
    on[r] = True
    assoc = np.full(n_ue, -1)
    owned = owner >= 0
    assoc[owner[owned]] = np.nonzero(owned)[0]
    useful = (prob.cap_bps > 0) | (prob.need_bps > 0)
    ues = np.flatnonzero(useful & ((assoc == r) | (assoc < 0)))
    cu = np.r_[-1, np.repeat(ues, n_lvl)]  # RU r's states on a PRB: silent, or (u, l)
    cl = np.r_[0, np.tile(np.arange(n_lvl), ues.size)]
    rows, cols, vals, group, s_x, s_u, s_k, s_l = [], [], [], [], [], [], [], []
    n_x = 0
    pos = np.full(n_ue, -1)
    pos[ues] = np.arange(ues.size)
    current = np.where(owner[r] >= 0, 1 + pos[np.maximum(owner[r], 0)] * n_lvl + level[r], 0)  # (K,) in cu
    current[(owner[r] >= 0) & (pos[np.maximum(owner[r], 0)] < 0)] = -1
    start = []  # the current allocation's choice on each PRB, where it is one of the kept choices
    for k in range(n_prb):
        own_k = np.repeat(owner[None, :, k], cu.size, axis=0)
        pow_k = np.repeat(power[None, :, k], cu.size, axis=0)
        own_k[:, r] = cu
        pow_k[:, r] = np.where(cu >= 0, prob.levels_w[r, cl], 0.0)
        rate = _prb_rates(prob, k, own_k, pow_k, on) / _UNIT_BPS  # (C, R)
        keep = (cu < 0) | (rate[:, r] > 0)  # a UE gaining nothing: RU r silent there is better for all
        keep[1:] &= _level_useful(rate[1:, r].reshape(-1, n_lvl), prob.levels_w[r]).ravel()
        c = np.flatnonzero(keep)
        ids = n_x + np.arange(c.size)
        at = np.flatnonzero(c == current[k])
        start.append(ids[at[0]] if at.size else -1)
        act = own_k[c] >= 0
        ci, ri = np.nonzero(act)
        rows.append(own_k[c][ci, ri])
        cols.append(ids[ci])
        vals.append(rate[c][ci, ri])
        group.append(np.full(c.size, k))
        given = cu[c] >= 0
        s_x.append(ids[given])
        s_u.append(cu[c][given])
        s_l.append(cl[c][given])
        s_k.append(np.full(given.sum(), k))
        n_x += c.size
    s_x, s_u, s_k, s_l = (np.concatenate(a).astype(np.int64) for a in (s_x, s_u, s_k, s_l))
    rate_m = csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(n_ue, n_x))
    ch = Choices(rate_m, np.concatenate(group), s_x, np.full(s_x.size, r), s_k, s_u, s_l, exact_groups=True)
    if prob.objective == "served":  # the exact mode's two phases (see _one_pass)
        mine = opt._solve(prob, ch, candidate=True)[0]
    else:
        x0 = None
        if min(start) >= 0:  # the current allocation is a point of this MILP: HiGHS's first incumbent
            x0 = np.zeros(n_x, dtype=bool)
            x0[start] = True
        mine = _tiers_1_2_at_once(opt, prob, ch, prob.evaluate(alloc).violation_bps, x0)[0]
    owner[r], level[r] = mine.prb_owner[r], np.maximum(prob.levels_of(mine), 0)[r]
    return allocation_from_choices(obs, owner, level, prob.levels_w)


def _tiers_1_2_at_once(opt: ExactOptimum, prob: SnapshotProblem, choices: Choices, violation_bps: float = np.inf,
                       start: np.ndarray | None = None):
    """One MILP over ``choices``: total shortfall at most ``violation_bps`` (where a point known to be feasible
    has it), least ``SHORTFALL_WEIGHT`` x shortfall - objective, to the candidate MIP gap: (allocation, info)
    as ``ExactOptimum._solve``. ``start`` (n_x,) bool: a feasible point (a best response's current allocation),
    given to HiGHS as its first incumbent. Raises RuntimeError where HiGHS finds no point."""
    choices, start = restricted(prob, choices, start)
    m = _Mip(prob, choices)
    if not m.n_x:
        return opt._allocation(prob, m, np.zeros(0, dtype=bool), "none")
    if m.n_s and np.isfinite(violation_bps):
        m.rows.append((m.sum_s, -np.inf, (violation_bps + prob.violation_tol) / _UNIT_BPS))
    # the gap is absolute, the candidate gap of an upper bound on the objective (each PRB's best choice):
    # relative to the weighted sum, it would let the objective slip by the gap times the shortfall's weight
    w = prob.obs.ue_weight
    value = np.asarray(m.rate.T @ w).ravel()  # (n_x,) weighted rate of each choice
    _, group = np.unique(choices.group, return_inverse=True)
    best = np.zeros(group.max() + 1)
    np.maximum.at(best, group, value)
    f_max = best.sum()
    if prob.objective == "served":
        f_max = min(f_max, float(w[m.member] @ m.cap[m.member]))
    x = _highs_solve(opt, m, SHORTFALL_WEIGHT * m.sum_s - m.f_coef(w), CANDIDATE_GAP * f_max, start)
    return opt._allocation(prob, m, x, "none")


def restricted(prob: SnapshotProblem, choices: Choices, start: np.ndarray | None = None):
    """``choices`` (one slot per choice: a single RU's) cut to the ones a one-pass MILP is likely to pick:
    on each PRB (group) the ``PRB_CHOICES`` of largest weighted rate (every owner's on that PRB), each UE's
    choices on its ``UE_PRBS`` best PRBs (its best rate there, every level: so that a need stays reachable),
    every choice that gives nothing (silence) and the ``start`` (n_x,) bool. Returns (choices, start) restricted.
    A deterministic limit: measured on one 3-RU state's 27 one-pass MILPs, about half the binaries, the same
    optimal values in 57 % of the CPU; over whole solves it moves answers both ways (``docs/multi_ru.md``)."""
    n_x = choices.group.size
    if n_x == 0:
        return choices, start
    own_u = np.full(n_x, -1)
    own_u[choices.slot_x] = choices.slot_u
    own_rate = np.zeros(n_x)
    has = np.flatnonzero(own_u >= 0)
    own_rate[has] = np.asarray(choices.rate[own_u[has], has]).ravel()
    value = np.asarray(choices.rate.T @ prob.obs.ue_weight).ravel()
    keep = own_u < 0
    if start is not None:
        keep |= start
    _, grp = np.unique(choices.group, return_inverse=True)
    n_grp = grp.max() + 1
    order = np.lexsort((-value, grp))  # by PRB, then largest value first
    first = np.searchsorted(grp[order], np.arange(n_grp))
    keep[order[np.arange(n_x) - first[grp[order]] < PRB_CHOICES]] = True
    u_of = own_u[has]  # each UE's best rate on each PRB (over levels), its UE_PRBS best PRBs
    best = np.zeros((prob.obs.n_ues, n_grp))
    np.maximum.at(best, (u_of, grp[has]), own_rate[has])
    rank = np.argsort(np.argsort(-best, axis=1, kind="stable"), axis=1, kind="stable")
    keep[has[rank[u_of, grp[has]] < UE_PRBS]] = True
    if keep.all():
        return choices, start
    sel = np.flatnonzero(keep)
    new_id = np.full(n_x, -1)
    new_id[sel] = np.arange(sel.size)
    slot = keep[choices.slot_x]
    out = Choices(choices.rate[:, sel], choices.group[sel], new_id[choices.slot_x[slot]], choices.slot_r[slot],
                  choices.slot_k[slot], choices.slot_u[slot], choices.slot_l[slot], exact_groups=choices.exact_groups,
                  ues=choices.ues)
    return out, (None if start is None else start[sel])


def _highs_solve(opt: ExactOptimum, m: _Mip, cost: np.ndarray, abs_gap: float, start: np.ndarray | None):
    """min ``cost`` over ``m``'s rows in one live HiGHS model (``highspy``), to the absolute gap ``abs_gap``,
    without the root's large-neighbourhood sub-MIPs (RINS, RENS: measured on the 3-RU cell, most of the
    root's time, for the same answers where a start is given); ``start`` (n_x,) bool completed with its
    shortfalls as the first incumbent. Returns the chosen x (n_x,) bool; RuntimeError where none is found."""
    rows = [m.base.A] if m.base is not None else []
    lo = [m.base.lb] if m.base is not None else []
    hi = [m.base.ub] if m.base is not None else []
    for a, low, high in m.rows:
        rows.append(csr_matrix(np.asarray(a, dtype=float)[None, :]))
        lo.append([low])
        hi.append([high])
    a = vstack(rows).tocsc()
    inf = highspy.kHighsInf
    lp = highspy.HighsLp()
    lp.num_col_, lp.num_row_ = m.n_var, a.shape[0]
    lp.col_cost_, lp.col_lower_, lp.col_upper_ = cost, m.lb, m.ub
    lp.row_lower_ = np.clip(np.concatenate(lo).astype(float), -inf, inf)
    lp.row_upper_ = np.clip(np.concatenate(hi).astype(float), -inf, inf)
    lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
    lp.a_matrix_.start_, lp.a_matrix_.index_, lp.a_matrix_.value_ = a.indptr, a.indices, a.data
    lp.a_matrix_.num_col_, lp.a_matrix_.num_row_ = m.n_var, a.shape[0]
    lp.integrality_ = [highspy.HighsVarType.kInteger if i else highspy.HighsVarType.kContinuous
                       for i in m.integrality]
    h = highspy._Highs()  # the plain solver object: prints nothing
    for key, val in {"output_flag": False, "presolve": "off", "mip_rel_gap": 0.0, "mip_abs_gap": abs_gap,
                     "time_limit": opt.time_limit_s}.items():
        h.setOptionValue(key, val)
    h.passModel(lp)
    if start is not None:  # these look for good first points: one is given
        for key in ("mip_heuristic_run_feasibility_jump", "mip_heuristic_run_rins", "mip_heuristic_run_rens"):
            h.setOptionValue(key, False)
        x0 = np.r_[start.astype(float), np.zeros(m.n_var - m.n_x)]
        if m.n_s:  # each shortfall the least its need row allows (the rows' rates clipped to the need)
            need_rows = m.base.A[-m.n_s - m.n_y:][:m.n_s] if m.n_y else m.base.A[-m.n_s:]
            got = need_rows[:, :m.n_x] @ start.astype(float)
            x0[m.n_x + m.n_z:m.n_x + m.n_z + m.n_s] = np.maximum(m.need[m.need_ues] - got, 0.0)
        sol = highspy.HighsSolution()
        sol.col_value = x0
        h.setSolution(sol)
    h.run()
    info = h.getInfo()
    if info.primal_solution_status != 2:  # no feasible point (HiGHS's kSolutionStatusFeasible)
        raise RuntimeError(f"optimal: a best response found no point ({h.modelStatusToString(h.getModelStatus())})")
    return np.asarray(h.getSolution().col_value)[:m.n_x] > 0.5


def _one_pass(opt: ExactOptimum, prob: SnapshotProblem):
    """``ExactOptimum._solve_per_ru``'s ``solve`` for the starts' per-RU MILPs: ``_tiers_1_2_at_once`` under
    ``rate``; under ``served`` the exact mode's phases (None), with their shortcuts where every need or cap can be
    met: measured on the small 2-RU cells, one pass there lost up to 2.65 % of the objective against 1.30 % (the
    certified solve under ``served`` takes 1-2 CPU s on the 3-RU cell either way)."""
    if prob.objective == "served":
        return None
    return lambda prob, choices, candidate: _tiers_1_2_at_once(opt, prob, choices)


def _level_useful(rate: np.ndarray, levels: np.ndarray) -> np.ndarray:
    """(N, L) bool: a level giving its owner more than every cheaper level (a cheaper one that gives as much
    also interferes less, so it is at least as good for everyone)."""
    cheaper = levels[None, :] < levels[:, None]  # (L, L'): l' cheaper than l
    best = np.where(cheaper[None, :, :], rate[:, None, :], -np.inf).max(axis=2, initial=-np.inf)
    return rate > best
