"""Local search for several RUs: improve a feasible allocation with the true SINR, move by move.

Used by ``optimal``'s certified mode (``policies.certified``) on every start. The key fact: a change on
PRB k moves the SINRs of PRB k only (on every RU, through the interference), as long as no RU starts or
stops transmitting altogether (its fronthaul noise is radiated on every PRB while it transmits
anywhere). So a move's effect is the current rates with the touched PRBs' shares recomputed
(``_prb_rates``, the PHY's SINR formula), which makes every move exact and cheap:

- one PRB of one RU takes its best owner and level, or goes idle (``local_search``'s passes);
- under a spent budget, one PRB raises its power while another of the same RU lowers it (``_pair_move``);
- two PRBs of one RU exchange their owners, their levels, or both (``_swap_move``): moves that keep the
  RU's power and its number of owned PRBs, which single-PRB moves cannot make when every UE needs its
  one PRB (a single move would first leave a need unmet).

Moves are accepted only when they come first in the snapshot problem's order (``simcore.snapshot``), so
the search ends, and it never returns an allocation worse than its start.
"""

from __future__ import annotations

import numpy as np

from simcore.contracts import Allocation
from simcore.snapshot import SnapshotProblem, allocation_from_choices, objective_and_shortfall


def local_search(prob: SnapshotProblem, alloc: Allocation, max_passes: int = 8, max_swaps: int = 200):
    """Improve an allocation one PRB at a time (its owner and level, or idle), in the problem's order,
    with the true SINR; passes over every PRB until none changes, then (without slice power caps) tries
    pairs of PRBs of one RU (``_pair_move``), then exchanges of two PRBs of one RU (``_swap_move``, at most
    ``max_swaps`` per RU and pass), and passes again if one helped (at most ``max_passes`` passes).
    Returns (allocation, evaluation).

    A change on PRB k of RU r moves the SINRs of PRB k only (on every RU), so each candidate's rates are
    the current ones with PRB k's share recomputed; where the change could switch RU r's fronthaul
    noise on or off (PRB k its only PRB, or it has none), every PRB moves and the candidates are scored
    in full (``policies.esa.score_batch``)."""
    from policies.esa import score_batch  # esa imports nothing of this module; kept local to stay one-way

    obs = prob.obs
    n_lvl, n_ru, n_ue = prob.n_levels, obs.n_rus, obs.n_ues
    owner = alloc.prb_owner.copy()
    level = np.maximum(prob.levels_of(alloc), 0)
    useful = np.flatnonzero((prob.cap_bps > 0) | (prob.need_bps > 0))
    caps = obs.slice_power_cap_w
    rates = None  # the current allocation's rates (U,), once computed
    for _ in range(max_passes):
        changed = False
        for r in range(n_ru):
            for k in range(obs.n_prbs):
                owned = owner >= 0
                ru_of = np.full(n_ue, -1)
                ru_of[owner[owned]] = np.nonzero(owned)[0]
                free = useful[(ru_of[useful] == r) | (ru_of[useful] < 0) | (owner[r, k] == useful)]
                cand_u = np.r_[-1, np.repeat(free, n_lvl)]
                cand_l = np.r_[0, np.tile(np.arange(n_lvl), free.size)]
                own_b = np.repeat(owner[None], cand_u.size, axis=0)
                lvl_b = np.repeat(level[None], cand_u.size, axis=0)
                own_b[:, r, k], lvl_b[:, r, k] = cand_u, cand_l
                if owned[r].sum() - owned[r, k] == 0:  # RU r's fronthaul noise may switch: score in full
                    ok, viol, obj = score_batch(prob, own_b, lvl_b)
                else:  # the current rates are kept from one PRB to the next until a move changes them
                    ok, viol, obj, _, rates = _score_prb_changes(prob, owner, level, r, k, cand_u, cand_l, rates)
                j = _best_index(prob, own_b, lvl_b, np.where(ok, viol, np.inf), np.where(ok, obj, -np.inf), ok)
                if (cand_u[j], cand_l[j]) != (owner[r, k], level[r, k] if owner[r, k] >= 0 else 0):
                    owner[r, k], level[r, k] = cand_u[j], cand_l[j]
                    changed, rates = True, None
        if changed:
            continue
        rates = None  # pair and swap moves change the allocation in place
        paired = np.isinf(caps).all() and any(_pair_move(prob, owner, level, r) for r in range(n_ru))
        if not paired and not any([_swap_move(prob, owner, level, r, max_swaps) for r in range(n_ru)]):
            break
    best = allocation_from_choices(obs, owner, np.where(owner >= 0, level, 0), prob.levels_w)
    ev = prob.evaluate(best)
    before = prob.evaluate(alloc)
    if prob.is_better(before, ev):  # never worse than the start (the current state is always a candidate)
        return alloc, before
    return best, ev


def _pair_move(prob: SnapshotProblem, owner, level, r: int, top: int = 3) -> bool:
    """A change no single-PRB move makes when RU r's budget is spent: PRB k1 takes a higher power (one of
    its ``top`` best such changes, budget ignored) while PRB k2 of the same RU lowers its level or goes
    idle. The two PRBs' SINRs move independently, so each pair's rates are the current ones plus both
    changes. Applies the best pair if it beats the current allocation (in place); True if it did."""
    obs = prob.obs
    n_lvl = prob.n_levels
    owned = owner >= 0
    power = np.where(owned, prob.levels_w[np.arange(obs.n_rus)[:, None], np.maximum(level, 0)], 0.0)
    useful = np.flatnonzero((prob.cap_bps > 0) | (prob.need_bps > 0))
    ru_of = np.full(obs.n_ues, -1)
    ru_of[owner[owned]] = np.nonzero(owned)[0]
    ups, downs = [], []  # (k, u, l, rate change (U,))
    rates = prob.rates(allocation_from_choices(obs, owner, np.maximum(level, 0), prob.levels_w))  # same for every k
    for k in range(obs.n_prbs):
        free = useful[(ru_of[useful] == r) | (ru_of[useful] < 0)]
        cu, cl = np.repeat(free, n_lvl), np.tile(np.arange(n_lvl), free.size)
        raise_ = prob.levels_w[r, cl] > power[r, k]
        if raise_.any():
            _, viol, obj, rates_c, now = _score_prb_changes(prob, owner, level, r, k, cu[raise_], cl[raise_], rates)
            for j in np.lexsort((-obj, viol))[:top]:
                ups.append((k, cu[raise_][j], cl[raise_][j], rates_c[j] - now))
        if owned[r, k]:
            du = np.r_[np.full(level[r, k], owner[r, k]), -1]
            dl = np.r_[np.arange(level[r, k]), 0]
            _, _, _, rates_c, now = _score_prb_changes(prob, owner, level, r, k, du, dl, rates)
            downs += [(k, du[j], dl[j], rates_c[j] - now) for j in range(du.size)]
    pairs = [(a, b) for a in ups for b in downs if a[0] != b[0]]
    if not pairs:
        return False
    p_up = np.array([prob.levels_w[r, a[2]] - power[r, a[0]] for a, _ in pairs])
    p_down = np.array([(prob.levels_w[r, b[2]] if b[1] >= 0 else 0.0) - power[r, b[0]] for _, b in pairs])
    ok = power[r].sum() + p_up + p_down <= obs.ru_max_power_w[r] * (1 + 1e-9)
    if not ok.any():
        return False
    pairs = [p for p, keep in zip(pairs, ok) if keep]
    base = rates  # the current rates (the same for every change scored)
    rates = np.maximum(base[None, :] + np.array([a[3] + b[3] for a, b in pairs]), 0.0)
    obj, viol = objective_and_shortfall(prob.served(rates), np.maximum(prob.need_bps - rates, 0.0), obs.ue_weight)
    own_b = np.repeat(owner[None], len(pairs) + 1, axis=0)
    lvl_b = np.repeat(np.maximum(level, 0)[None], len(pairs) + 1, axis=0)
    for i, (a, b) in enumerate(pairs, start=1):
        own_b[i, r, a[0]], lvl_b[i, r, a[0]] = a[1], a[2]
        own_b[i, r, b[0]], lvl_b[i, r, b[0]] = b[1], b[2]
    cur_obj, cur_viol = objective_and_shortfall(prob.served(base), np.maximum(prob.need_bps - base, 0.0), obs.ue_weight)
    j = _best_index(prob, own_b, lvl_b, np.r_[cur_viol, viol], np.r_[cur_obj, obj])
    if j == 0:
        return False
    owner[:] = own_b[j]
    level[:] = lvl_b[j]
    return True


def _best_index(prob: SnapshotProblem, own_b, lvl_b, viol, obj, ok=None) -> int:
    """``prob.best_index`` of candidate allocations (B, R, K) with their V, F (B,) (and ``ok`` (B,): within
    budget, None: all), the power steps and tie costs computed only for those tied on tiers 1-2 (the same
    index: the others cannot be chosen whatever their tiers 3-4)."""
    idx = np.flatnonzero(prob.tied_best(viol, obj))
    steps, cost = prob.tiers_3_4(own_b[idx], lvl_b[idx])
    if ok is not None:
        steps = np.where(ok[idx], steps, np.iinfo(np.int64).max)
    return int(idx[prob.best_index(viol[idx], obj[idx], steps, cost)])


def _score_prb_changes(prob: SnapshotProblem, owner, level, r: int, k: int, cand_u, cand_l, rates=None):
    """(C,) budgets kept, shortfall V and objective F of the allocation (owner, level) (R, K) with PRB k of
    RU r given to ``cand_u`` (C,) at ``cand_l`` (-1: idle), every RU that transmits still transmitting;
    ``rates`` (U,): the allocation's rates where the caller has them (else computed)."""
    obs = prob.obs
    rr = np.arange(obs.n_rus)
    owned = owner >= 0
    power = np.where(owned, prob.levels_w[rr[:, None], np.maximum(level, 0)], 0.0)
    on = owned.any(axis=1)
    cand_p = np.where(cand_u >= 0, prob.levels_w[r, cand_l], 0.0)
    ok = power[r].sum() - power[r, k] + cand_p <= obs.ru_max_power_w[r] * (1 + 1e-9)
    caps = obs.slice_power_cap_w
    for s in np.flatnonzero(np.isfinite(caps)):  # RU r's slice caps
        mine = owned[r] & (obs.slice_id[np.maximum(owner[r], 0)] == s)
        used = power[r][mine].sum() - (power[r, k] if mine[k] else 0.0)
        ok &= used + np.where((cand_u >= 0) & (obs.slice_id[np.maximum(cand_u, 0)] == s), cand_p, 0.0) \
            <= caps[s] * (1 + 1e-9)
    if rates is None:
        rates = prob.rates(allocation_from_choices(obs, owner, np.maximum(level, 0), prob.levels_w))
    now = _prb_rates(prob, k, owner[:, k], power[:, k], on)  # (R,) what PRB k gives its owners now
    base = rates.copy()
    np.subtract.at(base, owner[owned[:, k], k], now[owned[:, k]])
    own_k = np.repeat(owner[None, :, k], cand_u.size, axis=0)
    pow_k = np.repeat(power[None, :, k], cand_u.size, axis=0)
    own_k[:, r], pow_k[:, r] = cand_u, cand_p
    new = _prb_rates(prob, k, own_k, pow_k, on)  # (C, R)
    cand_rates = np.repeat(base[None, :], cand_u.size, axis=0)
    act = own_k >= 0
    np.add.at(cand_rates, (np.nonzero(act)[0], own_k[act]), new[act])
    cand_rates = np.maximum(cand_rates, 0.0)
    obj, viol = objective_and_shortfall(prob.served(cand_rates), np.maximum(prob.need_bps - cand_rates, 0.0),
                                        obs.ue_weight)
    return ok, viol, obj, cand_rates, rates


def _prb_rates(prob: SnapshotProblem, k, owner: np.ndarray, power: np.ndarray, on: np.ndarray) -> np.ndarray:
    """(..., R) rate of each owner of PRB k (0 where idle): its owners and powers (..., R), the RUs that
    transmit anywhere ``on`` (R,) radiating their fronthaul noise on it (the PHY's SINR formula). ``k`` one
    PRB, or one per row (...,)."""
    obs = prob.obs
    act = owner >= 0
    o = np.where(act, owner, 0)
    k = np.asarray(k)
    g = obs.gain[o, :, k[..., None] if k.ndim else k]  # (..., R, R'): gain from RU r' to the owner of RU r's PRB
    diag = np.take_along_axis(g, np.broadcast_to(np.arange(obs.n_rus)[:, None], (*g.shape[:-1], 1)), axis=-1)[..., 0]
    rad = np.where(act, power, 0.0) + np.where(on, obs.link.quant_noise_w, 0.0)  # (..., R') radiated on PRB k
    interference = np.maximum(np.einsum("...rq,...q->...r", g, rad) - diag * rad, 0.0)
    sinr = obs.link.sinr(diag, np.where(act, power, 0.0), np.arange(obs.n_rus), interference)
    return np.where(act, obs.link.prb_rate_bps(np.where(act, sinr, 0.0), o), 0.0)



def _swap_move(prob: SnapshotProblem, owner, level, r: int, max_moves: int = 200) -> bool:
    """Two PRBs k1, k2 of RU r exchange their owners (levels kept, kind 0), their whole (owner, level)
    states (kind 1), or their levels (owners kept, kind 2). RU r's power and number of owned PRBs stay the
    same, and its slices' powers too (kinds 0 and 2 are left out between slices under a slice cap), so only
    PRBs k1 and k2 change their SINRs: a pair's rates are the current ones plus each PRB's change scored
    alone. Applies the best pair while one beats the current allocation on tiers 1-2 (shortfall,
    objective), at most ``max_moves`` times (in place); True if any was applied."""
    obs = prob.obs
    n_prb, n_ue = obs.n_prbs, obs.n_ues
    rr = np.arange(obs.n_rus)
    free = not np.isfinite(obs.slice_power_cap_w).any()  # no slice power cap
    k1, k2 = np.triu_indices(n_prb, 1)
    moved = False
    for _ in range(max_moves):
        owned = owner >= 0
        power = np.where(owned, prob.levels_w[rr[:, None], np.maximum(level, 0)], 0.0)
        on = owned.any(axis=1)
        rates = prob.rates(allocation_from_choices(obs, owner, np.maximum(level, 0), prob.levels_w))
        o_r, p_r = owner[r], power[r]
        # delta[kind, k, j] (U,): rate change when PRB k of RU r takes the state of that kind from PRB j
        delta = np.zeros((3, n_prb, n_prb, n_ue))
        for k in range(n_prb):
            now = _prb_rates(prob, k, owner[:, k], power[:, k], on)
            base = np.zeros(n_ue)
            np.subtract.at(base, owner[owned[:, k], k], now[owned[:, k]])
            cand = ((o_r, np.full(n_prb, p_r[k])), (o_r, p_r), (np.full(n_prb, o_r[k]), p_r))
            own_k = np.repeat(owner[None, :, k], 3 * n_prb, axis=0)
            pow_k = np.repeat(power[None, :, k], 3 * n_prb, axis=0)
            own_k[:, r] = np.concatenate([c[0] for c in cand])
            pow_k[:, r] = np.where(own_k[:, r] >= 0, np.concatenate([c[1] for c in cand]), 0.0)
            new = _prb_rates(prob, k, own_k, pow_k, on)  # (3K, R): PRB k with each candidate state
            d = np.repeat(base[None, :], 3 * n_prb, axis=0)
            act = own_k >= 0
            np.add.at(d, (np.nonzero(act)[0], own_k[act]), new[act])
            delta[:, k] = d.reshape(3, n_prb, n_ue)
        a_own, b_own = o_r[k1] >= 0, o_r[k2] >= 0
        same_slice = obs.slice_id[np.maximum(o_r[k1], 0)] == obs.slice_id[np.maximum(o_r[k2], 0)]
        valid = (a_own & b_own & (o_r[k1] != o_r[k2]) & (same_slice | free | (p_r[k1] == p_r[k2])),
                 (a_own | b_own) & ((o_r[k1] != o_r[k2]) | (p_r[k1] != p_r[k2])),
                 a_own & b_own & (p_r[k1] != p_r[k2]) & (same_slice | free))
        kinds = np.concatenate([np.full(v.sum(), i) for i, v in enumerate(valid)])
        if kinds.size == 0:
            return moved
        a = np.concatenate([k1[v] for v in valid])
        b = np.concatenate([k2[v] for v in valid])
        new_rates = np.maximum(rates[None, :] + delta[kinds, a, b] + delta[kinds, b, a], 0.0)
        obj, viol = objective_and_shortfall(prob.served(new_rates), np.maximum(prob.need_bps - new_rates, 0.0),
                                            obs.ue_weight)
        cur_obj, cur_viol = objective_and_shortfall(prob.served(rates), np.maximum(prob.need_bps - rates, 0.0),
                                                    obs.ue_weight)
        keep = prob.tied_best(np.r_[cur_viol, viol], np.r_[cur_obj, obj])
        if keep[0]:  # nothing beats the current allocation on tiers 1-2
            return moved
        j = int(np.argmax(np.where(keep[1:], obj, -np.inf)))
        i, x, y = kinds[j], a[j], b[j]
        if i in (0, 1):
            owner[r, x], owner[r, y] = owner[r, y], owner[r, x]
        if i in (1, 2):
            level[r, x], level[r, y] = level[r, y], level[r, x]
        moved = True
    return moved


def shortfall_chains(prob: SnapshotProblem, alloc: Allocation, max_rounds: int = 8, max_targets: int = 36,
                     max_short: int = 2, max_prbs: int = 3):
    """A move on the first tier that touches several RUs at once, which neither a best response (one RU) nor
    the single-PRB search makes: a UE e holding two PRBs k1, k2 of RU r releases k2 to a UE m left without
    any PRB, while e's need is met by k1 alone at a higher power, which the other RUs make possible by
    quietening PRB k1 (lowering their level there, or first exchanging k1's state with another of their
    PRBs k3 whose owner needs little). Per (r, e, k1, k2, m): RU r's two PRBs take their best levels, then
    each other RU its best change on k1, then RU r's levels again, each step scored exactly
    (budgets, true SINR: ``_ChangeScorer``). The best chain is applied if it comes first in the
    problem's order; at most ``max_rounds`` chains, ``max_targets`` (r, e, k1, k2) and ``max_short`` UEs m
    each (UEs m nearest RU r first): deterministic. Returns (allocation, evaluation), never worse."""
    obs = prob.obs
    n_ru = obs.n_rus
    best, best_ev = alloc, prob.evaluate(alloc)
    for _ in range(max_rounds):
        owner = best.prb_owner.copy()
        level = np.maximum(prob.levels_of(best), 0)
        rates = prob.rates(best)
        owned = owner >= 0
        ru_of = np.full(obs.n_ues, -1)
        ru_of[owner[owned]] = np.nonzero(owned)[0]
        waiting = np.flatnonzero((ru_of < 0) & (prob.need_bps - rates > prob.violation_tol))
        if not waiting.size:
            break
        targets = []  # (r, e, k1, k2, k): e keeps PRB k (its PRB k1, or k's state moves to k1), releases k2
        quiet = prob.levels_w.min(axis=1) + obs.link.quant_noise_w  # (R,) the least an RU radiates on a PRB it uses
        for r in range(n_ru):
            count = np.bincount(owner[r][owned[r]], minlength=obs.n_ues)
            others = np.arange(n_ru) != r
            for e in np.flatnonzero((count == 2) & (prob.need_bps > 0)):
                ks = np.flatnonzero(owner[r] == e)
                # e's PRBs of RU r ranked by its rate at RU r's top level with the other RUs at their quietest
                sinr = obs.link.sinr(obs.gain[e, r, :], prob.levels_w[r].max(), r, quiet[others] @ obs.gain[e, others, :])
                best_k = np.argsort(-obs.link.prb_rate_bps(sinr, e), kind="stable")
                for k1, k2 in (ks, ks[::-1]):
                    targets += [(r, e, k1, k2, k) for k in best_k[best_k != k2][:max_prbs]]
        found = None
        score_batch = _ChangeScorer(prob, owner, level)
        for r, e, k1, k2, k in targets[:max_targets]:
            near = waiting[np.argsort(-obs.gain[waiting, r, :].max(axis=1), kind="stable")][:max_short]
            for m in near:
                o, lv = owner.copy(), level.copy()
                o[r, k1], o[r, k], lv[r, k1], lv[r, k] = o[r, k], o[r, k1], lv[r, k], lv[r, k1]
                o[r, k2] = m
                o, lv, v, f = _chain_ru_levels(prob, score_batch, o, lv, r, k, k2, spend=False)
                for q in range(n_ru):
                    if q != r:
                        o, lv, v, f = _chain_quieten(prob, score_batch, o, lv, q, k)
                o, lv, v, f = _chain_ru_levels(prob, score_batch, o, lv, r, k, k2, spend=True)
                if np.isfinite(v) and (found is None or (v, -f) < (found[2], -found[3])):
                    found = (o, lv, v, f)
        if found is None:
            break
        cand = allocation_from_choices(obs, found[0], found[1], prob.levels_w)
        ev = prob.evaluate(cand)
        if not prob.is_better(ev, best_ev):
            break
        best, best_ev = cand, ev
    return best, best_ev


def _chain_pick(prob, score_batch, own_b, lvl_b, budget: bool = True):
    """The best of a batch of allocations (B, R, K) on tiers 1-2 among those within budget (``budget``
    False: all): (owner, level, V, F)."""
    ok, viol, obj = score_batch(prob, own_b, lvl_b)
    ok = ok if budget else np.ones_like(ok)
    if not ok.any():
        return own_b[0], lvl_b[0], np.inf, -np.inf
    viol, obj = np.where(ok, viol, np.inf), np.where(ok, obj, -np.inf)
    keep = prob.tied_best(viol, obj)
    j = int(np.argmax(np.where(keep, obj, -np.inf)))
    return own_b[j], lvl_b[j], float(viol[j]), float(obj[j])


def _chain_ru_levels(prob, score_batch, owner, level, r, k1, k2, spend: bool):
    """RU r's PRB k1 at its top level (``spend``: at every level) and k2 at every level, with ``spend`` each also
    with one other PRB of RU r a level lower (the power a higher level needs under a spent budget; without,
    the budget is ignored: the other RUs' moves come next): the best (``_chain_pick``)."""
    n_lvl = prob.n_levels
    l1, l2 = (a.ravel() for a in np.meshgrid(np.arange(n_lvl) if spend else [n_lvl - 1], np.arange(n_lvl),
                                             indexing="ij"))
    lower = np.r_[-1, np.flatnonzero((owner[r] >= 0) & (level[r] > 0) & (np.arange(owner.shape[1]) != k1)
                                     & (np.arange(owner.shape[1]) != k2))] if spend else np.array([-1])
    own_b = np.repeat(owner[None], l1.size * lower.size, axis=0)
    lvl_b = np.repeat(level[None], l1.size * lower.size, axis=0)
    lvl_b[:, r, k1], lvl_b[:, r, k2] = np.tile(l1, lower.size), np.tile(l2, lower.size)
    j = np.repeat(lower, l1.size)
    rows = np.flatnonzero(j >= 0)
    lvl_b[rows, r, j[rows]] -= 1
    return _chain_pick(prob, score_batch, own_b, lvl_b, budget=spend)


def _chain_quieten(prob, score_batch, owner, level, q, k1):
    """RU q's changes on PRB k1: none, a lower level, or the state of another owned PRB k3 exchanged with
    k1's (then at each level): the best (``_chain_pick``)."""
    n_lvl = prob.n_levels
    cands = [(owner[q], level[q])]
    if owner[q, k1] >= 0:
        for lv in range(level[q, k1]):
            row = level[q].copy()
            row[k1] = lv
            cands.append((owner[q], row))
    for k3 in np.flatnonzero(owner[q] >= 0):
        if k3 == k1:
            continue
        o, row = owner[q].copy(), level[q].copy()
        o[k1], o[k3], row[k1], row[k3] = o[k3], o[k1], row[k3], row[k1]
        for lv in range(n_lvl):
            r2 = row.copy()
            r2[k1] = lv
            cands.append((o, r2))
    own_b = np.repeat(owner[None], len(cands), axis=0)
    lvl_b = np.repeat(level[None], len(cands), axis=0)
    for i, (o, row) in enumerate(cands):
        own_b[i, q], lvl_b[i, q] = o, row
    return _chain_pick(prob, score_batch, own_b, lvl_b, budget=False)


class _ChangeScorer:
    """Scores allocations (B, R, K) that differ from one base allocation on a few PRBs, like
    ``policies.esa.score_batch`` (budgets, V, F with the true SINR) but recomputing only the PRBs where
    some of them differ (a PRB's SINRs depend on that PRB alone while every RU keeps transmitting: callers
    keep every RU's PRB count). Called as ``scorer(prob, owner, level)``: (B,) within budget, V, F."""

    def __init__(self, prob: SnapshotProblem, owner: np.ndarray, level: np.ndarray):
        obs = prob.obs
        self.owner, self.rr = owner, np.arange(obs.n_rus)
        self.power = np.where(owner >= 0, prob.levels_w[self.rr[:, None], np.maximum(level, 0)], 0.0)
        self.on = (owner >= 0).any(axis=1)
        self.rates = prob.rates(allocation_from_choices(obs, owner, np.maximum(level, 0), prob.levels_w))

    def __call__(self, prob: SnapshotProblem, own_b: np.ndarray, lvl_b: np.ndarray):
        obs = prob.obs
        owned = own_b >= 0
        power = np.where(owned, prob.levels_w[self.rr[None, :, None], np.maximum(lvl_b, 0)], 0.0)
        ok = (power.sum(axis=2) <= obs.ru_max_power_w[None, :] * (1 + 1e-9)).all(axis=1)
        caps = obs.slice_power_cap_w
        for sl in np.flatnonzero(np.isfinite(caps)):
            mine = owned & (obs.slice_id[np.maximum(own_b, 0)] == sl)
            ok &= ((power * mine).sum(axis=2) <= caps[sl] * (1 + 1e-9)).all(axis=1)
        if obs.n_rus > 1:  # one RU per UE
            ru_count = np.zeros((own_b.shape[0], obs.n_ues), dtype=np.int64)
            for r in range(obs.n_rus):
                has = np.zeros((own_b.shape[0], obs.n_ues + 1), dtype=bool)
                has[np.arange(own_b.shape[0])[:, None], np.where(owned[:, r], own_b[:, r], obs.n_ues)] = True
                ru_count += has[:, :obs.n_ues]
            ok &= (ru_count <= 1).all(axis=1)
        rates = np.repeat(self.rates[None, :], own_b.shape[0], axis=0)
        pb, pk = np.nonzero(((own_b != self.owner[None]) | (power != self.power[None])).any(axis=1))
        for sign, own, pw in ((-1.0, self.owner[:, pk].T, self.power[:, pk].T),  # (P, R) each changed PRB's
                              (1.0, own_b[pb, :, pk], power[pb, :, pk])):  # owners before, then after
            part = _prb_rates(prob, pk, own, pw, self.on)
            i, r = np.nonzero(own >= 0)
            np.add.at(rates, (pb[i], own[i, r]), sign * part[i, r])
        rates = np.maximum(rates, 0.0)
        obj, viol = objective_and_shortfall(prob.served(rates), np.maximum(prob.need_bps - rates, 0.0), obs.ue_weight)
        return ok, viol, obj
